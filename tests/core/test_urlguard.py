"""The outbound-URL guard: which addresses, schemes and hosts a supplied URL may reach, checked over real
HTTP against small servers on loopback (with OUTBOUND_URL_ALLOW_LOOPBACK off they are the forbidden
target; with it on, the emulators' case)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from core import urlguard
from core.urlguard import FetchFailed, UrlRefused, address_allowed, fetch, url_check, url_fetch_allowed


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that stops reading (the size limit) is expected here, not an error to print

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: list[dict[str, str]] = []
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Recorder
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.server.hits.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        status, headers, body = self.server.routes.get(self.path, (200, {"Content-Type": "image/png"}, b"png!"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def target() -> Iterator[_Recorder]:
    server = _Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_loopback(settings: Any) -> None:
    settings.OUTBOUND_URL_ALLOW_LOOPBACK = False


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.5.6.7",
        "10.0.0.8",
        "172.16.3.4",
        "192.168.0.1",
        "169.254.169.254",  # cloud metadata
        "100.100.100.200",  # carrier-grade NAT (Alibaba's metadata)
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "::127.0.0.1",  # IPv4-compatible
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
        "not-an-ip",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not address_allowed(address, allow_loopback=False)


@pytest.mark.parametrize("address", ["8.8.8.8", "151.101.1.140", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(address, allow_loopback=False)


def test_loopback_only_when_the_setting_allows_it() -> None:
    assert address_allowed("127.0.0.1", allow_loopback=True)
    assert address_allowed("::ffff:127.0.0.1", allow_loopback=True)
    assert not address_allowed("10.0.0.1", allow_loopback=True)
    assert not address_allowed("169.254.169.254", allow_loopback=True)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "ftp://files.example/x",
        "javascript:alert(1)",
        "//no-scheme.example/x",
        "http://user:secret@8.8.8.8/",
        "http:///path-only",
        "not a url",
    ],
)
def test_only_plain_http_urls_pass(url: str) -> None:
    with pytest.raises(UrlRefused):
        url_check(url, resolve=False)


@pytest.mark.usefixtures("no_loopback")
@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "2130706433", "0x7f.0.0.1", "127.1", "017700000001", "[::1]", "[::ffff:127.0.0.1]"],
)
def test_every_spelling_of_loopback_is_refused_after_resolving(host: str, target: _Recorder) -> None:
    port = target.server_address[1]
    assert not url_fetch_allowed(f"http://{host}:{port}/x")
    with pytest.raises(UrlRefused):
        fetch(f"http://{host}:{port}/x")
    assert target.hits == []  # nothing left the process


def test_metadata_address_is_refused_even_with_loopback_allowed() -> None:
    with pytest.raises(UrlRefused, match="not allowed"):
        fetch("http://169.254.169.254/latest/meta-data/iam/security-credentials/")


def test_host_allow_list_exact_and_suffix() -> None:
    allowed = ("api.twilio.com", ".twiliocdn.com")
    assert urlguard.host_matches("api.twilio.com", allowed)
    assert urlguard.host_matches("API.Twilio.com.", allowed)
    assert urlguard.host_matches("media.twiliocdn.com", allowed)
    assert not urlguard.host_matches("twiliocdn.com.evil.example", allowed)
    assert not urlguard.host_matches("eviltwiliocdn.com", allowed)
    assert not urlguard.host_matches("api.twilio.com.evil.example", allowed)
    with pytest.raises(UrlRefused, match="not allowed here"):
        url_check("https://evil.example/media", allowed_hosts=allowed, resolve=False)


def test_loopback_emulator_is_fetched_when_allowed(target: _Recorder) -> None:
    fetched = fetch(f"{target.url}/media/ME1", allowed_hosts=("127.0.0.1",), auth=("AC1", "token"))
    assert (fetched.content, fetched.content_type) == (b"png!", "image/png")
    assert target.hits[0]["authorization"].startswith("Basic ")


def test_a_redirect_into_a_forbidden_address_is_refused(target: _Recorder) -> None:
    target.routes["/start"] = (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")
    with pytest.raises(UrlRefused):
        fetch(f"{target.url}/start")
    assert [hit["path"] for hit in target.hits] == ["/start"]


def test_redirects_are_checked_against_their_own_allow_list_and_lose_credentials(target: _Recorder) -> None:
    port = target.server_address[1]
    target.routes["/media/ME1"] = (307, {"Location": f"http://localhost:{port}/cdn/blob"}, b"")
    fetched = fetch(
        f"{target.url}/media/ME1",
        allowed_hosts=("127.0.0.1",),
        redirect_hosts=("localhost",),
        auth=("AC1", "token"),
        headers={"Authorization": "Bearer secret"},
    )
    assert fetched.content == b"png!" and fetched.url.endswith("/cdn/blob")
    first, second = target.hits
    assert "authorization" in first and "authorization" not in second  # the CDN never sees credentials
    # the same redirect when the CDN's host is not on the list
    target.hits.clear()
    with pytest.raises(UrlRefused):
        fetch(f"{target.url}/media/ME1", allowed_hosts=("127.0.0.1",), redirect_hosts=("cdn.example",))
    assert len(target.hits) == 1


def test_redirect_loops_stop(target: _Recorder) -> None:
    target.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    with pytest.raises(UrlRefused, match="redirects"):
        fetch(f"{target.url}/loop")
    assert len(target.hits) == urlguard.MAX_REDIRECTS + 1


def test_bodies_over_the_limit_are_refused(target: _Recorder) -> None:
    target.routes["/big"] = (200, {"Content-Type": "video/mp4"}, b"x" * 5000)
    with pytest.raises(FetchFailed, match="larger than"):
        fetch(f"{target.url}/big", max_bytes=4096)


def test_error_answers_say_whether_to_retry(target: _Recorder) -> None:
    target.routes["/gone"] = (404, {}, b"")
    target.routes["/busy"] = (503, {}, b"")
    with pytest.raises(FetchFailed) as gone:
        fetch(f"{target.url}/gone")
    with pytest.raises(FetchFailed) as busy:
        fetch(f"{target.url}/busy")
    assert (gone.value.status, gone.value.retryable) == (404, False)
    assert (busy.value.status, busy.value.retryable) == (503, True)


def test_dns_rebinding_between_check_and_connect_is_caught(
    target: _Recorder, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name resolves to a public address when the URL is checked and to loopback when the connection
    is made: the connection is checked again, to the address it actually uses, and refused."""
    settings.OUTBOUND_URL_ALLOW_LOOPBACK = False
    port = target.server_address[1]
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34", "127.0.0.1"])

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example":
            return real(next(answers), *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(UrlRefused):
        fetch(f"http://rebind.example:{port}/x")
    assert target.hits == []


def test_the_connection_goes_to_the_checked_address_with_the_original_host(
    target: _Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = target.server_address[1]
    real = socket.getaddrinfo

    def resolver(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == "media.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    fetch(f"http://media.example:{port}/m")
    assert target.hits[0]["host"] == f"media.example:{port}"


def test_proxies_from_the_environment_are_ignored(target: _Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://10.0.0.1:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.0.0.1:3128")
    assert fetch(f"{target.url}/m").content == b"png!"
