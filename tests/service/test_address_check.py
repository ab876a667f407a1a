"""The SSRF address check, spelling by spelling: every private, loopback, link-local and mapped form is refused.

Every case here calls the check itself (`address_allowed`, or `pin`, which checks a URL and
returns where a fetch would connect) and never opens a connection: several of these addresses
were let through by the old check, and this machine has an IPv6 default route, so a fetch of
`[64:ff9b::a9fe:a9fe]` would really have gone out. Host names go through `no_dns`, a resolver
that fails the test when it is asked anything: spellings of an address must be understood
without DNS, and names like `localhost.` refused by name.
"""

from __future__ import annotations

import pytest

from musicsep.service.addresses import address_allowed
from musicsep.service.fetch import FetchLimits, UrlRefused, pin

STRICT = FetchLimits()
LOOPBACK_OK = FetchLimits(allow_loopback=True)


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"the check asked DNS about {host!r}: this spelling should be decided without it")


#: Addresses a resolver could hand back, each of which must be refused.
REFUSED_ADDRESSES = [
    # NAT64 (RFC 6052 well-known prefix, RFC 8215 local-use prefix) of non-public IPv4.
    "64:ff9b::a9fe:a9fe",  # 169.254.169.254, the cloud metadata service
    "64:ff9b::a00:1",  # 10.0.0.1
    "64:ff9b::7f00:1",  # 127.0.0.1
    "64:ff9b::c0a8:101",  # 192.168.1.1
    "64:FF9B::A9FE:A9FE",  # uppercase
    "64:ff9b:1::a00:1",  # local-use NAT64: not global whatever it embeds
    "64:ff9b:1::808:808",
    # IPv4-compatible (deprecated ::a.b.c.d) and IPv4-translated (::ffff:0:a.b.c.d).
    "::7f00:1",
    "::127.0.0.1",
    "::a9fe:a9fe",
    "::ffff:0:7f00:1",
    "::ffff:0:a00:1",
    "::808:808",  # deprecated form: not routable even with a public IPv4
    # IPv4-mapped.
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "::ffff:169.254.169.254",
    "0:0:0:0:0:ffff:10.0.0.1",
    # 6to4 of non-public IPv4.
    "2002:7f00:1::",
    "2002:a9fe:a9fe::1",
    "2002:c0a8:101::",
    "2002:a00:1:1::1",
    # Teredo: server 65.54.227.120, client 192.0.2.45 (documentation); and a loopback client.
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:0:4136:e378:0:0:80ff:fffe",
    # Non-global IPv6 ranges (several of which Python < 3.11.10's ipaddress calls global).
    "::1",
    "::",
    "fe80::1",
    "fe80::1%eth0",  # zone ids are never accepted
    "fec0::1",
    "fc00::1",
    "fd00:ec2::254",  # AWS's IPv6 metadata address
    "ff02::1",
    "100::1",
    "2001:db8::1",
    "3fff::1",
    "5f00::1",
    "2001:10::1",
    # IPv4.
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "192.0.0.8",
    "192.0.0.100",  # IETF protocol assignments (Python < 3.11.10 calls it global)
    "192.88.99.1",  # the deprecated 6to4 relay anycast
    "192.0.2.1",
    "198.18.0.1",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
]

PUBLIC_ADDRESSES = [
    "8.8.8.8",
    "1.1.1.1",
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "64:ff9b::808:808",  # NAT64 of a public IPv4: what an IPv6-only host reaches it by
    "::ffff:8.8.8.8",  # what a dual-stack resolver returns for a public IPv4
    "2002:808:808::1",  # 6to4 of a public IPv4
]


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_non_public_addresses_and_ipv6_forms_embedding_them_are_refused(address):
    assert not address_allowed(address)
    assert not address_allowed(address.upper())


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_public_addresses_are_allowed(address):
    assert address_allowed(address)


@pytest.mark.parametrize("address", ["64:ff9b::7f00:1", "2002:7f00:1::", "::7f00:1", "::ffff:0:7f00:1", "fe80::1%lo"])
def test_the_loopback_allowance_never_lets_embedded_loopback_through(address):
    assert not address_allowed(address, allow_loopback=True)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
def test_the_loopback_allowance_lets_plain_loopback_through(address):
    assert address_allowed(address, allow_loopback=True)


#: URL spellings, each of which must be refused before any connection or DNS question.
REFUSED_URLS = [
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "http://[64:ff9b::a00:1]/",
    "http://[::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[::ffff:0:7f00:1]/",
    "http://[64:ff9b::127.0.0.1]/",
    "http://[::127.0.0.1]:8000/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/",
    "http://[64:FF9B::A9FE:A9FE]/",
    "https://[::ffff:a9fe:a9fe]/",
    "http://[fe80::1%25eth0]/",
    "http://[::ffff:7f00:1%25lo]/",
    "http://[::1]/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://017700000001/",
    "http://0x7f.0x0.0x0.0x1/",
    "http://127.1/",
    "http://0177.0.0.1/",
    "http://127.000.000.001/",
    "http://0/",
    "http://0.0.0.0:8000/",
    "http://2852039166/",  # 169.254.169.254 as one number
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://127。0。0。1/",  # ideographic full stops
    "http://localhost/",
    "http://localhost./",
    "http://LOCALHOST/",
    "http://LocalHost.:80/",
    "http://api.localhost/",
    "http://%31%32%37.0.0.1/",
    "http://127.0.0.1%00.example/",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_every_spelling_of_a_non_public_host_is_refused_without_dns(url):
    with pytest.raises(UrlRefused):
        pin(url, STRICT, no_dns)


def test_a_nat64_address_of_the_metadata_service_is_named_in_the_refusal():
    with pytest.raises(UrlRefused, match=r"64:ff9b::a9fe:a9fe .*169\.254\.169\.254.*metadata"):
        pin("http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", STRICT, no_dns)


def test_a_name_resolving_to_an_embedded_loopback_is_refused():
    with pytest.raises(UrlRefused, match=r"'media\.example' resolves to 2002:7f00:1::.*127\.0\.0\.1"):
        pin("https://media.example/a.wav", STRICT, lambda host, port: ["2002:7f00:1::"])


@pytest.mark.parametrize(
    ("url", "connects_to"),
    [
        ("http://8.8.8.8/a.wav", "8.8.8.8"),
        ("http://134744072/a.wav", "8.8.8.8"),
        ("http://[64:ff9b::808:808]/a.wav", "64:ff9b::808:808"),
        ("http://[2001:4860:4860::8888]/a.wav", "2001:4860:4860::8888"),
    ],
)
def test_public_literals_are_pinned_to_their_canonical_address_without_dns(url, connects_to):
    assert pin(url, STRICT, no_dns).url.host == connects_to


@pytest.mark.parametrize("host", ["localhost", "localhost.", "LOCALHOST", "api.localhost"])
def test_localhost_names_mean_loopback_without_asking_dns(host):
    """RFC 6761: `localhost` and `*.localhost` are this machine, whatever a DNS server says."""
    with pytest.raises(UrlRefused, match=f"'{host.lower()}' resolves to 127.0.0.1, a loopback address"):
        pin(f"http://{host}:9/", STRICT, no_dns)
    assert pin(f"http://{host}:9/", LOOPBACK_OK, no_dns).url.host == "127.0.0.1"
