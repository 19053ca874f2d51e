"""The boundary to the WhatsApp Web engine. `NeonizeClient` wraps neonize (whatsmeow); `FakeWebClient`
has the same methods and events and drives the session manager in tests and in the demo."""

from __future__ import annotations

import base64
import functools
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

logger = logging.getLogger(__name__)
# whatsmeow receipt types that move our status; READ_SELF and PLAYED_SELF are our own devices reading.
RECEIPT_STATUS = {"DELIVERED": "delivered", "READ": "read", "PLAYED": "read"}


@dataclass(frozen=True)
class WebInbound:
    message_id: str
    chat: str  # "5511...@s.whatsapp.net", a group "...@g.us" or "status@broadcast"
    sender_phone: str
    push_name: str
    type: str  # text, image, audio, video, document, location, reaction
    text: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    timestamp: float = 0.0
    media: bytes | None = None  # downloaded by the engine; handed to the app through Redis
    mime: str = ""
    filename: str = ""

    @property
    def is_group_or_broadcast(self) -> bool:
        return self.chat.endswith("@g.us") or self.chat.endswith("@broadcast") or self.chat.startswith("status@")


class WebEvents(Protocol):
    def on_qr(self, code: str) -> None: ...
    def on_connected(self, phone: str) -> None: ...
    def on_message(self, message: WebInbound) -> None: ...
    def on_receipt(self, message_ids: list[str], status: str) -> None: ...
    def on_logged_out(self) -> None: ...
    def on_disconnected(self) -> None: ...
    def on_store_changed(self) -> None: ...
    def on_banned(self, reason: str, expires_in_s: float) -> None: ...


