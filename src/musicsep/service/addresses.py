"""Is an address one the server may connect to on a caller's behalf? (the SSRF check)

Public means globally routable unicast. IPv6 has several forms that carry an IPv4 address
inside it, and a connection to one of them can end at that IPv4 address: a NAT64 gateway turns
`64:ff9b::a9fe:a9fe` into 169.254.169.254 (the cloud metadata service), a 6to4 relay sends
`2002:7f00:1::` to 127.0.0.1. So every embedded IPv4 address must be public as well:
IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d`,
NAT64 `64:ff9b::/96` and `64:ff9b:1::/48` (RFC 6052, RFC 8215), 6to4 `2002::/16` and Teredo
`2001::/32` (server and client).

The non-global ranges are written out below instead of trusting `ipaddress.is_global` alone:
before Python 3.11.10 / 3.12.4 it calls 64:ff9b:1::/48, 3fff::/20, 5f00::/16 and 192.0.0.0/24
global (IANA's special-purpose registries say otherwise). IPv6 outside 2000::/3 (the only block
IANA allocates as global unicast) is refused except the well-known NAT64 prefix.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address, ip_network

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_SHARED = ip_network("100.64.0.0/10")
_LOOPBACK_V4 = ip_network("127.0.0.0/8")

#: IPv4 blocks IANA marks not globally reachable that older `ipaddress` versions miss.
_NON_GLOBAL_V4 = [ip_network(block) for block in ("192.0.0.0/24", "192.88.99.0/24", "198.18.0.0/15")]

_GLOBAL_UNICAST = ip_network("2000::/3")
_NAT64 = ip_network("64:ff9b::/96")
_NAT64_LOCAL = ip_network("64:ff9b:1::/48")
_COMPATIBLE = ip_network("::/96")
_UNIQUE_LOCAL = ip_network("fc00::/7")
_TRANSLATED = ip_network("::ffff:0:0:0/96")

#: IPv6 blocks inside 2000::/3 that are not globally reachable (IANA special-purpose registry).
_NON_GLOBAL_V6 = [
    (ip_network("2001::/23"), "an IETF protocol (Teredo, ORCHID, benchmarking) address"),
    (ip_network("2001:db8::/32"), "a documentation address"),
    (ip_network("3fff::/20"), "a documentation address"),
]


def _embedded_ipv4(ip: IPv6Address) -> list[tuple[str, IPv4Address]]:
    """Every IPv4 address `ip` carries, with the name of the form that carries it."""
    low32 = IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return [("an IPv4-mapped address of", ip.ipv4_mapped)]
    if ip in _TRANSLATED:
        return [("an IPv4-translated address of", low32)]
    if ip in _COMPATIBLE and int(ip) > 1:
        return [("an IPv4-compatible address of", low32)]
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return [("a NAT64 address of", low32)]
    if ip.sixtofour is not None:
        return [("a 6to4 address of", ip.sixtofour)]
    if ip.teredo is not None:
        server, client = ip.teredo
        return [("a Teredo address with server", server), ("a Teredo address with client", client)]
    return []


def _ipv4_kind(ip: IPv4Address) -> str | None:
    """Why this IPv4 address is not public, in words; None when it is."""
    for kind, test in (
        ("the cloud metadata service's address", ip in _METADATA),
        ("an unspecified address", ip.is_unspecified),
        ("a loopback address", ip.is_loopback),
        ("a link-local address", ip.is_link_local),
        ("a multicast address", ip.is_multicast),
        ("a shared (carrier-grade NAT) address", ip in _SHARED),
        ("a reserved address", ip.is_reserved),
        ("a private address", ip.is_private),
        ("a special-purpose address", any(ip in block for block in _NON_GLOBAL_V4)),
        ("a non-public address", not ip.is_global),
    ):
        if test:
            return kind
    return None


def _ipv6_kind(ip: IPv6Address) -> str | None:
    """Why this IPv6 address (no IPv4 inside it) is not public, in words; None when it is."""
    for kind, test in (
        ("the cloud metadata service's address", ip in _METADATA),
        ("an unspecified address", ip.is_unspecified),
        ("a loopback address", ip.is_loopback),
        ("a link-local address", ip.is_link_local),
        ("a site-local address", ip.is_site_local),
        ("a multicast address", ip.is_multicast),
        ("a private (unique local) address", ip in _UNIQUE_LOCAL),
    ):
        if test:
            return kind
    for block, kind in _NON_GLOBAL_V6:
        if ip in block:
            return kind
    if ip in _NAT64_LOCAL:
        return "a local-use NAT64 address"
    if ip not in _GLOBAL_UNICAST and ip not in _NAT64:
        return "a reserved address (not global unicast)"
    if not ip.is_global:
        return "a non-public address"
    return None


def refusal(address: str, *, allow_loopback: bool = False) -> str | None:
    """Why the server must not connect to `address`, in words ("a loopback address"); None
    when it may. `allow_loopback` (tests only) lets 127.0.0.0/8, ::1 and ::ffff:127.x through,
    never an embedding that a gateway would translate (NAT64, 6to4, …)."""
    text, zone_sep, _ = address.partition("%")
    ip = ipaddress.ip_address(text)
    if zone_sep:
        return "a scoped address (zone id)"
    if isinstance(ip, IPv4Address):
        if allow_loopback and ip in _LOOPBACK_V4:
            return None
        return _ipv4_kind(ip)
    if ip.is_loopback and allow_loopback:
        return None
    for form, inner in _embedded_ipv4(ip):
        if ip.ipv4_mapped is not None and allow_loopback and inner in _LOOPBACK_V4:
            return None
        kind = _ipv4_kind(inner)
        if kind is not None:
            return f"{form} {inner}, {kind}"
    if ip.ipv4_mapped is not None:
        return None  # the connection goes to the (public) IPv4 address itself
    if (ip in _COMPATIBLE and int(ip) > 1) or ip in _TRANSLATED:
        return "a deprecated, unroutable IPv4-in-IPv6 address"
    return _ipv6_kind(ip)


def address_allowed(address: str, *, allow_loopback: bool = False) -> bool:
    """True for globally routable unicast addresses (and loopback when the test allowance is on)."""
    return refusal(address, allow_loopback=allow_loopback) is None
