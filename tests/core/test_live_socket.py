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

from core.realtime import STAFF_TOPIC, group_name, push, user_topic
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


def test_a_socket_of_a_cannot_join_b_topics(app_server: str, tenants: tuple[Tenant, Tenant], committed: Any) -> None:
    """The socket joins its groups from the server side (tenant from the Host, user from the session);
    whatever A sends asking for B's topics, nothing of B's arrives, and B's events reach only B."""
    alpha, beta = tenants
    tag = uuid.uuid4().hex[:8]
    make_member(alpha, f"ws-j-{tag}@alpha.test")
    user_b = make_member(beta, f"ws-k-{tag}@beta.test")
    cookies_a = _login_cookies(app_server, alpha, f"ws-j-{tag}@alpha.test")
    cookies_b = _login_cookies(app_server, beta, f"ws-k-{tag}@beta.test")
    beta_topics = [STAFF_TOPIC, user_topic(user_b.pk)]
    with _open(app_server, alpha, cookies_a) as sock_a, _open(app_server, beta, cookies_b) as sock_b:
        for topic in beta_topics:
            group = group_name(beta.schema_name, topic)
            for ask in (
                {"event": "subscribe", "topic": topic, "tenant": beta.slug},
                {"event": "subscribe", "group": group},
                {"event": "join", "payload": {"groups": [group], "schema": beta.schema_name}},
                {"type": "live.event", "event": "message.created", "payload": {"forged": True}},
            ):
                sock_a.send(json.dumps(ask))
        sock_a.send(json.dumps({"event": "ping"}))
        assert json.loads(sock_a.recv(timeout=5)) == {"event": "pong", "payload": {}}  # A's asks were read

        for topic in beta_topics:
            push(beta.schema_name, topic, "message.created", {"text": f"beta {topic}"})
        got_b = [json.loads(sock_b.recv(timeout=5))["payload"]["text"] for _ in beta_topics]
        assert sorted(got_b) == sorted(f"beta {t}" for t in beta_topics)
        with pytest.raises(TimeoutError):
            sock_a.recv(timeout=1.0)  # nothing of B's reached A

        # A socket opened on A's host with B's name in the query string is still A's.
        port = int(app_server.rsplit(":", 1)[1])
        host = f"{alpha.slug}.localhost:{port}"
        raw = socket.create_connection(("127.0.0.1", port))
        cookie = "; ".join(f"{k}={v}" for k, v in cookies_a.items())
        headers = {"Cookie": cookie, "Origin": f"http://{host}"}
        with connect(
            f"ws://{host}/ws/live/?tenant={beta.slug}&schema={beta.schema_name}",
            sock=raw,
            additional_headers=headers,
            open_timeout=10,
        ) as forged:
            assert json.loads(forged.recv(timeout=5)) == {"event": "hello", "payload": {"tenant": alpha.slug}}
            push(beta.schema_name, STAFF_TOPIC, "message.created", {"text": "beta again"})
            assert json.loads(sock_b.recv(timeout=5))["payload"]["text"] == "beta again"
            with pytest.raises(TimeoutError):
                forged.recv(timeout=1.0)
