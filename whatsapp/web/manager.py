"""The session manager of the `wa-web` process: it owns live WhatsApp Web sessions, one per channel,
for every tenant, under a Redis lease renewed by heartbeat, so two processes never drive one number.

It persists each session (encrypted, in the channel's credentials) so a restart reconnects without a
new scan, reconnects with backoff after a drop, turns a logged-out session into "needs re-scan" (and
says so), and serves commands (send, typing, pair, logout) queued in Redis by the provider.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections
from django_tenants.utils import get_tenant_model, schema_context

from core import events
from core.realtime import MANAGERS_TOPIC, STAFF_TOPIC, push
from inbox.models import Channel, ChannelKind, ChannelStatus
from intake.services import RawEvent, events_store
from whatsapp.web import bus
from whatsapp.web.client import (
    FakeWebClient,
    WebClient,
    WebInbound,
    decode_session,
    encode_session,
    engine_error_classify,
)

logger = logging.getLogger(__name__)

ClientFactory = Callable[[str, bytes | None, Any], WebClient]

# The tenant's alerts (worded by the alerts app; core.events.ALERT_RAISED): a drop that lasts, a ban, or a
# logout that needs a person to scan again. A drop that reconnects within this time is no news.
DISCONNECTED_ALERT_AFTER_S = 180.0
ALERT_DISCONNECTED = "channel.disconnected"
ALERT_NEEDS_RESCAN = "channel.needs_rescan"

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end
"""


def default_factory(key: str, session: bytes | None, events: Any) -> WebClient:
    if settings.WA_WEB_ENGINE == "fake":
        return FakeWebClient(key, session, events)
    from whatsapp.web.client import NeonizeClient

    return NeonizeClient(key, session, events)


