"""The WhatsApp Cloud API provider: our messages to Graph payloads, Meta's webhooks to our events."""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

import aiohttp
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from core.media import filename_clean
from inbox.models import Channel, MessageType
from inbox.providers import (
    Capabilities,
    ChannelProvider,
    ErrorKind,
    Event,
    InboundMessage,
    OutboundMessage,
    PayloadError,
    PreferenceUpdate,
    ProviderError,
    SendResult,
    StatusUpdate,
    TemplateStatusUpdate,
)
from whatsapp.client import GraphClient, GraphError, graph_segment
from whatsapp.webhooks import APP_ROUTE_KIND

# Meta error codes worth trying again (see PROVIDERS.md §1.2); everything else is permanent.
RETRYABLE_CODES = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056, 131057})
# The base of the exponential backoff per code (the dispatcher grows it and draws a full jitter under it).
BACKOFF_BASE_S = {131056: 6.0, 130429: 2.0, 80007: 60.0, 4: 60.0}
MEDIA_KINDS = frozenset({"image", "audio", "video", "document", "sticker"})
GRAPH_ID = re.compile(r"^[0-9]{1,20}$")  # Meta's object ids (phone number, WABA, app) are digits


def classify(error: GraphError) -> ProviderError:
    if not error.sent:
        return ProviderError(ErrorKind.RETRYABLE, "connect", error.message, retry_after=5)
    if error.code == -2:
        return ProviderError(ErrorKind.UNKNOWN, "timeout", error.message)
    code = error.code
    text = f"{error.message} {error.details}".strip()
    if code in RETRYABLE_CODES or error.status >= 500 or error.status == 429:
        error_out = ProviderError(ErrorKind.RETRYABLE, str(code or error.status), text)
        error_out.backoff_base = BACKOFF_BASE_S.get(code)
        return error_out
    return ProviderError(
        ErrorKind.PERMANENT, str(code or error.status), text, opted_out="marketing" if code == 131050 else ""
    )


def _ts(raw: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(raw), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(tz=UTC)


def template_components(variables: dict[str, Any]) -> list[dict[str, Any]]:
    """{"header": [...], "body": [...] or {name: value}, "buttons": [...]} -> Graph template components.
    Values go out as plain text (nothing is evaluated); a shape that is not this one (the API takes
    these variables as JSON) is a permanent ProviderError, never a crash of the sender."""
    try:
        return _template_components(variables)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ProviderError(
            ErrorKind.PERMANENT, "template_variables", f"template variables not understood: {type(exc).__name__}"
        ) from exc


def _template_components(variables: dict[str, Any]) -> list[dict[str, Any]]:
    components: list[dict[str, Any]] = []
    header = variables.get("header") or []
    if header:
        params = []
        for item in header:
            if isinstance(item, dict) and item.get("type") in {"image", "video", "document"}:
                params.append({"type": item["type"], item["type"]: {"link": str(item["link"])}})
            else:
                params.append({"type": "text", "text": str(item)})
        components.append({"type": "header", "parameters": params})
    body = variables.get("body") or []
    if isinstance(body, dict):
        components.append(
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "parameter_name": name, "text": str(value)} for name, value in body.items()
                ],
            }
        )
    elif body:
        components.append({"type": "body", "parameters": [{"type": "text", "text": str(v)} for v in body]})
    for button in variables.get("buttons") or []:
        sub_type = str(button.get("sub_type", "quick_reply"))
        param = (
            {"type": "payload", "payload": str(button["payload"])}
            if sub_type == "quick_reply"
            else {"type": "text", "text": str(button["text"])}
        )
        components.append(
            {"type": "button", "sub_type": sub_type, "index": str(button.get("index", 0)), "parameters": [param]}
        )
    return components


