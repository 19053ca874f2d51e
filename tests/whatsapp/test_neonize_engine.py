"""The production engine path: the real NeonizeClient inside the real SessionManager, its handlers as
neonize registered them, driven with neonize's own protobuf events through neonize's dispatcher
(Event.execute, what the Go side calls). Where WhatsApp's servers would answer (no network here), the real
engine fails as it does offline, and that failure is part of what is tested."""

from __future__ import annotations

import ctypes
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from inbox.models import Channel, ChannelStatus, Message, MessageStatus
from inbox.providers import ErrorKind, OutboundMessage, ProviderError
from inbox.services import message_dispatch, message_send
from tests.messaging import open_conversation
from tests.support import wait_until
from tests.whatsapp.test_web import _complete, channel_now, fake_factory, only, web_channel  # noqa: F401
from whatsapp.web import bus
from whatsapp.web.client import (
    FAKES,
    NOT_ON_WHATSAPP,
    EngineError,
    NeonizeClient,
    decode_session,
    engine_error_classify,
)
from whatsapp.web.manager import SessionManager
from whatsapp.web.store import SQLITE_MAGIC, DeviceStore, filesystem_of, store_dir_problem, stores_sweep

SHM = Path("/dev/shm")  # noqa: S108 - the memory-backed folder production uses, on purpose


def deliver(engine: NeonizeClient, event: Any) -> None:
    """Hand neonize's dispatcher the event's bytes exactly as the Go side does."""
    from neonize.events import EVENT_TO_INT

    _complete(event)
    raw = event.SerializeToString()
    buffer = ctypes.create_string_buffer(raw, len(raw))
    engine.client.event.execute(0, ctypes.addressof(buffer), len(raw), EVENT_TO_INT[type(event)])


def device(phone: str) -> Any:
    from neonize.proto.Neonize_pb2 import Device

    found = Device()
    found.JID.User, found.JID.Server = phone.lstrip("+"), "s.whatsapp.net"
    return found


