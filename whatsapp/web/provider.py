"""The WhatsApp Web (QR) provider: the same interface as every channel; the live session lives in the
`wa-web` process, reached through Redis."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, ClassVar

from django.conf import settings
from django.db import connection

from core import urlguard
from core.media import filename_clean
from inbox.models import Channel
from inbox.providers import (
    Capabilities,
    ChannelProvider,
    ErrorKind,
    Event,
    InboundMessage,
    OutboundMessage,
    PayloadError,
    ProviderError,
    SendResult,
    StatusUpdate,
)
from whatsapp.web import bus


def _key(channel: Channel) -> str:
    return bus.session_key(str(getattr(connection, "schema_name", "public")), channel.pk)


class WebProvider(ChannelProvider):
    kind = "whatsapp_web"
    capabilities: ClassVar[Capabilities] = Capabilities(
        media_kinds=frozenset({"image", "audio", "video", "document"}), reactions=True, qr_login=True, max_body=65536
    )

    def send(self, message: OutboundMessage) -> SendResult:
        key = _key(self.channel)
        if bus.owner_of(key) is None:
            raise ProviderError(
                ErrorKind.RETRYABLE, "not_connected", "The WhatsApp session is not connected.", retry_after=30
            )
        payload = {**message.payload, "filename": message.media_filename, "mime": message.media_mime}
        payload.pop("media_url", None)  # the engine is never handed a URL to fetch (SSRF)
        content = message.media_bytes
        if not content and message.media_url:
            content, payload["mime"] = self._media_from_url(message.media_url, message.media_mime)
        if content:
            payload["media_b64"] = base64.b64encode(content).decode()
        answer = bus.command(key, "send", to=message.to, kind=message.type, text=message.body, payload=payload)
        if answer is None:
            raise ProviderError(ErrorKind.UNKNOWN, "timeout", "The WhatsApp session did not answer in time.")
        if "error" in answer:
            if answer.get("permanent"):  # e.g. not_on_whatsapp: retrying cannot help and looks like spam
                raise ProviderError(ErrorKind.PERMANENT, str(answer["error"]), str(answer.get("message", "")))
            raise ProviderError(
                ErrorKind.RETRYABLE, str(answer["error"]), str(answer.get("message", "")), retry_after=30
            )
        return SendResult(str(answer["id"]))

    @staticmethod
    def _media_from_url(url: str, mime: str) -> tuple[bytes, str]:
        """A media link from the API is fetched here, through the URL guard, not by the engine."""
        try:
            fetched = urlguard.fetch(url, max_bytes=settings.MEDIA_FETCH_MAX_BYTES)
        except urlguard.UrlRefused as exc:
            raise ProviderError(ErrorKind.PERMANENT, "media_url", f"media URL refused: {exc.reason}") from exc
        except urlguard.FetchFailed as exc:
            kind = ErrorKind.RETRYABLE if exc.retryable else ErrorKind.PERMANENT
            raise ProviderError(kind, "media_url", f"media download failed: {exc.reason}", retry_after=30) from exc
        return fetched.content, mime or fetched.content_type.split(";")[0].strip()

    def typing(self, to: str) -> None:
        """Show "typing..." to the contact (bots call this before they answer)."""
        bus.command(_key(self.channel), "typing", wait_s=None, to=to)

    def disconnect(self) -> None:
        if bus.owner_of(_key(self.channel)) is not None:
            bus.command(_key(self.channel), "logout", wait_s=10)

    def fetch_media(self, media_ref: str) -> tuple[bytes, str]:
        """The wa-web process downloaded it (the engine holds the keys) and parked it in Redis."""
        found = bus.media_take(media_ref)
        if found is None:
            raise ProviderError(ErrorKind.PERMANENT, "media_gone", "The media of this message is no longer available.")
        return found

    def usage(self) -> dict[str, Any]:
        return bus.usage(_key(self.channel))

    @classmethod
    def route_keys(cls, channel: Channel) -> list[tuple[str, str]]:
        return [("whatsapp_web", _key(channel))]

    @classmethod
    def route_kinds(cls) -> list[str]:
        return ["whatsapp_web"]

    @classmethod
    def parse_event(cls, payload: dict[str, Any]) -> list[Event]:
        """Events relayed by the wa-web process; PayloadError when one cannot be read."""
        try:
            return cls._parse(payload)
        except (KeyError, TypeError, AttributeError, ValueError, OverflowError, OSError) as exc:
            raise PayloadError(f"unreadable WhatsApp Web event: {type(exc).__name__}") from exc

    @classmethod
    def _parse(cls, payload: dict[str, Any]) -> list[Event]:
        when = datetime.fromtimestamp(float(payload.get("ts") or 0), tz=UTC)
        if payload.get("kind") == "receipt":
            return [StatusUpdate(provider_message_id=payload["id"], status=payload["status"], timestamp=when)]
        if payload.get("kind") == "message":
            return [
                InboundMessage(
                    provider_message_id=payload["id"],
                    from_phone=payload["from"],
                    type=payload.get("type", "text"),
                    timestamp=when,
                    body=payload.get("text", ""),
                    profile_name=payload.get("name", ""),
                    payload=payload.get("payload") or {},
                    media_ref=payload.get("media_ref", ""),
                    media_mime=payload.get("mime", ""),
                    media_filename=filename_clean(str(payload.get("filename", ""))),
                )
            ]
        return []
