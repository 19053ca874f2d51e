"""WhatsApp Web (QR): the real session manager, lease, persistence and provider, driven through a fake
engine with the library's methods and events (no WhatsApp server is reachable here)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from inbox.ingest import drain_batch
from inbox.models import Channel, ChannelStatus, Direction, Message, MessageStatus
from inbox.services import channel_create, message_dispatch, message_send
from tenants.models import Tenant
from tests.messaging import open_conversation
from tests.support import wait_until
from whatsapp.web import bus
from whatsapp.web.client import FAKES, FakeWebClient, WebInbound
from whatsapp.web.manager import SessionManager


def fake_factory(key: str, session: bytes | None, events: Any) -> FakeWebClient:
    return FakeWebClient(key, session, events, qr_every_s=0.05)


@pytest.fixture
def web_channel(tenants: tuple[Tenant, Tenant], committed: Any) -> Iterator[tuple[Tenant, Channel, str]]:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    channel = channel_create(kind="whatsapp_web", name=f"QR {uuid.uuid4().hex[:4]}", phone_number="", credentials={})
    Channel.objects.filter(pk=channel.pk).update(status=ChannelStatus.PENDING)
    connection.set_schema_to_public()
    yield alpha, channel, bus.session_key(alpha.schema_name, channel.pk)
    connection.set_tenant(alpha)
    Channel.objects.filter(pk=channel.pk).update(status=ChannelStatus.NEEDS_RESCAN)  # out of every later manager's way
    connection.set_schema_to_public()


def channel_now(tenant: Tenant, channel: Channel) -> Channel:
    connection.set_tenant(tenant)
    fresh = Channel.objects.get(pk=channel.pk)
    connection.set_schema_to_public()
    return fresh


def only(manager: SessionManager, key: str) -> None:
    """Tick, keeping only this test's session (other tests' channels are not ours to drive)."""
    schema, channel_id = key.split(":")
    manager.wanted = lambda: [(schema, int(channel_id))]  # type: ignore[method-assign]
    manager.tick()


def test_scan_connects_persists_encrypted_and_a_restart_needs_no_new_scan(web_channel: Any) -> None:
    tenant, channel, key = web_channel
    first = SessionManager(process_id="p1", client_factory=fake_factory)
    only(first, key)
    wait_until(lambda: bus.latest_qr(key).startswith("2@"), timeout=5)  # a QR is offered (and pushed live)
    FAKES[key].scan("+5511999990001")
    fresh = channel_now(tenant, channel)
    assert fresh.status == ChannelStatus.ACTIVE and fresh.phone_number == "+5511999990001"
    assert fresh.credentials["session"]
    connection.set_tenant(tenant)
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM inbox_channel WHERE id = %s", [channel.pk])
        assert "fake-session" not in cursor.fetchone()[0]  # encrypted at rest
    connection.set_schema_to_public()
    first.stop_all()

    bus.r().delete(f"waweb:qr:{key}")
    second = SessionManager(process_id="p2", client_factory=fake_factory)
    only(second, key)
    assert FAKES[key].connected and FAKES[key].connect_calls == 1
    time.sleep(0.2)
    assert bus.latest_qr(key) == ""  # reconnected from the stored session: no QR
    second.stop_all()


def test_two_processes_never_own_one_session(web_channel: Any) -> None:
    _tenant, _channel, key = web_channel
    one = SessionManager(process_id="one", client_factory=fake_factory, lease_ttl_s=0.6)
    two = SessionManager(process_id="two", client_factory=fake_factory, lease_ttl_s=0.6)
    for _ in range(3):
        only(one, key)
        only(two, key)
    assert (key in one.sessions) != (key in two.sessions)
    assert bus.owner_of(key) == "one"
    orphan = one.sessions[key].client
    one.sessions.clear()  # "one" dies without releasing: its lease must run out first
    only(two, key)
    assert key not in two.sessions
    time.sleep(0.8)
    only(two, key)
    assert key in two.sessions and bus.owner_of(key) == "two"
    two.stop_all()
    assert bus.owner_of(key) is None
    assert orphan is not None
    orphan.close()  # the dead process's engine stops emitting QR codes to later tests


def test_logged_out_on_the_phone_needs_a_rescan_and_does_not_loop(web_channel: Any) -> None:
    tenant, channel, key = web_channel
    manager = SessionManager(process_id="p-logout", client_factory=fake_factory)
    only(manager, key)
    FAKES[key].scan("+5511999990002")
    FAKES[key].remote_logout()
    fresh = channel_now(tenant, channel)
    assert fresh.status == ChannelStatus.NEEDS_RESCAN and "session" not in fresh.credentials
    assert key not in manager.sessions and bus.owner_of(key) is None
    del manager.wanted  # back to the real discovery: a channel that needs a person to scan is left alone
    manager.tick()
    assert key not in manager.sessions


def test_a_dropped_connection_reconnects_with_backoff(web_channel: Any) -> None:
    tenant, channel, key = web_channel
    manager = SessionManager(process_id="p-drop", client_factory=fake_factory)
    only(manager, key)
    FAKES[key].scan("+5511999990003")
    first_client = FAKES[key]
    first_client.drop()
    session = manager.sessions[key]
    assert channel_now(tenant, channel).status == ChannelStatus.DISCONNECTED
    assert session.reconnect_at is not None and session.attempts == 1
    session.reconnect_at = 0  # time passes
    only(manager, key)
    assert FAKES[key] is not first_client and FAKES[key].connected
    assert channel_now(tenant, channel).status == ChannelStatus.ACTIVE
    manager.stop_all()


def test_send_receive_and_receipts_through_the_provider(web_channel: Any) -> None:
    tenant, channel, key = web_channel
    manager = SessionManager(process_id="p-send", client_factory=fake_factory)
    only(manager, key)
    FAKES[key].scan("+5511999990004")
    stop = threading.Event()
    manager.wanted = lambda: [(tenant.schema_name, channel.pk)]  # type: ignore[method-assign]
    runner = threading.Thread(target=manager.run, args=(stop, 0.05), daemon=True)
    runner.start()
    try:
        connection.set_tenant(tenant)
        conversation = open_conversation(channel.pk, "+5511977770001")
        message = message_send(conversation=conversation, body="Olá pelo WhatsApp Web")
        message_dispatch(message_id=message.pk)  # or a running worker got there first: either way, once

        def is_sent() -> bool:
            message.refresh_from_db()
            return message.status == MessageStatus.SENT

        wait_until(is_sent, timeout=25)
        sent = FAKES[key].sent[-1]
        assert (sent["id"], sent["to"], sent["text"]) == (
            message.provider_message_id,
            "+5511977770001",
            "Olá pelo WhatsApp Web",
        )
        from whatsapp.web.provider import WebProvider

        assert WebProvider(Channel.objects.get(pk=channel.pk)).usage()["sent_today"] >= 1

        FAKES[key].receipt([message.provider_message_id], "delivered")
        FAKES[key].receipt([message.provider_message_id], "read")
        FAKES[key].receive(
            WebInbound(
                message_id="IN1" + uuid.uuid4().hex[:8],
                chat="5511977770001@s.whatsapp.net",
                sender_phone="+5511977770001",
                push_name="Rita",
                type="text",
                text="Recebi, obrigada!",
            )
        )
        FAKES[key].receive(
            WebInbound(
                message_id="GRP" + uuid.uuid4().hex[:8],
                chat="120363@g.us",
                sender_phone="+5511977770009",
                push_name="Grupo",
                type="text",
                text="mensagem de grupo",
            )
        )

        def settled() -> bool:
            drain_batch()
            connection.set_tenant(tenant)
            return (
                Message.objects.get(pk=message.pk).status == MessageStatus.READ
                and Message.objects.filter(
                    conversation=conversation, direction=Direction.INBOUND, body="Recebi, obrigada!"
                ).exists()
            )

        wait_until(settled, timeout=20)
        connection.set_tenant(tenant)
        assert not Message.objects.filter(body="mensagem de grupo").exists()  # groups are ignored
    finally:
        stop.set()
        runner.join(timeout=10)
        connection.set_schema_to_public()


def test_provider_says_retry_when_no_session_is_live(web_channel: Any) -> None:
    from inbox.providers import ErrorKind, OutboundMessage, ProviderError
    from whatsapp.web.provider import WebProvider

    tenant, channel, _key = web_channel
    connection.set_tenant(tenant)
    with pytest.raises(ProviderError) as raised:
        WebProvider(Channel.objects.get(pk=channel.pk)).send(
            OutboundMessage(to="+5511900000000", type="text", body="x")
        )
    assert raised.value.kind == ErrorKind.RETRYABLE
    connection.set_schema_to_public()


def test_qr_pages_connect_rescan_and_pair(web_channel: Any, django_db_blocker: Any) -> None:
    from accounts.models import Role
    from tests.conftest import tenant_client
    from tests.support import make_member

    tenant, channel, key = web_channel
    owner = make_member(tenant, f"qr-{uuid.uuid4().hex[:6]}@alpha.test", Role.OWNER)
    client = tenant_client(tenant, owner, lang="en")
    manager = SessionManager(process_id="p-ui", client_factory=fake_factory)
    stop = threading.Event()
    manager.wanted = lambda: [(tenant.schema_name, channel.pk)]  # type: ignore[method-assign]
    runner = threading.Thread(target=manager.run, args=(stop, 0.05), daemon=True)
    runner.start()
    try:
        wait_until(lambda: bus.latest_qr(key) != "", timeout=5)
        page = client.get(f"/channels/{channel.pk}/qr/").content.decode()
        assert "<svg" in page and "Linked devices" in page
        paired = client.post(
            f"/channels/{channel.pk}/qr/", {"action": "pair", "phone": "+5511955550001"}
        ).content.decode()
        assert "Enter this code on the phone" in paired
        client.post(f"/channels/{channel.pk}/qr/", {"action": "demo_scan", "phone": "+5511955550001"})
        assert "Connected as +5511955550001" in client.get(f"/channels/{channel.pk}/qr/").content.decode()
        client.post(f"/channels/{channel.pk}/qr/", {"action": "logout"})
        assert channel_now(tenant, channel).status == ChannelStatus.NEEDS_RESCAN
        client.post(f"/channels/{channel.pk}/qr/", {"action": "rescan"})
        assert channel_now(tenant, channel).status == ChannelStatus.PENDING
    finally:
        stop.set()
        runner.join(timeout=10)
    qr_name = f"Vendas QR {uuid.uuid4().hex[:4]}"
    created = client.post("/channels/qr/new/", {"name": qr_name})
    assert created.status_code == 302 and "/qr/" in created["Location"]
    connection.set_tenant(tenant)
    assert Channel.objects.get(name=qr_name).status == ChannelStatus.PENDING
    Channel.objects.filter(name=qr_name).update(status=ChannelStatus.NEEDS_RESCAN)  # no later manager should drive it
    connection.set_schema_to_public()


def test_two_wa_web_processes_never_own_one_session(web_channel: Any, test_env: dict[str, str]) -> None:
    """Two real `wa-web` processes (the Procfile command) race for the same number: one owns it, and
    when it stops, the other takes over."""
    import subprocess
    import sys
    from pathlib import Path

    from django.conf import settings

    _tenant, _channel, key = web_channel
    logs = Path(settings.BASE_DIR) / "test-artifacts"
    logs.mkdir(exist_ok=True)
    env = dict(test_env, WA_WEB_ENGINE="fake", LOG_LEVEL="INFO")
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "run_wa_web"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=(logs / f"wa-web-{i}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for i in range(2)
    ]
    try:
        # two Django processes starting on a busy 2-core machine: give them time
        wait_until(lambda: bus.owner_of(key) is not None, timeout=90, what="one wa-web process to own the session")
        time.sleep(3)  # several heartbeats of both
        owners = [i for i in range(2) if f"owns session {key}" in (logs / f"wa-web-{i}.log").read_text()]
        assert len(owners) == 1, owners
        first = bus.owner_of(key)
        procs[owners[0]].terminate()
        procs[owners[0]].wait(timeout=20)
        other = 1 - owners[0]
        wait_until(lambda: f"owns session {key}" in (logs / f"wa-web-{other}.log").read_text(), timeout=30)
        assert bus.owner_of(key) not in (None, first)
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        ("conversation", "text"),
        ("imageMessage", "image"),
        ("audioMessage", "audio"),
        ("documentMessage", "document"),
        ("locationMessage", "location"),
        ("reactionMessage", "reaction"),
    ],
)
def test_neonize_events_map_to_our_inbound_shape(field: str, kind: str, tmp_path: Any, settings: Any) -> None:
    """The handlers as production registers them: a real NeonizeClient (no connection is made) gets the
    library's own MessageEv bytes through neonize's dispatcher (Event.execute, what the Go side calls)."""
    import ctypes

    from neonize.events import EVENT_TO_INT, MessageEv, ReceiptEv
    from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa

    from whatsapp.web.client import NeonizeClient

    parts: dict[str, Any] = {
        "conversation": {"conversation": "Oi!"},
        "imageMessage": {"imageMessage": wa.ImageMessage(caption="foto", mimetype="image/jpeg")},
        "audioMessage": {"audioMessage": wa.AudioMessage(mimetype="audio/ogg", PTT=True)},
        "documentMessage": {"documentMessage": wa.DocumentMessage(fileName="boleto.pdf", mimetype="application/pdf")},
        "locationMessage": {
            "locationMessage": wa.LocationMessage(degreesLatitude=-23.5, degreesLongitude=-46.6, name="Loja")
        },
        "reactionMessage": {"reactionMessage": wa.ReactionMessage(text="👍")},
    }[field]
    event = MessageEv()
    event.Info.ID = "3EB0ABC"
    event.Info.Pushname = "Ana"
    event.Info.Timestamp = 1_717_000_000
    event.Info.MessageSource.Chat.User, event.Info.MessageSource.Chat.Server = "5511988887777", "s.whatsapp.net"
    event.Info.MessageSource.Sender.User = "5511988887777"
    event.Message.CopyFrom(wa.Message(**parts))

    received: list[Any] = []

    class Recorder:
        def on_message(self, message: Any) -> None:
            received.append(message)

        def on_receipt(self, message_ids: list[str], status: str) -> None:
            received.append((message_ids, status))

    settings.WA_WEB_STORE_DIR = str(tmp_path)
    engine = NeonizeClient("t_alpha:1", None, Recorder())  # type: ignore[arg-type]
    engine.client.download_any = lambda message: b"media-bytes"  # the download itself needs WhatsApp's servers

    def deliver(message: Any) -> None:
        _complete(message)
        raw = message.SerializeToString()
        buffer = ctypes.create_string_buffer(raw, len(raw))
        engine.client.event.execute(0, ctypes.addressof(buffer), len(raw), EVENT_TO_INT[type(message)])

    deliver(event)
    (inbound,) = received
    assert (inbound.type, inbound.sender_phone, inbound.push_name, inbound.chat) == (
        kind,
        "+5511988887777",
        "Ana",
        "5511988887777@s.whatsapp.net",
    )
    assert inbound.timestamp == 1_717_000_000
    if kind in {"image", "audio", "document"}:
        assert inbound.media == b"media-bytes"
    if kind == "audio":
        assert inbound.payload == {"voice": True}
    if kind == "document":
        assert inbound.filename == "boleto.pdf"
    if kind == "location":
        assert inbound.payload["latitude"] == -23.5 and inbound.text == "Loja"
    if kind == "reaction":
        assert inbound.payload["emoji"] == "👍"
    if kind == "text":
        assert inbound.text == "Oi!"
        receipt = ReceiptEv()
        receipt.MessageIDs.extend(["3EB0ABC"])
        for receipt_type, status in (("DELIVERED", "delivered"), ("READ", "read"), ("PLAYED", "read")):
            receipt.Type = receipt_type  # neonize's ReceiptType enum
            deliver(receipt)
            assert received[-1] == (["3EB0ABC"], status)
        receipt.Type = "READ_SELF"  # one of the business's own devices: no status change
        deliver(receipt)
        assert received[-1] == (["3EB0ABC"], "read") and len(received) == 4
    engine.close()
    assert list(tmp_path.iterdir()) == []  # the engine's store folder went with it


def _complete(message: Any) -> None:
    """Give every required proto2 field its default, as the Go side always sends them."""
    from google.protobuf.descriptor import FieldDescriptor

    for _round in range(10):
        missing = message.FindInitializationErrors()
        if not missing:
            return
        for path in missing:
            *parents, name = path.split(".")
            target = message
            for parent in parents:
                target = getattr(target, parent)
            descriptor = target.DESCRIPTOR.fields_by_name[name]
            if descriptor.type == FieldDescriptor.TYPE_MESSAGE:
                getattr(target, name).SetInParent()
            else:
                setattr(target, name, descriptor.default_value)
    raise AssertionError(f"required fields still missing: {message.FindInitializationErrors()}")


def test_inbound_media_over_qr_is_stored(web_channel: Any) -> None:
    tenant, _channel, key = web_channel
    manager = SessionManager(process_id="p-media", client_factory=fake_factory)
    only(manager, key)
    FAKES[key].scan("+5511999990005")
    message_id = "IMG" + uuid.uuid4().hex[:8]
    FAKES[key].receive(
        WebInbound(
            message_id=message_id,
            chat="5511977770002@s.whatsapp.net",
            sender_phone="+5511977770002",
            push_name="Caio",
            type="image",
            text="olha",
            media=b"\xff\xd8jpeg",
            mime="image/jpeg",
        )
    )

    def applied() -> bool:  # by us, or by a worker that claimed the event first
        drain_batch()
        connection.set_tenant(tenant)
        return Message.objects.filter(provider_message_id=message_id).exists()

    wait_until(applied, timeout=20)
    message = Message.objects.get(provider_message_id=message_id)
    from inbox.services import media_store

    media_store(message_id=message.pk)
    message.refresh_from_db()
    assert message.media.read() == b"\xff\xd8jpeg" and message.media_mime == "image/jpeg"
    connection.set_schema_to_public()
    manager.stop_all()


def _alert_of(tenant: Tenant, kind: str, channel: Channel) -> Any:
    from alerts.models import Alert

    connection.set_tenant(tenant)
    found = list(Alert.objects.filter(kind=kind, key=str(channel.pk)).order_by("id"))
    connection.set_schema_to_public()
    return found


def test_a_logout_raises_the_rescan_alert_and_a_new_scan_clears_it(web_channel: Any) -> None:
    tenant, channel, key = web_channel
    manager = SessionManager(process_id="p-alert-logout", client_factory=fake_factory)
    only(manager, key)
    FAKES[key].scan("+5511999990004")
    assert _alert_of(tenant, "channel.needs_rescan", channel) == []
    FAKES[key].remote_logout()
    (alert,) = _alert_of(tenant, "channel.needs_rescan", channel)
    assert alert.is_open and alert.detail["channel_id"] == channel.pk and alert.detail["name"] == channel.name
    assert alert.detail["detail"] == "logged out on the phone"

    connection.set_tenant(tenant)
    Channel.objects.filter(pk=channel.pk).update(status=ChannelStatus.PENDING)  # "scan again" on the page
    connection.set_schema_to_public()
    only(manager, key)
    FAKES[key].scan("+5511999990004")
    (alert,) = _alert_of(tenant, "channel.needs_rescan", channel)
    assert alert.resolution == "cleared"
    manager.stop_all()


def test_a_drop_that_lasts_raises_the_disconnected_alert_and_reconnecting_clears_it(web_channel: Any) -> None:
    tenant, channel, key = web_channel
    manager = SessionManager(process_id="p-alert-drop", client_factory=fake_factory, disconnected_alert_after_s=0.3)
    only(manager, key)
    FAKES[key].scan("+5511999990005")
    FAKES[key].drop()
    assert _alert_of(tenant, "channel.disconnected", channel) == []  # a drop is not news at once
    session = manager.sessions[key]
    time.sleep(0.35)
    FAKES[key].drop()  # still down on the next attempt, past the threshold
    (alert,) = _alert_of(tenant, "channel.disconnected", channel)
    assert alert.is_open
    session.reconnect_at = 0
    only(manager, key)
    assert channel_now(tenant, channel).status == ChannelStatus.ACTIVE
    (alert,) = _alert_of(tenant, "channel.disconnected", channel)
    assert alert.resolution == "cleared"
    manager.stop_all()