@pytest.fixture
def stores(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """A folder of the kind production uses (memory-backed), private to the test."""
    root = (SHM if SHM.is_dir() else tmp_path) / f"cp-test-waweb-{uuid.uuid4().hex[:8]}"
    settings.WA_WEB_STORE_DIR = str(root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_disconnect_event_reconnects_with_backoff(web_channel: Any, stores: Path) -> None:  # noqa: F811
    from neonize.events import ConnectedEv, DisconnectedEv, StreamReplacedEv

    tenant, channel, key = web_channel
    engines: list[NeonizeClient] = []

    def factory(key: str, session: bytes | None, events: Any) -> NeonizeClient:
        engine = NeonizeClient(key, session, events)  # registers its handlers with neonize
        engine.connect = lambda: engines.append(engine)  # type: ignore[method-assign]  # WhatsApp is not reachable
        return engine

    manager = SessionManager(process_id="p-neo-drop", client_factory=factory)
    only(manager, key)
    first = engines[0]
    deliver(first, device("+5511999990007"))  # neonize records the device (client.me) before Connected
    deliver(first, ConnectedEv(status=True))
    fresh = channel_now(tenant, channel)
    assert fresh.status == ChannelStatus.ACTIVE and fresh.phone_number == "+5511999990007"

    session = manager.sessions[key]
    deliver(first, DisconnectedEv())
    assert session.attempts == 1 and session.reconnect_at is not None
    assert 1.5 < session.reconnect_at - time.monotonic() <= 2.0
    assert channel_now(tenant, channel).status == ChannelStatus.DISCONNECTED
    deliver(first, StreamReplacedEv())  # still down: the wait grows
    assert session.attempts == 2 and 3.5 < session.reconnect_at - time.monotonic() <= 4.0

    only(manager, key)
    assert len(engines) == 1  # not before its time
    session.reconnect_at = 0  # time passes
    only(manager, key)
    second = engines[1]
    assert second is not first and session.client is second
    assert not first.store.folder.exists()  # the old engine stopped and its store went with it
    deliver(first, DisconnectedEv())  # a late event of the engine we closed changes nothing
    assert session.reconnect_at is None

    deliver(second, device("+5511999990007"))
    deliver(second, ConnectedEv(status=True))
    assert session.attempts == 0 and channel_now(tenant, channel).status == ChannelStatus.ACTIVE
    manager.stop_all()
    assert files_under(stores) == []


def test_device_store_persisted_encrypted_on_every_change_and_no_plaintext_left(
    web_channel: Any,  # noqa: F811
    stores: Path,
    settings: Any,
) -> None:
    """The real engine (goneonize) creates its SQLite store offline, then fails to reach WhatsApp: the store
    is copied out encrypted, the failure reconnects with backoff, and nothing plaintext stays on disk."""
    tenant, channel, key = web_channel
    settings.WA_WEB_ENGINE = "neonize"
    temp_before = set(os.listdir(tempfile.gettempdir()))
    manager = SessionManager(process_id="p-neo-store")  # the production factory: a real NeonizeClient
    only(manager, key)
    session = manager.sessions[key]
    engine = session.client
    assert isinstance(engine, NeonizeClient) and engine.store.path.is_relative_to(stores)
    if SHM.is_dir():
        assert filesystem_of(engine.store.path) in {"tmpfs", "ramfs"}  # never on disk, even while running
    assert oct(engine.store.folder.stat().st_mode & 0o777) == "0o700"
    assert oct(engine.store.path.stat().st_mode & 0o777) == "0o600"

    wait_until(  # and a reconnect is scheduled
        lambda: session.attempts == 1 and channel_now(tenant, channel).status == ChannelStatus.DISCONNECTED,
        timeout=60,
        what="the offline engine to give up",
    )

    def stored() -> bytes:
        only(manager, key)
        return decode_session(channel_now(tenant, channel).credentials.get("session", ""))

    wait_until(lambda: stored().startswith(SQLITE_MAGIC), timeout=20, what="the store copied out")
    first_copy = stored()
    restored = sqlite3.connect(":memory:")
    restored.deserialize(first_copy)
    tables = {row[0] for row in restored.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"whatsmeow_device", "whatsmeow_sessions", "whatsmeow_pre_keys"} <= tables

    connection.set_tenant(tenant)
    with connection.cursor() as cursor:  # encrypted at rest: neither the bytes nor their base64 are visible
        cursor.execute("SELECT credentials FROM inbox_channel WHERE id = %s", [channel.pk])
        raw = cursor.fetchone()[0]
    connection.set_schema_to_public()
    assert "SQLite" not in raw and "U1FMaXRlIGZvcm1hdCAz" not in raw and "whatsmeow" not in raw

    # a change in the live store (what the engine does on every message) is copied out on the next tick
    live = sqlite3.connect(engine.store.path)
    live.execute("INSERT INTO whatsmeow_version (version, compat) VALUES (999, 999)")
    live.commit()
    live.close()
    wait_until(lambda: stored() != first_copy, timeout=10, what="the change persisted")
    changed = sqlite3.connect(":memory:")
    changed.deserialize(stored())
    assert (999,) in changed.execute("SELECT version FROM whatsmeow_version").fetchall()

    # the reconnect starts a new engine from the stored copy; the old store is gone
    old_folder = engine.store.folder
    session.reconnect_at = 0
    only(manager, key)
    assert session.client is not engine and not old_folder.exists()
    reborn = session.client
    assert isinstance(reborn, NeonizeClient)
    assert reborn.store.path.read_bytes()[:16] == SQLITE_MAGIC  # restored before the engine started

    manager.stop_all()
    assert files_under(stores) == []
    assert {
        n for n in set(os.listdir(tempfile.gettempdir())) - temp_before if "waweb" in n or n.endswith(".db")
    } == set()


def test_a_store_is_not_copied_while_the_engine_commits(tmp_path: Path) -> None:
    """The copy takes an open-file-description lock, which excludes SQLite writers of this very process
    (plain POSIX locks would not: one process never conflicts with itself)."""
    store = DeviceStore("t:1", None, root=tmp_path)
    writer = sqlite3.connect(store.path, timeout=0)
    writer.execute("CREATE TABLE keys (k TEXT)")
    writer.commit()
    assert store.snapshot_if_changed() is not None and store.snapshot_if_changed() is None  # once per change

    writer.execute("BEGIN EXCLUSIVE")  # the engine is writing
    writer.execute("INSERT INTO keys VALUES ('x')")
    with store.shared_lock() as locked:
        assert not locked
    store._saved_counter = -1  # even when a change is due, no torn copy is taken mid-write
    assert store.snapshot_if_changed() is None
    writer.commit()

    with store.shared_lock() as locked:  # while we copy, the engine cannot commit (it waits and retries)
        assert locked
        writer.execute("INSERT INTO keys VALUES ('y')")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            writer.commit()
    writer.commit()
    copy = store.snapshot_if_changed()
    assert copy is not None
    check = sqlite3.connect(":memory:")
    check.deserialize(copy)
    assert check.execute("SELECT k FROM keys ORDER BY k").fetchall() == [("x",), ("y",)]
    writer.close()
    store.close()
    assert list(tmp_path.iterdir()) == []


def test_stores_of_dead_processes_are_swept(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead = tmp_path / f"{socket.gethostname()}-{child.stdout.strip()}-t_1_2-abcd"
    dead.mkdir()
    (dead / "device.db").write_bytes(SQLITE_MAGIC)
    alive = DeviceStore("t:3", None, root=tmp_path)
    assert stores_sweep(tmp_path) == 1
    assert not dead.exists() and alive.folder.exists()
    alive.close()


def test_engine_errors_are_classified() -> None:
    from neonize.exc import IsOnWhatsAppError, SendMessageError

    assert engine_error_classify(SendMessageError("websocket not connected")).permanent is False
    assert engine_error_classify(IsOnWhatsAppError("client is nil")).permanent is False
    assert engine_error_classify(ConnectionError("not connected")).permanent is False
    assert engine_error_classify(ValueError("media messages need their content")).permanent is True
    unknown_user = engine_error_classify(SendMessageError("server returned error 404: item-not-found"))
    assert unknown_user.permanent and unknown_user.code == NOT_ON_WHATSAPP


def test_a_number_not_on_whatsapp_is_permanent_in_the_real_engine(tmp_path: Path, settings: Any) -> None:
    """The real NeonizeClient asks WhatsApp (is_on_whatsapp) before the first send to a number."""
    from neonize.proto.Neonize_pb2 import IsOnWhatsAppResponse

    settings.WA_WEB_STORE_DIR = str(tmp_path)

    class Quiet:
        def __getattr__(self, _name: str) -> Any:
            return lambda *args, **kwargs: None

    engine = NeonizeClient("t_alpha:9", None, Quiet())  # type: ignore[arg-type]
    from neonize.exc import NeonizeError

    with pytest.raises(NeonizeError) as offline:  # the real Go call, not connected: retryable
        engine.send("+5511911112222", "text", "oi")
    assert engine_error_classify(offline.value).permanent is False

    asked: list[tuple[str, ...]] = []

    def whatsapp_says(*numbers: str) -> list[Any]:  # WhatsApp's usync answer for an unregistered number
        asked.append(numbers)
        return [IsOnWhatsAppResponse(Query=numbers[0], IsIn=False)]

    engine.client.is_on_whatsapp = whatsapp_says  # type: ignore[method-assign]
    with pytest.raises(EngineError) as refused:
        engine.send("+5511911112222", "text", "oi")
    assert refused.value.permanent and refused.value.code == NOT_ON_WHATSAPP and asked == [("5511911112222",)]
    engine.close()


def test_a_number_not_on_whatsapp_fails_once_and_is_never_retried(web_channel: Any) -> None:  # noqa: F811
    tenant, channel, key = web_channel
    manager = SessionManager(process_id="p-404", client_factory=fake_factory)
    only(manager, key)
    FAKES[key].scan("+5511999990008")
    stop = threading.Event()
    manager.wanted = lambda: [(tenant.schema_name, channel.pk)]  # type: ignore[method-assign]
    runner = threading.Thread(target=manager.run, args=(stop, 0.05), daemon=True)
    runner.start()
    try:
        connection.set_tenant(tenant)
        from whatsapp.web.provider import WebProvider

        with pytest.raises(ProviderError) as raised:
            WebProvider(Channel.objects.get(pk=channel.pk)).send(
                OutboundMessage(to="+5511900000404", type="text", body="oi")
            )
        assert raised.value.kind == ErrorKind.PERMANENT and raised.value.code == NOT_ON_WHATSAPP

        conversation = open_conversation(channel.pk, "+5511900000404")
        message = message_send(conversation=conversation, body="Promoção " + uuid.uuid4().hex[:4])
        message_dispatch(message_id=message.pk)

        def failed() -> bool:
            message.refresh_from_db()
            return message.status == MessageStatus.FAILED

        wait_until(failed, timeout=25)
        assert message.attempts == 1 and message.error_code == NOT_ON_WHATSAPP
        assert message_dispatch(message_id=message.pk) is None  # a final failure is not sent again
        message.refresh_from_db()
        assert message.attempts == 1 and not Message.objects.filter(pk=message.pk, status="queued").exists()
        assert all(sent["to"] != "+5511900000404" for sent in FAKES[key].sent)
    finally:
        stop.set()
        runner.join(timeout=10)
        connection.set_schema_to_public()
    assert bus.owner_of(key) is None


def test_a_store_folder_on_disk_is_flagged_at_start(settings: Any, tmp_path: Path) -> None:
    from whatsapp.apps import store_dir_check

    settings.WA_WEB_ENGINE = "neonize"
    disk = filesystem_of(tmp_path)
    settings.WA_WEB_STORE_DIR = str(tmp_path / "stores")
    warnings = store_dir_check()
    if disk in {"tmpfs", "ramfs"}:
        assert warnings == []
    else:
        assert [w.id for w in warnings] == ["whatsapp.W001"] and disk in warnings[0].msg
    if SHM.is_dir():
        settings.WA_WEB_STORE_DIR = str(SHM / "cp-waweb")
        assert store_dir_check() == [] and store_dir_problem(SHM / "cp-waweb") == ""
    settings.WA_WEB_ENGINE = "fake"
    settings.WA_WEB_STORE_DIR = str(tmp_path)
    assert store_dir_check() == []