def qr_svg(code: str) -> str:
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(code, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()


@dataclass
class Session:
    key: str
    schema: str
    channel_id: int
    client: WebClient | None = None
    attempts: int = 0
    reconnect_at: float | None = None
    stopped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    logged_out: bool = False
    down_since: float | None = None  # monotonic time of the drop, while it is not connected again
    lock: threading.Lock = field(default_factory=threading.Lock)  # one store copy at a time


class SessionManager:
    def __init__(
        self,
        *,
        process_id: str | None = None,
        client_factory: ClientFactory | None = None,
        lease_ttl_s: float = bus.LEASE_TTL_S,
        disconnected_alert_after_s: float = DISCONNECTED_ALERT_AFTER_S,
    ) -> None:
        self.disconnected_alert_after_s = disconnected_alert_after_s
        self.process_id = process_id or f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self.factory = client_factory or default_factory
        self.lease_ttl_ms = int(lease_ttl_s * 1000)
        self.sessions: dict[str, Session] = {}
        self._renew = bus.r().register_script(RENEW)
        self._release = bus.r().register_script(RELEASE)
        from whatsapp.web.store import stores_sweep

        if swept := stores_sweep():
            logger.info("wa-web removed %s device stores left by dead processes", swept)

    # --- leases ---
    def _acquire(self, key: str) -> bool:
        return bool(bus.r().set(bus.lease_key(key), self.process_id, nx=True, px=self.lease_ttl_ms))

    def _renew_lease(self, key: str) -> bool:
        return bool(self._renew(keys=[bus.lease_key(key)], args=[self.process_id, self.lease_ttl_ms]))

    def _release_lease(self, key: str) -> None:
        self._release(keys=[bus.lease_key(key)], args=[self.process_id])

    # --- the loop ---
    def wanted(self) -> list[tuple[str, int]]:
        """(schema, channel id) of every QR channel that should have a live session."""
        found = []
        for schema in (
            get_tenant_model()
            .objects.exclude(schema_name="public")
            .filter(is_active=True)
            .values_list("schema_name", flat=True)
        ):
            with schema_context(schema):
                ids = Channel.objects.filter(kind=ChannelKind.WHATSAPP_WEB).exclude(status=ChannelStatus.NEEDS_RESCAN)
                found += [(schema, pk) for pk in ids.values_list("pk", flat=True)]
        return found

    def tick(self) -> None:
        close_old_connections()
        wanted = {bus.session_key(s, c): (s, c) for s, c in self.wanted()}
        for key in list(self.sessions):
            if key not in wanted or not self._renew_lease(key):
                self._stop(key, release=key in wanted)  # gone, or another process has it now
        for key, (schema, channel_id) in wanted.items():
            if key not in self.sessions and self._acquire(key):
                self._start(Session(key, schema, channel_id))
        now = time.monotonic()
        for session in list(self.sessions.values()):
            if session.reconnect_at is not None and now >= session.reconnect_at:
                session.reconnect_at = None
                self._connect(session)
            self._persist(session)  # the engine's store changed (keys ratchet on every message): keep it
            self._serve_commands(session)

    def run(self, stop: threading.Event, interval_s: float = 0.5) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                logger.exception("wa-web tick failed")
            stop.wait(interval_s)
        self.stop_all()
        connections.close_all()  # this thread's own connections

    def stop_all(self) -> None:
        for key in list(self.sessions):
            self._stop(key, release=True)

    # --- sessions ---
    def _start(self, session: Session) -> None:
        self.sessions[session.key] = session
        logger.info("wa-web %s owns session %s", self.process_id, session.key)
        self._connect(session)

    def _connect(self, session: Session) -> None:
        self._teardown(session)  # a reconnect starts a fresh engine from the stored session
        with schema_context(session.schema):
            channel = Channel.objects.filter(pk=session.channel_id).first()
            blob = decode_session(channel.credentials.get("session", "")) if channel else b""
        try:
            session.client = self.factory(session.key, blob or None, _Handlers(self, session))
            session.client.connect()
        except Exception:
            logger.exception("wa-web connect failed for %s", session.key)
            self._schedule_reconnect(session)

    def _teardown(self, session: Session) -> None:
        client, session.client = session.client, None
        if client is None:
            return
        try:
            self._persist_from(session, client)
        finally:
            try:
                client.close()
            except Exception:
                logger.exception("wa-web could not close the engine of %s", session.key)

    def _schedule_reconnect(self, session: Session, *, at_least_s: float = 0.0, detail: str = "") -> None:
        """Exponential backoff (2, 4, 8... up to 60 s) after a drop; a new engine is started by the tick."""
        session.attempts += 1
        if session.down_since is None:
            session.down_since = time.monotonic()
        delay = max(at_least_s, min(60.0, 2.0 ** min(session.attempts, 6)))
        session.reconnect_at = time.monotonic() + delay
        status = ChannelStatus.ERROR if detail else ChannelStatus.DISCONNECTED
        self._set_status(session, status, detail or f"reconnecting in {delay:.0f}s")

    def _stop(self, key: str, *, release: bool) -> None:
        session = self.sessions.pop(key, None)
        if session is not None:
            session.stopped = True
            self._teardown(session)
        if release:
            self._release_lease(key)

    def _set_status(self, session: Session, status: str, detail: str = "", **changes: Any) -> None:
        with schema_context(session.schema):
            Channel.objects.filter(pk=session.channel_id).update(status=status, status_detail=detail[:200], **changes)
        push(
            session.schema,
            STAFF_TOPIC,
            "waweb.status",
            {"channel_id": session.channel_id, "status": status, "detail": detail},
        )
        self._alert(session, status, detail)

    def _alert(self, session: Session, status: str, detail: str) -> None:
        """Raise or clear the channel's alerts for this status (announced now: no transaction is open)."""
        key = str(session.channel_id)
        if status == ChannelStatus.ACTIVE:
            session.down_since = None
            for kind in (ALERT_DISCONNECTED, ALERT_NEEDS_RESCAN):
                events.announce(events.ALERT_CLEARED, session.schema, {"kind": kind, "key": key})
            return
        if status == ChannelStatus.NEEDS_RESCAN:
            kind = ALERT_NEEDS_RESCAN
        elif status == ChannelStatus.ERROR or (
            session.down_since is not None and time.monotonic() - session.down_since >= self.disconnected_alert_after_s
        ):
            kind = ALERT_DISCONNECTED  # banned, or down for minutes
        else:
            return
        with schema_context(session.schema):
            name = Channel.objects.filter(pk=session.channel_id).values_list("name", flat=True).first() or key
        facts = {"channel_id": session.channel_id, "name": name, "detail": detail}
        payload = {"kind": kind, "key": key, "detail": facts}
        events.announce(events.ALERT_RAISED, session.schema, payload)
        if kind == ALERT_NEEDS_RESCAN:
            events.announce(events.ALERT_CLEARED, session.schema, {"kind": ALERT_DISCONNECTED, "key": key})

    def _persist(self, session: Session) -> None:
        if session.client is not None:
            self._persist_from(session, session.client)

    def _persist_from(self, session: Session, client: WebClient) -> None:
        """The engine's device store, when it changed, into the channel's (encrypted) credentials."""
        with session.lock:
            blob = client.session_if_changed()
            if not blob or session.logged_out:
                return  # unchanged, or a session WhatsApp ended must not come back
            with schema_context(session.schema):
                channel = Channel.objects.filter(pk=session.channel_id).first()
                if channel is not None:
                    channel.credentials = {**channel.credentials, "session": encode_session(blob)}
                    channel.save(update_fields=["credentials"])

    # --- commands from the provider and the UI ---
    def _serve_commands(self, session: Session) -> None:
        for _ in range(100):
            raw = bus.r().rpop(f"waweb:cmd:{session.key}")
            if raw is None:
                return
            command = json.loads(str(raw))
            if command.get("expires", 0) < time.time():
                continue  # its sender gave up; doing it now could surprise them
            try:
                answer = self._execute(session, command)
            except Exception as exc:
                error = engine_error_classify(exc)
                logger.warning("wa-web command %s failed for %s: %s", command.get("op"), session.key, error)
                answer = {"error": error.code, "message": error.message, "permanent": error.permanent}
            bus.reply(command["id"], **answer)

    def _execute(self, session: Session, command: dict[str, Any]) -> dict[str, Any]:
        client, op = session.client, command["op"]
        if client is None:
            return {"error": "NotConnected", "message": "no live session"}
        if op == "send":
            message_id = client.send(
                command["to"], command.get("kind", "text"), command.get("text", ""), command.get("payload")
            )
            bus.count_send(session.key)
            return {"id": message_id}
        if op == "typing":
            client.send_typing(command["to"])
            return {"ok": True}
        if op == "pair":
            return {"code": client.pair_phone(command["phone"])}
        if op == "logout":
            client.logout()
            self._logged_out(session, by_user=True)
            return {"ok": True}
        if op == "fake_scan" and isinstance(client, FakeWebClient):
            client.scan(command["phone"])
            return {"ok": True}
        return {"error": "UnknownCommand", "message": op}

    def _logged_out(self, session: Session, *, by_user: bool) -> None:
        session.logged_out = True
        with schema_context(session.schema):
            channel = Channel.objects.filter(pk=session.channel_id).first()
            if channel is not None:
                channel.credentials = {k: v for k, v in channel.credentials.items() if k != "session"}
                channel.save(update_fields=["credentials"])
        detail = "logged out here" if by_user else "logged out on the phone"
        self._set_status(session, ChannelStatus.NEEDS_RESCAN, detail)
        push(session.schema, STAFF_TOPIC, "waweb.logged_out", {"channel_id": session.channel_id, "by_user": by_user})
        self._stop(session.key, release=True)  # no reconnect loop: a person has to scan again


class _Handlers:
    """Engine events for one session (they may arrive on the engine's own threads)."""

    def __init__(self, manager: SessionManager, session: Session) -> None:
        self.manager, self.session = manager, session

    def on_qr(self, code: str) -> None:
        bus.r().set(f"waweb:qr:{self.session.key}", code, ex=60)
        qr = {"channel_id": self.session.channel_id, "svg": qr_svg(code)}
        push(self.session.schema, MANAGERS_TOPIC, "waweb.qr", qr)  # a QR links a phone: managers only

    def on_store_changed(self) -> None:
        self.manager._persist(self.session)
        close_old_connections()

    def on_banned(self, reason: str, expires_in_s: float) -> None:
        logger.warning("wa-web %s temporarily banned (%s) for %.0fs", self.session.key, reason, expires_in_s)
        self.manager._schedule_reconnect(
            self.session, at_least_s=expires_in_s, detail=f"temporarily banned by WhatsApp ({reason})"
        )
        push(
            self.session.schema, STAFF_TOPIC, "waweb.banned", {"channel_id": self.session.channel_id, "reason": reason}
        )
        close_old_connections()

    def on_connected(self, phone: str) -> None:
        self.session.attempts = 0
        self.session.reconnect_at = None  # the engine reconnected on its own: keep it
        self.manager._persist(self.session)
        from crm.services import phone_normalize

        self.manager._set_status(
            self.session,
            ChannelStatus.ACTIVE,
            f"connected as {phone}",
            phone_number=phone_normalize(phone, from_provider=True),
        )
        bus.r().delete(f"waweb:qr:{self.session.key}")
        close_old_connections()

    def on_message(self, message: WebInbound) -> None:
        if message.is_group_or_broadcast:
            return  # groups and status broadcasts are not conversations with a customer
        payload = {
            "kind": "message",
            "id": message.message_id,
            "from": message.sender_phone,
            "name": message.push_name,
            "type": message.type,
            "text": message.text,
            "payload": message.payload,
            "ts": message.timestamp or time.time(),
            "mime": message.mime,
            "filename": message.filename,
        }
        if message.media:
            media_ref = f"{self.session.key}:{message.message_id}"
            bus.media_park(media_ref, message.media, message.mime)
            payload["media_ref"] = media_ref
        events_store(
            provider="waweb",
            events=[
                RawEvent(f"msg:{self.session.key}:{message.message_id}", "whatsapp_web", self.session.key, payload)
            ],
        )
        close_old_connections()

    def on_receipt(self, message_ids: list[str], status: str) -> None:
        events_store(
            provider="waweb",
            events=[
                RawEvent(
                    f"rcpt:{self.session.key}:{mid}:{status}",
                    "whatsapp_web",
                    self.session.key,
                    {"kind": "receipt", "id": mid, "status": status, "ts": time.time()},
                )
                for mid in message_ids
            ],
        )
        close_old_connections()

    def on_logged_out(self) -> None:
        self.manager._logged_out(self.session, by_user=False)

    def on_disconnected(self) -> None:
        if not self.session.stopped:
            self.manager._schedule_reconnect(self.session)
