"""The boundary to the WhatsApp Web engine. `NeonizeClient` wraps neonize (whatsmeow); `FakeWebClient`
has the same methods and events and drives the session manager in tests and in the demo."""

from __future__ import annotations

import base64
import logging
import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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


class WebClient(Protocol):
    def connect(self) -> None: ...
    def disconnect(self) -> None: ...
    def logout(self) -> None: ...
    def send(self, to_phone: str, kind: str, text: str = "", payload: dict[str, Any] | None = None) -> str: ...
    def send_typing(self, to_phone: str) -> None: ...
    def pair_phone(self, phone: str) -> str: ...
    def export_session(self) -> bytes: ...


# --- the fake engine (tests, demo) ----------------------------------------------------------------

FAKES: dict[str, FakeWebClient] = {}  # session key -> the live fake, so tests and the demo can drive it


class FakeWebClient:
    """Behaves like a linked device: emits rotating QR codes until `scan()`, then connects and remembers
    the session (`export_session`), so a restart reconnects without a QR."""

    def __init__(self, key: str, session: bytes | None, events: WebEvents, qr_every_s: float = 20.0) -> None:
        self.key, self.session, self.events, self.qr_every_s = key, session, events, qr_every_s
        self.connected = False
        self.sent: list[dict[str, Any]] = []
        self.typing: list[str] = []
        self.connect_calls = 0
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
        self.connected = True
        self._stop.set()
        self.events.on_connected(phone)

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
        message_id = "3EB0" + secrets.token_hex(8).upper()
        self.sent.append({"id": message_id, "to": to_phone, "kind": kind, "text": text, "payload": payload or {}})
        return message_id

    def send_typing(self, to_phone: str) -> None:
        self.typing.append(to_phone)

    def pair_phone(self, phone: str) -> str:
        return secrets.token_hex(4).upper()

    def export_session(self) -> bytes:
        return self.session or b""


# --- neonize (whatsmeow) -----------------------------------------------------------------------------


class NeonizeClient:
    """neonize keeps its device keys in a file store of its own; we restore it from the (encrypted) database row
    before connecting and export it after every change, so the file itself never needs to persist."""

    def __init__(self, key: str, session: bytes | None, events: WebEvents) -> None:
        from neonize.client import NewClient
        from neonize.events import ConnectedEv, LoggedOutEv, MessageEv, ReceiptEv

        self.events = events
        self._dir = Path(tempfile.mkdtemp(prefix="waweb-"))
        self._db = self._dir / "device-store.db"
        if session:
            self._db.write_bytes(session)
        self._db.touch(mode=0o600)
        self.client = NewClient(str(self._db))
        self.client.event.qr(
            lambda _client, data: events.on_qr(data.decode() if isinstance(data, bytes) else str(data))
        )

        @self.client.event(ConnectedEv)
        def _connected(client: Any, _event: Any) -> None:
            me = client.get_me()
            events.on_connected("+" + str(getattr(getattr(me, "JID", me), "User", "")))

        @self.client.event(LoggedOutEv)
        def _logged_out(_client: Any, _event: Any) -> None:
            events.on_logged_out()

        @self.client.event(MessageEv)
        def _message(client: Any, event: Any) -> None:
            try:
                inbound = self._inbound(client, event)
            except Exception:  # a message we cannot map (or whose media fails) must not stop the session
                logger.exception("wa-web %s: could not read message %s", key, getattr(event.Info, "ID", "?"))
                return
            events.on_message(inbound)

        @self.client.event(ReceiptEv)
        def _receipt(_client: Any, event: Any) -> None:
            # Type is neonize's ReceiptType enum (DELIVERED = 1, READ = 4, PLAYED = 6...), not a string.
            kind = event.DESCRIPTOR.fields_by_name["Type"].enum_type.values_by_number.get(event.Type)
            status = RECEIPT_STATUS.get(kind.name if kind else "", "")
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
        threading.Thread(target=self.client.connect, daemon=True).start()

    def disconnect(self) -> None:
        self.client.disconnect()

    def logout(self) -> None:
        self.client.logout()

    def send(self, to_phone: str, kind: str, text: str = "", payload: dict[str, Any] | None = None) -> str:
        from neonize.utils import build_jid

        jid, extra = build_jid(to_phone.lstrip("+")), payload or {}
        # Bytes only: neonize would fetch a URL or open a local path given as a string (the app fetched
        # any media link through the URL guard already).
        media = base64.b64decode(extra["media_b64"]) if extra.get("media_b64") else b""
        if kind in {"image", "video", "audio", "document"} and not media:
            raise ValueError("media messages need their content")
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

    def export_session(self) -> bytes:
        return self._db.read_bytes() if self._db.exists() else b""


def encode_session(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def decode_session(text: str) -> bytes:
    return base64.b64decode(text.encode()) if text else b""
