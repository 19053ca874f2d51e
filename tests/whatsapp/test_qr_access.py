"""The WhatsApp Web QR code and pairing code link a phone to the workspace: owners and admins only, on
the page and on the live socket (an agent's socket never receives a QR)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from accounts.models import Role
from inbox.models import Channel, ChannelStatus
from inbox.services import channel_create
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.core.test_live_socket import _login_cookies, _open
from tests.support import make_member
from tests.whatsapp.test_web import fake_factory
from whatsapp.web import bus
from whatsapp.web.manager import SessionManager


@pytest.fixture
def web_channel(tenants: tuple[Tenant, Tenant], committed: Any) -> Iterator[tuple[Tenant, Channel, str]]:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    channel = channel_create(kind="whatsapp_web", name=f"QR {uuid.uuid4().hex[:4]}", phone_number="", credentials={})
    Channel.objects.filter(pk=channel.pk).update(status=ChannelStatus.PENDING)
    connection.set_schema_to_public()
    yield alpha, channel, bus.session_key(alpha.schema_name, channel.pk)
    connection.set_tenant(alpha)
    Channel.objects.filter(pk=channel.pk).update(status=ChannelStatus.NEEDS_RESCAN)  # out of later managers' way
    connection.set_schema_to_public()


def _events_until_quiet(sock: Any, quiet_s: float) -> list[str]:
    received: list[str] = []
    try:
        while True:
            received.append(json.loads(sock.recv(timeout=quiet_s))["event"])
    except TimeoutError:
        return received


def test_agents_get_neither_the_qr_page_nor_the_pairing_code(web_channel: Any) -> None:
    tenant, channel, _key = web_channel
    agent = make_member(tenant, f"qr-agent-{uuid.uuid4().hex[:6]}@alpha.test", Role.AGENT)
    client = tenant_client(tenant, agent, lang="en")
    assert client.get(f"/channels/{channel.pk}/qr/").status_code == 403
    assert client.post(f"/channels/{channel.pk}/qr/", {"action": "pair", "phone": "+5511955550001"}).status_code == 403
    assert f"/channels/{channel.pk}/qr/" not in client.get("/channels/").content.decode()
    owner = make_member(tenant, f"qr-owner-{uuid.uuid4().hex[:6]}@alpha.test", Role.OWNER)
    assert f"/channels/{channel.pk}/qr/" in tenant_client(tenant, owner).get("/channels/").content.decode()


def test_the_live_qr_reaches_managers_sockets_only(
    app_server: str, web_channel: tuple[Tenant, Channel, str], committed: Any
) -> None:
    tenant, channel, _key = web_channel
    tag = uuid.uuid4().hex[:6]
    make_member(tenant, f"qr-live-admin-{tag}@alpha.test", Role.ADMIN)
    make_member(tenant, f"qr-live-agent-{tag}@alpha.test", Role.AGENT)
    admin_cookies = _login_cookies(app_server, tenant, f"qr-live-admin-{tag}@alpha.test")
    agent_cookies = _login_cookies(app_server, tenant, f"qr-live-agent-{tag}@alpha.test")
    manager = SessionManager(process_id=f"p-qr-{tag}", client_factory=fake_factory)
    manager.wanted = lambda: [(tenant.schema_name, channel.pk)]  # type: ignore[method-assign]
    stop = threading.Event()
    with _open(app_server, tenant, admin_cookies) as admin_sock, _open(app_server, tenant, agent_cookies) as agent_sock:
        runner = threading.Thread(target=manager.run, args=(stop, 0.05), daemon=True)
        runner.start()
        try:
            seen = json.loads(admin_sock.recv(timeout=10))
            while seen["event"] != "waweb.qr" or seen["payload"]["channel_id"] != channel.pk:  # not another test's
                seen = json.loads(admin_sock.recv(timeout=10))
            assert seen["payload"]["channel_id"] == channel.pk and "<svg" in seen["payload"]["svg"]
            assert admin_sock.recv(timeout=5)  # codes keep coming to the admin meanwhile...
            assert "waweb.qr" not in _events_until_quiet(agent_sock, 1.5)  # ...and never to the agent
        finally:
            stop.set()
            runner.join(timeout=10)
