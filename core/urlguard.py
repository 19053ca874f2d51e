"""The outbound-URL guard: every fetch of a URL that a tenant or a customer supplied goes through here.

A supplied URL is fetched only when it is http(s), names a host on the caller's allow-list (when the
provider has one), and every address its host resolves to is public: loopback, private, link-local
(the 169.254.169.254 metadata service), carrier-grade NAT, multicast, reserved and unspecified
addresses are refused, also when hidden in an IPv4-mapped, 6to4, Teredo or NAT64 IPv6 address. The
connection is made to the address that was checked (so a DNS answer that changes between the check
and the connect cannot move it), proxies from the environment are ignored, and redirects are followed
by hand, each hop checked again. ``OUTBOUND_URL_ALLOW_LOOPBACK`` lets loopback through, for the
emulators in tests and the local demo only.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpcore
import httpx
from django.conf import settings

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 3
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
TIMEOUT = httpx.Timeout(connect=5.0, read=20.0, write=20.0, pool=10.0)

# Addresses no supplied URL may reach, beyond what `ipaddress` flags (is_private etc.).
_SHARED_V4 = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class FetchFailed(Exception):
    """A fetch that produced no content. `retryable` says whether trying later may help; `status` is the
    HTTP status when there was an answer (0 otherwise). Messages never contain credentials."""

    def __init__(self, reason: str, *, status: int = 0, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.status, self.retryable = reason, status, retryable


class UrlRefused(FetchFailed):
    """The guard will not fetch this URL (scheme, host or address not allowed). Never retryable."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retryable=False)


@dataclass(frozen=True)
class Fetched:
    content: bytes
    content_type: str
    url: str  # after redirects


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # IPv4-compatible (deprecated ::a.b.c.d)
    if int(address) >> 32 == 0 and int(address) > 1:
        return ipaddress.IPv4Address(int(address))
    return None


def address_allowed(raw: str, *, allow_loopback: bool | None = None) -> bool:
    """May a supplied URL reach this IP address? Only public unicast addresses (and loopback when the
    setting allows it)."""
    if allow_loopback is None:
        allow_loopback = bool(getattr(settings, "OUTBOUND_URL_ALLOW_LOOPBACK", False))
    try:
        address = ipaddress.ip_address(raw.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_v4(address)
        if inner is not None:
            return address_allowed(str(inner), allow_loopback=allow_loopback)
    if address.is_loopback:
        return allow_loopback
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED_V4:
        return False
    return not (
        address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
        or not address.is_global
    )


def host_matches(host: str, allowed: Iterable[str]) -> bool:
    """`allowed` holds exact host names ("api.twilio.com") and suffixes (".twiliocdn.com")."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower()
        if entry.startswith("."):
            if host.endswith(entry) and host != entry[1:]:
                return True
        elif host == entry:
            return True
    return False


def host_of(url: str) -> str:
    """The host of a configured base URL (for allow-lists that include an emulator's host)."""
    try:
        return httpx.URL(url).host
    except httpx.InvalidURL:
        return ""


def resolve_checked(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, if all of them are allowed; UrlRefused otherwise."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchFailed(f"cannot resolve {host}", retryable=True) from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise FetchFailed(f"cannot resolve {host}", retryable=True)
    refused = [a for a in addresses if not address_allowed(a)]
    if refused:
        raise UrlRefused(f"{host} resolves to an address that is not allowed ({refused[0]})")
    return addresses


def url_check(url: str, *, allowed_hosts: Collection[str] | None = None, resolve: bool = True) -> httpx.URL:
    """Raise UrlRefused unless `url` may be fetched: http(s), no credentials in it, the host on the
    allow-list (when one is given), and (with `resolve`) every address of the host allowed."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UrlRefused("not a valid URL") from exc
    if parsed.scheme not in {"http", "https"}:
        raise UrlRefused(f"scheme {parsed.scheme or '(none)'!r} is not allowed")
    if not parsed.host:
        raise UrlRefused("the URL has no host")
    if parsed.userinfo:
        raise UrlRefused("credentials inside the URL are not allowed")
    if allowed_hosts is not None and not host_matches(parsed.host, allowed_hosts):
        raise UrlRefused(f"host {parsed.host} is not allowed here")
    if resolve:
        resolve_checked(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))
    return parsed


def url_fetch_allowed(url: str, *, allowed_hosts: Collection[str] | None = None) -> bool:
    """True when the guard would fetch `url` (it resolves the host now)."""
    try:
        url_check(url, allowed_hosts=allowed_hosts)
    except FetchFailed:
        return False
    return True


class GuardedNetworkBackend(httpcore.SyncBackend):
    """Resolves and checks the host at connect time and connects to the checked address itself, so
    TLS still verifies the host name (httpcore passes it as server_hostname) while DNS rebinding
    between check and connect is impossible."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in resolve_checked(host, port):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last


class GuardedTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__(trust_env=False)
        # as many kept alive as may be open: a webhook runner's threads to one endpoint reuse their connections
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50, keepalive_expiry=30)
        # Same pool httpx builds, with the guarded backend (httpx has no parameter for it).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(),
        )


@lru_cache(maxsize=1)
def guarded_client() -> httpx.Client:
    """One pooled client per process for supplied URLs: no proxies from the environment, no automatic
    redirects (fetch follows them itself, checking each hop)."""
    return httpx.Client(transport=GuardedTransport(), follow_redirects=False, trust_env=False, timeout=TIMEOUT)


def fetch(
    url: str,
    *,
    allowed_hosts: Collection[str] | None = None,
    redirect_hosts: Collection[str] | None = None,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_redirects: int = MAX_REDIRECTS,
) -> Fetched:
    """GET a supplied URL through the guard. `allowed_hosts` limits the first hop, `redirect_hosts`
    (default: the same) the hops after it; credentials (`auth`, an Authorization header) go only to the
    first hop's host. Raises UrlRefused, or FetchFailed (with `retryable`) for answers >= 400, network
    errors and bodies over `max_bytes`."""
    current = url_check(url, allowed_hosts=allowed_hosts)
    first_host = current.host
    later_hosts = redirect_hosts if redirect_hosts is not None else allowed_hosts
    for _hop in range(max_redirects + 1):
        same_host = current.host == first_host
        hop_headers = {k: v for k, v in (headers or {}).items() if same_host or k.lower() != "authorization"}
        try:
            with guarded_client().stream(
                "GET", current, headers=hop_headers, auth=auth if same_host else None
            ) as response:
                if response.status_code in REDIRECT_STATUSES and response.headers.get("location"):
                    target = current.join(response.headers["location"])
                    current = url_check(str(target), allowed_hosts=later_hosts)
                    continue
                if response.status_code >= 400:
                    code = response.status_code
                    raise FetchFailed(f"answered {code}", status=code, retryable=code == 429 or code >= 500)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise FetchFailed(f"larger than {max_bytes} bytes", status=response.status_code)
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise FetchFailed(f"larger than {max_bytes} bytes", status=response.status_code)
                    chunks.append(chunk)
                return Fetched(b"".join(chunks), response.headers.get("content-type", ""), str(current))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise FetchFailed(f"connection failed: {type(exc).__name__}", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise FetchFailed(f"no answer: {type(exc).__name__}", retryable=True) from exc
    raise UrlRefused(f"more than {max_redirects} redirects")
