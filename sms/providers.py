"""The Twilio SMS provider."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any, ClassVar

import aiohttp
import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from twilio.base.exceptions import TwilioRestException

from core import urlguard
from inbox.models import Channel, MessageType
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
from sms.client import retry_after_of, twilio_client

RETRYABLE_CODES = frozenset({20429, 21611, 30001})
ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}$")
MAX_MEDIA = 10  # Twilio carries at most 10 media per message
STATUS_MAP = {"sent": "sent", "delivered": "delivered", "read": "read", "undelivered": "failed", "failed": "failed"}


def classify(exc: TwilioRestException, retry_after: float | None) -> ProviderError:
    code = int(exc.code or 0)
    if code in RETRYABLE_CODES or exc.status == 429 or exc.status >= 500:
        return ProviderError(ErrorKind.RETRYABLE, str(code or exc.status), str(exc.msg), retry_after=retry_after)
    return ProviderError(
        ErrorKind.PERMANENT, str(code or exc.status), str(exc.msg), opted_out="all" if code == 21610 else ""
    )


# Inbound media is served from api.twilio.com, which redirects to its media CDN (PROVIDERS.md §2.2).
TWILIO_MEDIA_HOSTS = ("api.twilio.com",)
TWILIO_MEDIA_REDIRECT_HOSTS = (".twilio.com", ".twiliocdn.com")


def media_source_hosts() -> tuple[str, ...]:
    """Hosts a MediaUrl may name: Twilio's, and the configured API host (an emulator in tests)."""
    return (*TWILIO_MEDIA_HOSTS, urlguard.host_of(settings.TWILIO_API_BASE_URL))


def media_redirect_hosts() -> tuple[str, ...]:
    return (*TWILIO_MEDIA_REDIRECT_HOSTS, urlguard.host_of(settings.TWILIO_API_BASE_URL))


def _media_type(mime: str) -> str:
    head = mime.split("/")[0]
    return head if head in {"image", "audio", "video"} else "document"