class EngineError(Exception):
    """A failed engine call, classified: `permanent` ones (a number not on WhatsApp, a message the engine
    cannot build) must never be retried."""

    def __init__(self, code: str, message: str, *, permanent: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.permanent = code, message, permanent


NOT_ON_WHATSAPP = "not_on_whatsapp"
# whatsmeow's error texts that mean "this recipient can never get it" (vs. connection and rate trouble)
PERMANENT_TEXTS = (
    "not on whatsapp",
    "invalid jid",
    "no such user",
    "user not found",
    "item-not-found",
    "unknown server",
)


def engine_error_classify(exc: BaseException) -> EngineError:
    """Any exception from an engine call -> EngineError(code, message, permanent)."""
    if isinstance(exc, EngineError):
        return exc
    text = str(exc)[:200]
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        return EngineError("bad_request", text, permanent=True)
    if any(marker in text.lower() for marker in PERMANENT_TEXTS):
        return EngineError(NOT_ON_WHATSAPP, text, permanent=True)
    return EngineError(type(exc).__name__, text, permanent=False)


class WebClient(Protocol):
    def connect(self) -> None: ...
    def disconnect(self) -> None: ...
    def logout(self) -> None: ...
    def send(self, to_phone: str, kind: str, text: str = "", payload: dict[str, Any] | None = None) -> str: ...
    def send_typing(self, to_phone: str) -> None: ...
    def pair_phone(self, phone: str) -> str: ...
    def session_if_changed(self) -> bytes | None: ...
    def close(self) -> None: ...


# --- the fake engine (tests, demo) ----------------------------------------------------------------

FAKES: dict[str, FakeWebClient] = {}  # session key -> the live fake, so tests and the demo can drive it


class FakeWebClient:
    """Behaves like a linked device: emits rotating QR codes until `scan()`, then connects and remembers
    the session (`session_if_changed`), so a restart reconnects without a QR. Numbers in `UNREGISTERED`
    are not on WhatsApp: sending to them fails permanently, as the real engine's check says."""

    UNREGISTERED: ClassVar[set[str]] = {"+5511900000404"}

    def __init__(self, key: str, session: bytes | None, events: WebEvents, qr_every_s: float = 20.0) -> None:
        self.key, self.session, self.events, self.qr_every_s = key, session, events, qr_every_s
        self.connected = False
        self.sent: list[dict[str, Any]] = []
        self.typing: list[str] = []
        self.connect_calls = 0
        self._changed = False
        self._stop = threading.Event()
        FAKES[key] = self

    def connect(self) -> None:
        self.connect_calls += 1
        self._stop.clear()
        if self.session:
            phone = self.session.decode().split(":", 1)[1]
            self.connected = True
            self.events.on_connected(phone)
            return
        threading.Thread(target=self._emit_qr, daemon=True).start()

    def _emit_qr(self) -> None:
        while not self._stop.is_set() and not self.connected:
            self.events.on_qr(f"2@{secrets.token_urlsafe(24)},{secrets.token_urlsafe(16)}")
            self._stop.wait(self.qr_every_s)

    # what the phone does
    def scan(self, phone: str) -> None:
        self.session = f"fake-session:{phone}".encode()
        self.connected, self._changed = True, True
        self._stop.set()
        self.events.on_connected(phone)

    def rotate_keys(self) -> None:
        """What the engine does to its store on every message (ratchets, prekeys): a change to persist."""
        self.session = (self.session or b"") + b"+"
        self._changed = True
        self.events.on_store_changed()

    def receive(self, message: WebInbound) -> None:
        self.events.on_message(message)

    def receipt(self, message_ids: list[str], status: str) -> None:
        self.events.on_receipt(message_ids, status)

    def remote_logout(self) -> None:
        self.connected, self.session = False, None
        self.events.on_logged_out()

    def drop(self) -> None:
        self.connected = False
        self.events.on_disconnected()

    # what the app does
    def disconnect(self) -> None:
        self._stop.set()
        self.connected = False

    def logout(self) -> None:
        self.disconnect()
        self.session = None

    def send(self, to_phone: str, kind: str, text: str = "", payload: dict[str, Any] | None = None) -> str:
        if not self.connected:
            raise ConnectionError("not connected")
        if to_phone in self.UNREGISTERED:
            raise EngineError(NOT_ON_WHATSAPP, f"{to_phone} is not on WhatsApp", permanent=True)
        message_id = "3EB0" + secrets.token_hex(8).upper()
        self.sent.append({"id": message_id, "to": to_phone, "kind": kind, "text": text, "payload": payload or {}})
        return message_id

    def send_typing(self, to_phone: str) -> None:
        self.typing.append(to_phone)

    def pair_phone(self, phone: str) -> str:
        return secrets.token_hex(4).upper()

    def session_if_changed(self) -> bytes | None:
        if not self._changed:
            return None
        self._changed = False
        return self.session or b""

    def close(self) -> None:
        self.disconnect()


# --- neonize (whatsmeow) -----------------------------------------------------------------------------


class NeonizeClient:
    """neonize keeps its device keys in SQLite: the file lives in memory-backed storage only (see
    whatsapp/web/store.py), restored from the channel's encrypted credentials before connecting, copied back
    after every change and deleted when the session stops."""

    def __init__(self, key: str, session: bytes | None, events: WebEvents) -> None:
        from neonize.client import NewClient

        from whatsapp.web.store import DeviceStore

        self.key, self.events = key, events
        self.store = DeviceStore(key, session)
        # a fresh engine id per instance: a reconnect never shares one with the engine still shutting down
        self.client = NewClient(str(self.store.path), uuid=f"{key}:{secrets.token_hex(4)}")
        self._registered: set[str] = set()  # numbers WhatsApp confirmed, so each is looked up once
        self._connect_thread: threading.Thread | None = None
        self._closing = threading.Event()
        self.register(self.client, events)

    def register(self, client: Any, events: WebEvents) -> None:
        """Every engine event we act on, registered the way neonize dispatches them (Event.execute)."""
        from neonize.events import (
            ConnectedEv,
            ConnectFailureEv,
            DisconnectedEv,
            LoggedOutEv,
            MessageEv,
            PairStatusEv,
            ReceiptEv,
            StreamReplacedEv,
            TemporaryBanEv,
        )

        key = self.key

        def from_engine(handler: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
            @functools.wraps(handler)
            def run(engine: Any, event: Any) -> None:
                _engine_thread.inside = True  # close() must not wait for the engine from its own callback
                try:
                    handler(engine, event)
                finally:
                    _engine_thread.inside = False

            return run

        client.event.qr(lambda _client, data: events.on_qr(data.decode() if isinstance(data, bytes) else str(data)))

        @client.event(ConnectedEv)
        @from_engine
        def _connected(engine: Any, _event: Any) -> None:
            me = engine.me if engine.me is not None else engine.get_me()  # neonize keeps the Device event
            events.on_connected("+" + str(getattr(getattr(me, "JID", me), "User", "")))

        @client.event(PairStatusEv)
        @from_engine
        def _paired(_engine: Any, event: Any) -> None:
            if event.Error:
                logger.warning("wa-web %s: pairing failed: %s", key, event.Error[:200])
                return
            events.on_store_changed()  # the new device's keys were just written: keep them now

        @client.event(LoggedOutEv)
        @from_engine
        def _logged_out(_engine: Any, _event: Any) -> None:
            events.on_logged_out()

        @client.event(DisconnectedEv)
        @from_engine
        def _disconnected(_engine: Any, _event: Any) -> None:
            if not self._closing.is_set():
                events.on_disconnected()

        @client.event(StreamReplacedEv)
        @from_engine
        def _replaced(_engine: Any, _event: Any) -> None:
            logger.warning("wa-web %s: another client took over this session's stream", key)
            events.on_disconnected()

        @client.event(ConnectFailureEv)
        @from_engine
        def _connect_failed(_engine: Any, event: Any) -> None:
            reason = _enum_name(event, "Reason")
            if reason in {"LOGGED_OUT", "MAIN_DEVICE_GONE"}:
                events.on_logged_out()
            elif reason == "TEMP_BANNED":
                events.on_banned(reason, 3600.0)
            else:
                events.on_disconnected()

        @client.event(TemporaryBanEv)
        @from_engine
        def _banned(_engine: Any, event: Any) -> None:
            events.on_banned(_enum_name(event, "Code"), float(event.Expire or 3600))

        @client.event(MessageEv)
        @from_engine
        def _message(engine: Any, event: Any) -> None:
            try:
                inbound = self._inbound(engine, event)
            except Exception:  # a message we cannot map (or whose media fails) must not stop the session
                logger.exception("wa-web %s: could not read message %s", key, getattr(event.Info, "ID", "?"))
                return
            events.on_message(inbound)

        @client.event(ReceiptEv)
        @from_engine
        def _receipt(_engine: Any, event: Any) -> None:
            # Type is neonize's ReceiptType enum (DELIVERED = 1, READ = 4, PLAYED = 6...), not a string.
            status = RECEIPT_STATUS.get(_enum_name(event, "Type"), "")
            if status:
                events.on_receipt(list(event.MessageIDs), status)

    @staticmethod
    def _inbound(client: Any, event: Any) -> WebInbound:
        """whatsmeow's message event -> WebInbound; media is downloaded now, while the keys are at hand."""
        info, message = event.Info, event.Message
        common: dict[str, Any] = {
            "message_id": info.ID,
            "chat": f"{info.MessageSource.Chat.User}@{info.MessageSource.Chat.Server}",
            "sender_phone": "+" + info.MessageSource.Sender.User,
            "push_name": info.Pushname,
            "timestamp": float(info.Timestamp) / 1000 if info.Timestamp > 10**11 else float(info.Timestamp),
        }
        for field_name, kind in (
            ("imageMessage", "image"),
            ("videoMessage", "video"),
            ("audioMessage", "audio"),
            ("documentMessage", "document"),
            ("stickerMessage", "sticker"),
        ):
            if message.HasField(field_name):
                part = getattr(message, field_name)
                return WebInbound(
                    type=kind,
                    text=getattr(part, "caption", "") or "",
                    media=client.download_any(message),
                    mime=getattr(part, "mimetype", ""),
                    filename=getattr(part, "fileName", ""),
                    payload={"voice": bool(getattr(part, "PTT", False))} if kind == "audio" else {},
                    **common,
                )
        if message.HasField("locationMessage"):
            loc = message.locationMessage
            return WebInbound(
                type="location",
                text=loc.name or loc.address,
                payload={
                    "latitude": loc.degreesLatitude,
                    "longitude": loc.degreesLongitude,
                    "name": loc.name,
                    "address": loc.address,
                },
                **common,
            )
        if message.HasField("reactionMessage"):
            reaction = message.reactionMessage
            return WebInbound(
                type="reaction",
                text=reaction.text,
                payload={"message_id": reaction.key.ID, "emoji": reaction.text},
                **common,
            )
        text = message.conversation or message.extendedTextMessage.text
        return WebInbound(type="text" if text else "unsupported", text=text or "", **common)

    def connect(self) -> None:
        def run() -> None:
            try:
                self.client.connect()  # blocks while the session lives
            except Exception as exc:  # the engine gave up (no network, refused): reconnect with backoff
                logger.warning("wa-web %s: engine stopped: %s", self.key, str(exc)[:200])
                if not self._closing.is_set():
                    self.events.on_disconnected()

        self._connect_thread = threading.Thread(target=run, name=f"wa-web-{self.key}", daemon=True)
        self._connect_thread.start()

    def disconnect(self) -> None:
        self._closing.set()
        self.client.disconnect()

    def logout(self) -> None:
        self.client.logout()

    def send(self, to_phone: str, kind: str, text: str = "", payload: dict[str, Any] | None = None) -> str:
        extra = payload or {}
        # Bytes only: neonize would fetch a URL or open a local path given as a string (the app fetched
        # any media link through the URL guard already).
        media = base64.b64decode(extra["media_b64"]) if extra.get("media_b64") else b""
        if kind in {"image", "video", "audio", "document"} and not media:
            raise ValueError("media messages need their content")
        jid = self._recipient(to_phone)
        if kind == "image":
            response = self.client.send_image(jid, media, caption=text or None)
        elif kind == "video":
            response = self.client.send_video(jid, media, caption=text or None)
        elif kind == "audio":
            response = self.client.send_audio(jid, media, ptt=bool(extra.get("voice", True)))
        elif kind == "document":
            response = self.client.send_document(
                jid,
                media,
                caption=text or None,
                filename=extra.get("filename") or None,
                mimetype=extra.get("mime") or None,
            )
        elif kind == "reaction":
            reaction = self.client.build_reaction(
                jid, jid, str(extra.get("message_id", "")), str(extra.get("emoji", ""))
            )
            response = self.client.send_message(jid, reaction)
        elif kind == "location":
            from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import LocationMessage, Message

            location = LocationMessage(
                degreesLatitude=float(extra["latitude"]),
                degreesLongitude=float(extra["longitude"]),
                name=str(extra.get("name", "")),
                address=str(extra.get("address", "")),
            )
            response = self.client.send_message(jid, Message(locationMessage=location))
        else:
            response = self.client.send_message(jid, text)
        return str(response.ID)

    def send_typing(self, to_phone: str) -> None:
        from neonize.utils import build_jid
        from neonize.utils.enum import ChatPresence, ChatPresenceMedia

        self.client.send_chat_presence(
            build_jid(to_phone.lstrip("+")),
            ChatPresence.CHAT_PRESENCE_COMPOSING,
            ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT,
        )

    def pair_phone(self, phone: str) -> str:
        return str(self.client.PairPhone(phone.lstrip("+"), True))

    def _recipient(self, to_phone: str) -> Any:
        """The recipient's JID as WhatsApp knows it (Brazilian numbers may lack the ninth digit there); a
        number not on WhatsApp is a permanent error, never a retry (sending blind is also a ban signal)."""
        from neonize.utils import build_jid

        number = to_phone.lstrip("+")
        if number in self._registered:
            return build_jid(number)
        answers = list(self.client.is_on_whatsapp(number))
        found = next((a for a in answers if a.IsIn), None)
        if found is None:
            raise EngineError(NOT_ON_WHATSAPP, f"{to_phone} is not on WhatsApp", permanent=True)
        self._registered.add(number)
        return found.JID if found.HasField("JID") and found.JID.User else build_jid(number)

    def session_if_changed(self) -> bytes | None:
        return self.store.snapshot_if_changed()

    def close(self) -> None:
        """Stop the engine and delete the plaintext store (copy it out first: `session_if_changed`)."""
        self._closing.set()
        try:
            self.client.stop()  # cancels the engine's context: its connect call returns
        except Exception:
            logger.exception("wa-web %s: engine stop failed", self.key)
        if self._connect_thread is not None and not getattr(_engine_thread, "inside", False):
            self._connect_thread.join(timeout=10)
        self.store.close()


_engine_thread = threading.local()


def _enum_name(event: Any, field_name: str) -> str:
    value = event.DESCRIPTOR.fields_by_name[field_name].enum_type.values_by_number.get(getattr(event, field_name))
    return value.name if value is not None else ""


def encode_session(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def decode_session(text: str) -> bytes:
    return base64.b64decode(text.encode()) if text else b""
