"""Outbound HTTP on a caller's behalf (`audio_url` inputs, webhook targets) without SSRF.

A URL typed by a caller must not let it reach the server's own network: loopback, private
ranges, link-local (169.254.169.254 is the cloud metadata service), shared, reserved, and the
IPv6 forms that embed such an IPv4 address (`service/addresses.py` decides). Checking
the hostname's addresses is not enough, because the HTTP library would resolve the name again
and a second DNS answer can differ (DNS rebinding). So every hop here is:

1. resolve the host once (IP literals in any spelling and `localhost` names without DNS);
   refuse unless every address is public;
2. connect to the checked address itself (the URL's host replaced by the IP), sending the real
   name in `Host` and, for HTTPS, as TLS SNI and the name the certificate is verified against
   (httpcore's `sni_hostname` request extension), so certificates still prove the name;
3. never follow a redirect automatically: each `Location` goes through 1–2 again.

Bodies are streamed to disk with a byte cap (counted, not trusted from Content-Length) and an
overall deadline. Proxies from the environment are ignored (`trust_env=False`): a proxy would
do its own resolution. `advocate` does the same for `requests` but is unmaintained since 2020
and does not support httpx, hence this module.
"""

from __future__ import annotations

import contextvars
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx

from musicsep.model.errors import Cancelled, MusicsepError
from musicsep.service.addresses import refusal

#: host, port -> every address the name resolves to.
Resolver = Callable[[str, int], list[str]]