class TwilioSmsProvider(ChannelProvider):
    kind = "sms_twilio"
    capabilities: ClassVar[Capabilities] = Capabilities(
        media_kinds=frozenset({"image", "video", "audio", "document"}), max_body=1600
    )

    def _client(self):  # type: ignore[no-untyped-def]
        creds = self.channel.credentials
        return twilio_client(creds.get("account_sid", ""), creds.get("auth_token", ""))

    def send(self, message: OutboundMessage) -> SendResult:
        if message.type not in {MessageType.TEXT, "image", "video", "audio", "document"}:
            raise ProviderError(ErrorKind.PERMANENT, "unsupported", f"SMS cannot carry {message.type}")
        client = self._client()
        params: dict[str, Any] = {
            "to": message.to,
            "from_": self.channel.phone_number,
            "body": message.body,
            "status_callback": f"{settings.PUBLIC_WEBHOOK_BASE_URL}/webhooks/twilio/status/",
        }
        if message.media_url:
            params["media_url"] = [message.media_url]
        try:
            created = client.messages.create(**params)
        except TwilioRestException as exc:
            raise classify(exc, retry_after_of(client)) from exc
        except (requests.ConnectionError, requests.ConnectTimeout) as exc:
            raise ProviderError(ErrorKind.RETRYABLE, "connect", str(exc), retry_after=5) from exc
        except requests.RequestException as exc:
            raise ProviderError(ErrorKind.UNKNOWN, "timeout", str(exc)) from exc
        return SendResult(str(created.sid))

    async def send_async(self, http: aiohttp.ClientSession, message: OutboundMessage) -> SendResult:
        """The same request as `send`, over the dispatcher's pooled session. Retry-After is read from this
        request's own answer (never from a client shared with other requests)."""
        if message.type not in {MessageType.TEXT, "image", "video", "audio", "document"}:
            raise ProviderError(ErrorKind.PERMANENT, "unsupported", f"SMS cannot carry {message.type}")
        creds = self.channel.credentials
        sid = str(creds.get("account_sid", ""))
        if not ACCOUNT_SID.match(sid):
            raise ProviderError(ErrorKind.PERMANENT, "20003", "invalid account sid")
        form: list[tuple[str, str]] = [
            ("To", message.to),
            ("From", self.channel.phone_number),
            ("Body", message.body),
            ("StatusCallback", f"{settings.PUBLIC_WEBHOOK_BASE_URL}/webhooks/twilio/status/"),
        ]
        if message.media_url:
            form.append(("MediaUrl", message.media_url))
        url = f"{settings.TWILIO_API_BASE_URL}/2010-04-01/Accounts/{sid}/Messages.json"
        token = base64.b64encode(f"{sid}:{creds.get('auth_token', '')}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
        try:
            async with http.post(url, data=form, headers=headers) as response:
                raw = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:  # nothing left
            raise ProviderError(ErrorKind.RETRYABLE, "connect", str(exc), retry_after=5) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError(ErrorKind.UNKNOWN, "timeout", f"no answer: {type(exc).__name__}") from exc
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {}
        if status >= 400:
            try:
                wait = float(retry_after) if retry_after is not None else None
            except ValueError:
                wait = None
            refused = TwilioRestException(status, url, msg=str(answer.get("message", "")), code=answer.get("code"))
            raise classify(refused, wait)
        if not answer.get("sid"):
            raise ProviderError(ErrorKind.UNKNOWN, "no_sid", "answer without a message sid")
        return SendResult(str(answer["sid"]))

    def fetch_media(self, media_ref: str) -> tuple[bytes, str]:
        """MediaUrl0 comes in a webhook signed with the tenant's own auth token, so the tenant could make
        it point anywhere: it is fetched through the URL guard, from Twilio's hosts only, and the account's
        credentials go to the first (Twilio) hop only, never to the CDN it redirects to."""
        creds = self.channel.credentials
        try:
            fetched = urlguard.fetch(
                media_ref,
                allowed_hosts=media_source_hosts(),
                redirect_hosts=media_redirect_hosts(),
                auth=(creds.get("account_sid", ""), creds.get("auth_token", "")),
                max_bytes=settings.MEDIA_FETCH_MAX_BYTES,
            )
        except urlguard.FetchFailed as exc:
            kind = ErrorKind.RETRYABLE if exc.retryable else ErrorKind.PERMANENT
            raise ProviderError(kind, str(exc.status or "media"), f"media download failed: {exc.reason}") from exc
        return fetched.content, fetched.content_type

    @classmethod
    def route_keys(cls, channel: Channel) -> list[tuple[str, str]]:
        return [("sms_twilio", f"{channel.credentials.get('account_sid', '')}:{channel.phone_number}")]

    @classmethod
    def route_kinds(cls) -> list[str]:
        return ["sms_twilio"]

    @classmethod
    def connect_verify(cls, channel: Channel) -> None:
        """The SID and token must open the account, and the number must be one of its incoming numbers."""
        sid, token = channel.credentials.get("account_sid", ""), channel.credentials.get("auth_token", "")
        if not ACCOUNT_SID.match(sid):
            raise ValidationError(_("The Account SID starts with AC followed by 32 letters and digits (0-9, a-f)."))
        client = twilio_client(sid, token)
        try:
            account = client.api.v2010.accounts(sid).fetch()
            owned = client.api.v2010.accounts(sid).incoming_phone_numbers.list(
                phone_number=channel.phone_number, limit=1
            )
        except TwilioRestException as exc:
            if exc.status in (401, 403, 404):
                raise ValidationError(_("Twilio refused this Account SID and auth token.")) from exc
            raise ValidationError(_("Twilio could not be reached to check the number. Try again.")) from exc
        except requests.RequestException as exc:
            raise ValidationError(_("Twilio could not be reached to check the number. Try again.")) from exc
        if account.status != "active":
            raise ValidationError(_("This Twilio account is not active."))
        if not any(item.phone_number == channel.phone_number for item in owned):
            raise ValidationError(
                _("%(number)s is not a number of this Twilio account.") % {"number": channel.phone_number}
            )

    @classmethod
    def parse_event(cls, payload: dict[str, Any]) -> list[Event]:
        """Events of one stored Twilio callback; PayloadError when a field it needs is missing or odd."""
        try:
            return cls._parse(payload)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise PayloadError(f"unreadable Twilio callback: {type(exc).__name__}") from exc

    @classmethod
    def _parse(cls, payload: dict[str, Any]) -> list[Event]:
        form = payload["form"]
        now = datetime.now(tz=UTC)
        if payload.get("kind") == "status":
            status = STATUS_MAP.get(form.get("MessageStatus", ""))
            if status is None:
                return []  # queued, sending, accepted...: nothing to move
            error = form.get("ErrorCode", "")
            return [
                StatusUpdate(
                    form["MessageSid"],
                    status,
                    now,
                    error_code=error,
                    error_text=f"Twilio error {error}" if error else "",
                )
            ]
        raw_count = str(form.get("NumMedia", "0") or "0")
        media_count = min(int(raw_count), MAX_MEDIA) if raw_count.isdigit() else 0
        if media_count:
            mime = form.get("MediaContentType0", "")
            return [
                InboundMessage(
                    provider_message_id=form["MessageSid"],
                    from_phone=form["From"],
                    type=_media_type(mime),
                    timestamp=now,
                    body=form.get("Body", ""),
                    media_ref=form.get("MediaUrl0", ""),
                    media_mime=mime,
                    payload={"media": [form.get(f"MediaUrl{i}") for i in range(media_count)]},
                )
            ]
        return [
            InboundMessage(
                provider_message_id=form["MessageSid"],
                from_phone=form["From"],
                type=MessageType.TEXT,
                timestamp=now,
                body=form.get("Body", ""),
            )
        ]
