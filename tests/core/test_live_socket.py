from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from core.realtime import STAFF_TOPIC, push
from tenants.models import Tenant
from tests.support import http_client, http_login, make_member


@contextmanager
def _open(app_server: str, tenant: Tenant, cookies: dict[str, str]) -> Iterator[ClientConnection]:
    port = int(app_server.rsplit(":", 1)[1])
    host = f"{tenant.slug}.localhost:{port}"
    sock = socket.create_connection(("127.0.0.1", port))
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    headers = {"Cookie": cookie, "Origin": f"http://{host}"}
    with connect(f"ws://{host}/ws/live/", sock=sock, additional_headers=headers, open_timeout=10) as conn:
        hello = json.loads(conn.recv(timeout=5))
        assert hello == {"event": "hello", "payload": {"tenant": tenant.slug}}
        yield conn


def _login_cookies(app_server: str, tenant: Tenant, email: str) -> dict[str, str]:
    port = app_server.rsplit(":", 1)[1]
    with http_client() as client:
        response = http_login(client, f"http://{tenant.slug}.localhost:{port}", email)
        assert response.status_code == 302, response.text
        return {c.name: c.value for c in client.cookies.jar if c.value}


def test_a_socket_of_tenant_a_never_receives_tenant_b_events(
    app_server: str, tenants: tuple[Tenant, Tenant], committed: Any
) -> None:
    alpha, beta = tenants
    tag = uuid.uuid4().hex[:8]
    make_member(alpha, f"ws-a-{tag}@alpha.test")
    make_member(beta, f"ws-b-{tag}@beta.test")
    cookies_a = _login_cookies(app_server, alpha, f"ws-a-{tag}@alpha.test")
    cookies_b = _login_cookies(app_server, beta, f"ws-b-{tag}@beta.test")
    with _open(app_server, alpha, cookies_a) as sock_a, _open(app_server, beta, cookies_b) as sock_b:
        push(beta.schema_name, STAFF_TOPIC, "message.created", {"id": 1, "text": "only for beta"})
        assert json.loads(sock_b.recv(timeout=5)) == {
            "event": "message.created",
            "payload": {"id": 1, "text": "only for beta"},
        }
        with pytest.raises(TimeoutError):
            sock_a.recv(timeout=1.0)
        push(alpha.schema_name, STAFF_TOPIC, "message.created", {"id": 2})
        assert json.loads(sock_a.recv(timeout=5))["payload"] == {"id": 2}
        with pytest.raises(TimeoutError):
            sock_b.recv(timeout=0.5)


def test_sockets_need_a_session_made_on_that_tenant(
    app_server: str, tenants: tuple[Tenant, Tenant], committed: Any
) -> None:
    alpha, beta = tenants
    tag = uuid.uuid4().hex[:8]
    make_member(alpha, f"ws-x-{tag}@alpha.test")
    cookies = _login_cookies(app_server, alpha, f"ws-x-{tag}@alpha.test")
    with pytest.raises(InvalidStatus), _open(app_server, beta, cookies):
        pass  # alpha's session on beta's host
    with pytest.raises(InvalidStatus), _open(app_server, alpha, {}):
        pass  # anonymous