class CloudProvider(ChannelProvider):
    kind = "whatsapp_cloud"
    capabilities: ClassVar[Capabilities] = Capabilities(
        templates=True,
        media_kinds=MEDIA_KINDS,
        interactive=True,
        reactions=True,
        session_window_hours=24,
        max_body=4096,
    )

    @property
    def client(self) -> GraphClient:
        return GraphClient(self.channel.credentials.get("access_token", ""))

    def send(self, message: OutboundMessage) -> SendResult:
        pnid = self.channel.phone_number_id
        try:
            payload = self._payload(message)
            return SendResult(self.client.send_message(pnid, payload))
        except GraphError as exc:
            raise classify(exc) from exc

    async def send_async(self, http: aiohttp.ClientSession, message: OutboundMessage) -> SendResult:
        if message.media_bytes is not None:  # the upload goes first, through the sync client
            return await super().send_async(http, message)
        pnid = self.channel.phone_number_id
        try:
            body = {"messaging_product": "whatsapp", "recipient_type": "individual", **self._payload(message)}
            url = "/".join([settings.META_GRAPH_BASE_URL, graph_segment(settings.META_GRAPH_VERSION)])
            url += f"/{graph_segment(pnid)}/messages"
            token = self.channel.credentials.get("access_token", "")
            try:
                async with http.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as response:
                    raw = await response.read()
                    status, reason = response.status, response.reason or ""
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:  # nothing left
                raise GraphError(0, -1, f"connection failed: {type(exc).__name__}", sent=False) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise GraphError(0, -2, f"no answer: {type(exc).__name__}") from exc
            try:
                answer = json.loads(raw) if raw else {}
            except ValueError:
                answer = {}
            if status >= 400:
                error = answer.get("error", {}) if isinstance(answer, dict) else {}
                raise GraphError(
                    status,
                    int(error.get("code", 0) or 0),
                    str(error.get("message", reason)),
                    str((error.get("error_data") or {}).get("details", "")),
                )
            try:
                return SendResult(str(answer["messages"][0]["id"]))
            except (KeyError, IndexError, TypeError) as exc:
                raise GraphError(status, -2, "answer without a message id") from exc
        except GraphError as exc:
            raise classify(exc) from exc

    def _payload(self, message: OutboundMessage) -> dict[str, Any]:
        kind = message.type
        payload: dict[str, Any] = {"to": message.to.lstrip("+"), "type": kind}
        if kind == MessageType.TEXT:
            payload["text"] = {"body": message.body, "preview_url": "http" in message.body}
        elif kind in MEDIA_KINDS:
            media: dict[str, Any] = {}
            if message.media_bytes is not None:
                media["id"] = self.client.upload_media(
                    self.channel.phone_number_id, message.media_bytes, message.media_mime, message.media_filename
                )
            else:
                media["link"] = message.media_url
            if message.body and kind in {"image", "video", "document"}:
                media["caption"] = message.body
            if kind == "document" and message.media_filename:
                media["filename"] = message.media_filename
            payload[kind] = media
        elif kind == MessageType.TEMPLATE:
            payload["template"] = {
                "name": message.template_name,
                "language": {"code": message.template_language},
                "components": template_components(message.template_variables),
            }
        elif kind in {MessageType.LOCATION, MessageType.INTERACTIVE, MessageType.REACTION}:
            payload[kind] = message.payload
        else:
            raise ProviderError(ErrorKind.PERMANENT, "unsupported", f"cannot send {kind} on WhatsApp")
        if message.reply_to:
            payload["context"] = {"message_id": message.reply_to}
        if message.tracking:
            payload["biz_opaque_callback_data"] = message.tracking
        return payload

    def mark_read(self, provider_message_id: str) -> None:
        try:
            self.client.mark_read(self.channel.phone_number_id, provider_message_id)
        except GraphError as exc:
            raise classify(exc) from exc

    def fetch_media(self, media_ref: str) -> tuple[bytes, str]:
        try:
            return self.client.download_media(media_ref)
        except GraphError as exc:
            raise classify(exc) from exc

    @classmethod
    def route_keys(cls, channel: Channel) -> list[tuple[str, str]]:
        keys = [("whatsapp_cloud", channel.phone_number_id)]
        if channel.waba_id:
            keys.append(("whatsapp_waba", channel.waba_id))
        if channel.credentials.get("webhook_key"):
            keys.append((APP_ROUTE_KIND, channel.credentials["webhook_key"]))
        return keys

    @classmethod
    def route_kinds(cls) -> list[str]:
        return ["whatsapp_cloud", "whatsapp_waba", APP_ROUTE_KIND]

    @classmethod
    def webhook_url(cls, channel: Channel) -> str:
        key = channel.credentials.get("webhook_key")
        path = f"/webhooks/whatsapp/app/{key}/" if key else "/webhooks/whatsapp/"
        return settings.PUBLIC_WEBHOOK_BASE_URL + path

    @classmethod
    def connect_verify(cls, channel: Channel) -> None:
        """The token must see the phone number id, the number must be in the WABA, and the number shown by
        Meta must be the one typed. With the tenant's own Meta app, its secret must have issued the token."""
        creds = channel.credentials
        pnid, waba_id, token = channel.phone_number_id, channel.waba_id, creds.get("access_token", "")
        for label, value in ((_("Phone number ID"), pnid), (_("WhatsApp Business Account ID"), waba_id)):
            if not GRAPH_ID.match(value or ""):
                raise ValidationError(_("%(field)s must be the number Meta shows (digits only).") % {"field": label})
        client = GraphClient(token)
        try:
            number = client.phone_number(pnid)
            in_waba = {str(item.get("id")) for item in client.waba_phone_numbers(waba_id)}
        except GraphError as exc:
            if exc.code == 190:
                raise ValidationError(_("Meta refused the access token: it is invalid or expired.")) from exc
            if exc.status and exc.status < 500:
                raise ValidationError(
                    _("This access token cannot use phone number ID %(pnid)s or WABA %(waba)s.")
                    % {"pnid": pnid, "waba": waba_id}
                ) from exc
            raise ValidationError(_("Meta could not be reached to check the number. Try again.")) from exc
        if str(number.get("id")) != pnid or pnid not in in_waba:
            raise ValidationError(
                _("Phone number ID %(pnid)s is not part of WABA %(waba)s.") % {"pnid": pnid, "waba": waba_id}
            )
        shown = re.sub(r"\D", "", str(number.get("display_phone_number", "")))
        if shown != channel.phone_number.lstrip("+"):
            raise ValidationError(
                _("Phone number ID %(pnid)s belongs to +%(shown)s, not to %(typed)s.")
                % {"pnid": pnid, "shown": shown, "typed": channel.phone_number}
            )
        if creds.get("app_id") or creds.get("app_secret"):
            cls._app_verify(client, creds)
            # Its own app posts to a URL of its own: the route key in it finds this channel's secret.
            creds.setdefault("webhook_key", secrets.token_urlsafe(24))

    @classmethod
    def _app_verify(cls, client: GraphClient, creds: dict[str, Any]) -> None:
        app_id, secret = str(creds.get("app_id", "")), str(creds.get("app_secret", ""))
        if not GRAPH_ID.match(app_id) or not secret or not creds.get("verify_token"):
            raise ValidationError(_("Your own Meta app needs its app ID, app secret and a verify token."))
        try:
            info = client.debug_token(app_id=app_id, app_secret=secret, token=str(creds.get("access_token", "")))
        except GraphError as exc:
            raise ValidationError(_("Meta refused the app ID and app secret.")) from exc
        if str(info.get("app_id")) != app_id or not info.get("is_valid"):
            raise ValidationError(_("The access token was not issued by app %(app)s.") % {"app": app_id})

    @classmethod
    def apply_own_event(cls, channel: Channel, event: Event) -> bool | None:
        if isinstance(event, TemplateStatusUpdate):
            from whatsapp.services import template_status_apply

            return template_status_apply(waba_id=channel.waba_id, update=event)
        return False

    @classmethod
    def parse_event(cls, payload: dict[str, Any]) -> list[Event]:
        """Events of one stored Meta event (see whatsapp.webhooks.split_events); PayloadError when a field
        it needs is missing or of the wrong type."""
        try:
            return cls._parse(payload)
        except (KeyError, TypeError, AttributeError, ValueError, IndexError, OverflowError) as exc:
            raise PayloadError(f"unreadable Meta event: {type(exc).__name__}") from exc

    @classmethod
    def _parse(cls, payload: dict[str, Any]) -> list[Event]:
        kind = payload.get("kind")
        if kind == "message":
            return [parse_message(payload["message"], payload.get("contacts") or [])]
        if kind == "status":
            return [parse_status(payload["status"])]
        if kind == "template":
            value = payload["value"]
            return [
                TemplateStatusUpdate(
                    template_id=str(value.get("message_template_id", "")),
                    name=str(value.get("message_template_name", "")),
                    language=str(value.get("message_template_language", "")),
                    status=str(value.get("event", "")),
                    reason=str(value.get("reason") or ""),
                )
            ]
        if kind == "preference":
            pref = payload["preference"]
            if pref.get("category") != "marketing_messages":
                return []
            return [
                PreferenceUpdate(
                    phone=str(pref["wa_id"]),
                    marketing_opt_out=pref.get("value") == "stop",
                    timestamp=_ts(pref.get("timestamp")),
                )
            ]
        return []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_status(status: dict[str, Any]) -> StatusUpdate:
    errors = status.get("errors") if isinstance(status.get("errors"), list) else []
    first = _dict(errors[0]) if errors else {}
    detail = _dict(first.get("error_data")).get("details") or first.get("message") or first.get("title") or ""
    return StatusUpdate(
        provider_message_id=str(status["id"]),
        status=str(status["status"]),
        timestamp=_ts(status.get("timestamp")),
        error_code=str(first.get("code", "")) if status.get("errors") else "",
        error_text=str(detail) if status.get("errors") else "",
    )