_CHUNK = 1 << 16
#: How soon a cancel is seen while the download waits on the network.
_CANCEL_POLL_S = 0.2
#: DNS names only: letter/digit/hyphen (and underscore) labels, as IDNA-encoded by httpx.
_HOST_NAME = re.compile(
    r"^(?=.{1,253}\.?$)([A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
    r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class UrlRefused(MusicsepError):
    """The URL is not one the server may fetch: wrong scheme, or it leads to a non-public address."""

    code = "url_refused"
    exit_code = 3


class UrlFetchFailed(MusicsepError):
    """The URL was allowed but the download did not work (status, timeout, too large, too many hops)."""

    code = "url_fetch_failed"
    exit_code = 3


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 200 * 1024 * 1024
    #: Whole download, every redirect included.
    timeout_s: float = 60.0
    max_redirects: int = 5
    #: Test-only: lets 127.0.0.1 / ::1 through (never private or link-local ranges).
    allow_loopback: bool = False


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UrlFetchFailed(f"the host name '{host}' could not be resolved") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _refusal(host: str, address: str, kind: str) -> str:
    try:
        literal = ipaddress.ip_address(host) == ipaddress.ip_address(address)
    except ValueError:
        literal = False
    if literal:
        return f"{address} is {kind}, not a public one"
    return f"'{host}' resolves to {address}, {kind}, not a public one"


def _numeric_address(host: str) -> str | None:
    """The address an IP literal means, in any spelling the C library accepts (`2130706433`,
    `0x7f.1`, `127.1`), or None for a name. Decided by libc with AI_NUMERICHOST, so no DNS
    question is sent and the answer is what a connection to `host` would use."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        return None
    return str(infos[0][4][0])


def _is_localhost(host: str) -> bool:
    """RFC 6761: `localhost` and every name under it are this machine, whatever DNS says."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def _addresses(host: str, port: int, resolve: Resolver) -> list[str]:
    if "%" in host:
        raise UrlRefused("IPv6 zone ids are not accepted in URLs")
    literal = _numeric_address(host)
    if literal is not None:
        return [literal]
    if _is_localhost(host):
        return ["127.0.0.1", "::1"]
    if not _HOST_NAME.match(host):
        raise UrlRefused(f"'{host[:100]}' is not a valid host name")
    return resolve(host, port)


@dataclass(frozen=True)
class PinnedTarget:
    url: httpx.URL  # the URL with its host replaced by the checked address
    headers: dict[str, str]
    extensions: dict[str, str]


def pin(url: str, limits: FetchLimits, resolve: Resolver) -> PinnedTarget:
    """Check `url` and every address its host resolves to; return where to connect."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise UrlRefused("the URL is not a valid http(s) URL") from None
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.host:
        raise UrlRefused("only http and https URLs are accepted")
    host = parsed.host
    port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
    addresses = _addresses(host, port, resolve)
    if not addresses:
        raise UrlFetchFailed(f"the host name '{host}' could not be resolved")
    for address in addresses:
        kind = refusal(address, allow_loopback=limits.allow_loopback)
        if kind is not None:
            raise UrlRefused(_refusal(host, address, kind))
    host_header = host if parsed.port is None else f"{host}:{parsed.port}"
    extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
    return PinnedTarget(parsed.copy_with(host=addresses[0]), {"Host": host_header}, extensions)


@contextmanager
def open_client(timeout_s: float) -> Iterator[httpx.Client]:
    """A client that never follows redirects itself and ignores proxy variables."""
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout_s) as client:
        yield client


def fetch_to_file(
    url: str,
    dest: Path,
    limits: FetchLimits | None = None,
    *,
    resolve: Resolver = system_resolver,
    cancelled: Callable[[], bool] = lambda: False,
) -> int:
    """Download `url` into `dest`; returns the byte count. Raises UrlRefused / UrlFetchFailed,
    or `Cancelled` within `_CANCEL_POLL_S` of `cancelled()` turning true.

    The download runs on a thread of its own because a socket read blocked on a silent server
    cannot be interrupted, and a cancel (or a server stopping) must not wait for the URL's
    timeout. Once cancelled, the abandoned thread still ends by that timeout at the latest, and
    its first chunk after the cancel removes whatever it wrote.
    """
    outcome: Future[int] = Future()
    context = contextvars.copy_context()  # the job's log bindings follow the download

    def download() -> None:
        try:
            outcome.set_result(context.run(_download, url, dest, limits or FetchLimits(), resolve, cancelled))
        except BaseException as exc:  # handed to the waiting thread, which re-raises it
            outcome.set_exception(exc)

    threading.Thread(target=download, name="audio-url-download", daemon=True).start()
    while True:
        try:
            return outcome.result(timeout=_CANCEL_POLL_S)
        except TimeoutError:
            if cancelled():
                raise Cancelled("cancelled while the audio_url was downloading") from None


def _download(url: str, dest: Path, limits: FetchLimits, resolve: Resolver, cancelled: Callable[[], bool]) -> int:
    deadline = time.monotonic() + limits.timeout_s
    with open_client(limits.timeout_s) as client:
        for hop in range(limits.max_redirects + 1):
            try:
                target = pin(url, limits, resolve)
            except UrlRefused as exc:
                if hop == 0:
                    raise
                raise UrlRefused(f"the URL redirected to {url[:300]}; {exc.message}") from None
            try:
                with client.stream("GET", target.url, headers=target.headers, extensions=target.extensions) as reply:
                    if reply.is_redirect and "location" in reply.headers:
                        url = urljoin(url, reply.headers["location"])
                        continue
                    if reply.status_code != 200:
                        raise UrlFetchFailed(f"the URL answered HTTP {reply.status_code}")
                    return _save(reply, dest, limits, deadline, cancelled)
            except httpx.TimeoutException:
                raise UrlFetchFailed(f"the URL did not answer within {limits.timeout_s:g} s") from None
            except httpx.HTTPError:
                raise UrlFetchFailed("the URL could not be downloaded (connection failed)") from None
    raise UrlFetchFailed(f"the URL redirected more than {limits.max_redirects} times")


def _save(
    reply: httpx.Response, dest: Path, limits: FetchLimits, deadline: float, cancelled: Callable[[], bool]
) -> int:
    too_large = UrlFetchFailed(f"the file at the URL is larger than {limits.max_bytes / 1048576:g} MB")
    declared = reply.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise too_large
    written = 0
    try:
        with dest.open("wb") as out:
            for chunk in reply.iter_raw(_CHUNK):
                written += len(chunk)
                if written > limits.max_bytes:
                    raise too_large
                if time.monotonic() > deadline:
                    raise UrlFetchFailed(f"the download took longer than {limits.timeout_s:g} s")
                if cancelled():
                    raise Cancelled("cancelled while the audio_url was downloading")
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return written