def parse_message(message: dict[str, Any], contacts: list[dict[str, Any]]) -> InboundMessage:
    kind = str(message.get("type", "unsupported"))
    sender = str(message.get("from", ""))
    profile = next(
        (
            str(_dict(c.get("profile")).get("name") or "")
            for c in contacts
            if isinstance(c, dict) and c.get("wa_id") == sender
        ),
        "",
    )
    common: dict[str, Any] = {
        "provider_message_id": str(message["id"]),
        "from_phone": sender,
        "timestamp": _ts(message.get("timestamp")),
        "profile_name": profile,
        "reply_to": str(_dict(message.get("context")).get("id", "")),
    }
    found = message.get(kind)
    obj: dict[str, Any] = found if isinstance(found, dict) else {}
    if kind == "text":
        return InboundMessage(type=MessageType.TEXT, body=str(obj.get("body", "")), **common)
    if kind in MEDIA_KINDS:
        return InboundMessage(
            type=kind,
            body=str(obj.get("caption", "")),
            media_ref=str(obj.get("id", "")),
            media_mime=str(obj.get("mime_type", "")),
            media_filename=filename_clean(str(obj.get("filename", ""))),
            payload={"voice": bool(obj.get("voice"))} if kind == "audio" else {},
            **common,
        )
    if kind == "location":
        label = " · ".join(str(obj[k]) for k in ("name", "address") if obj.get(k))
        return InboundMessage(type=MessageType.LOCATION, body=label, payload=obj, **common)
    if kind == "contacts":
        cards = [c for c in message.get("contacts") or [] if isinstance(c, dict)]
        names = ", ".join(str(_dict(c.get("name")).get("formatted_name", "")) for c in cards)
        return InboundMessage(type=MessageType.CONTACTS, body=names, payload={"contacts": cards}, **common)
    if kind == "interactive":
        reply = _dict(obj.get("button_reply") or obj.get("list_reply") or obj.get("nfm_reply"))
        return InboundMessage(
            type=MessageType.INTERACTIVE, body=str(reply.get("title") or reply.get("body") or ""), payload=obj, **common
        )
    if kind == "button":
        return InboundMessage(
            type=MessageType.INTERACTIVE, body=str(obj.get("text", "")), payload={"button": obj}, **common
        )
    if kind == "reaction":
        return InboundMessage(type=MessageType.REACTION, body=str(obj.get("emoji", "")), payload=obj, **common)
    # order, system, unsupported, anything new: kept, never an error
    return InboundMessage(
        type=MessageType.UNSUPPORTED, body="", payload={"original_type": kind, "raw": message}, **common
    )
