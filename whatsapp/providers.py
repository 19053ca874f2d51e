"""The WhatsApp Cloud API provider: our messages to Graph payloads, Meta's webhooks to our events."""

from __future__ import annotations

import json
import logging
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
    AppContactChange,
    BusinessAppMessage,
    Capabilities,
    ChannelProvider,
    ErrorKind,
    Event,
    HistoryDeclined,
    HistoryProgress,
    IdentityChange,
    InboundMessage,
    OutboundMessage,
    PayloadError,
    PreferenceUpdate,
    ProviderError,
    QualityUpdate,
    SendResult,
    StatusUpdate,
    TemplateStatusUpdate,
)
from whatsapp.client import GraphClient, GraphError, graph_segment
from whatsapp.webhooks import APP_ROUTE_KIND, id_pair

logger = logging.getLogger(__name__)

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
        user_ids=True,
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
        payload: dict[str, Any] = {"type": kind}
        # Meta: `to` for a phone, `recipient` for a BSUID or parent BSUID (`to` wins when both are sent).
        if message.to:
            payload["to"] = message.to.lstrip("+")
        elif message.recipient:
            payload["recipient"] = message.recipient
        else:
            raise ProviderError(ErrorKind.PERMANENT, "no_address", "the contact has no phone and no WhatsApp user id")
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
        channel.business_portfolio_id = cls._portfolio_of(client, waba_id)
        if creds.get("app_id") or creds.get("app_secret"):
            cls._app_verify(client, creds)
            # Its own app posts to a URL of its own: the route key in it finds this channel's secret.
            creds.setdefault("webhook_key", secrets.token_urlsafe(24))

    @classmethod
    def _portfolio_of(cls, client: GraphClient, waba_id: str) -> str:
        """The business portfolio that owns the WABA (GET /<WABA>?fields=owner_business_info): WhatsApp
        user ids are scoped to it. "" when Meta does not say (the WABA then scopes them, narrower)."""
        try:
            owner = client.waba_owner(waba_id)
        except GraphError as exc:
            logger.warning("owner_business_info of WABA %s not readable: %s", waba_id, exc.code or exc.status)
            return ""
        portfolio = str(owner.get("id", ""))
        return portfolio if GRAPH_ID.match(portfolio) else ""

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

            return template_status_apply(waba_id=channel.waba_id, update=event, channel_id=channel.pk)
        if isinstance(event, QualityUpdate):
            from whatsapp.services import quality_update_apply

            return quality_update_apply(routed=channel, update=event)
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
        if kind == "user_id_update":
            return [parse_user_id_update(payload["update"])]
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
        if kind == "quality":
            value = payload["value"]
            return [
                QualityUpdate(
                    display_phone_number=re.sub(r"\D", "", _text(value.get("display_phone_number"))),
                    event=_text(value["event"]),
                    current_limit=_text(value.get("current_limit")),
                )
            ]
        if kind == "preference":
            pref = payload["preference"]
            if pref.get("category") != "marketing_messages":
                return []
            if not pref.get("wa_id") and not pref.get("user_id"):
                raise KeyError("wa_id")
            return [
                PreferenceUpdate(
                    phone=_text(pref.get("wa_id")),
                    marketing_opt_out=pref.get("value") == "stop",
                    timestamp=_ts(pref.get("timestamp")),
                    user_id=_text(pref.get("user_id")),
                    parent_user_id=_text(pref.get("parent_user_id")),
                )
            ]
        if kind in COEXISTENCE_PARSERS:
            return COEXISTENCE_PARSERS[str(kind)](payload)
        return []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    """A string or number of the payload as text; "" for null and anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    return str(value)


def parse_user_id_update(item: dict[str, Any]) -> IdentityChange:
    """A `user_id_update` item: the user's BSUID (and parent BSUID) before and after, and the new
    phone (`wa_id`) when it may be shared."""
    previous, current = id_pair(item.get("user_id"), item.get("previous_user_id"))
    previous_parent, parent = id_pair(item.get("parent_user_id"), item.get("previous_parent_user_id"))
    if not previous or not current:
        raise KeyError("user_id")
    return IdentityChange(
        previous_user_id=previous,
        user_id=current,
        previous_parent_user_id=previous_parent,
        parent_user_id=parent,
        phone=_text(item.get("wa_id")),
        timestamp=_ts(item.get("timestamp")),
    )


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
        # recipient_id is the phone when the send went to one (or Meta shows it); a failed send to a
        # phone carries no recipient_user_id.
        recipient_phone=recipient if (recipient := _text(status.get("recipient_id"))).isdigit() else "",
        recipient_user_id=_text(status.get("recipient_user_id")),
        recipient_parent_user_id=_text(status.get("recipient_parent_user_id")),
    )


def _sender_card(contacts: list[dict[str, Any]], sender: str, user_id: str) -> dict[str, Any]:
    """The `contacts[]` entry of the sender: by BSUID (`user_id`, always there since 2026), else by
    phone (`wa_id`, only when Meta may show it)."""
    cards = [c for c in contacts if isinstance(c, dict)]
    for card in cards:
        if (user_id and card.get("user_id") == user_id) or (sender and card.get("wa_id") == sender):
            return card
    return cards[0] if len(cards) == 1 and not sender and not user_id else {}


def parse_system(message: dict[str, Any]) -> IdentityChange | None:
    """A system message that reports a changed BSUID (`user_changed_number`, with the new phone, or
    `user_changed_user_id`, without one): the same re-keying as a `user_id_update`."""
    system = _dict(message.get("system"))
    if system.get("type") not in {"user_changed_number", "user_changed_user_id"}:
        return None
    if not system.get("previous_user_id") or not system.get("user_id"):
        return None  # a number change from before BSUIDs: nothing to re-key by
    return IdentityChange(
        previous_user_id=_text(system.get("previous_user_id")),
        user_id=_text(system.get("user_id")),
        previous_parent_user_id=_text(system.get("previous_parent_user_id")),
        parent_user_id=_text(system.get("parent_user_id")),
        phone=_text(system.get("wa_id")) if system.get("type") == "user_changed_number" else "",
        timestamp=_ts(message.get("timestamp")),
    )


def parse_message(message: dict[str, Any], contacts: list[dict[str, Any]]) -> InboundMessage | IdentityChange:
    kind = str(message.get("type", "unsupported"))
    if kind == "system":
        change = parse_system(message)
        if change is not None:
            return change
    # `from` (the phone) is there only when Meta may show it; `from_user_id` (the BSUID) always, since 2026.
    sender = _text(message.get("from"))
    user_id = _text(message.get("from_user_id"))
    card = _sender_card(contacts, sender, user_id)
    profile = _dict(card.get("profile"))
    common: dict[str, Any] = {
        "provider_message_id": str(message["id"]),
        "from_phone": sender,
        "from_user_id": user_id or _text(card.get("user_id")),
        "from_parent_user_id": _text(message.get("from_parent_user_id")) or _text(card.get("parent_user_id")),
        "username": _text(profile.get("username")),
        "timestamp": _ts(message.get("timestamp")),
        "profile_name": _text(profile.get("name")),
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


# --- coexistence (the number is also in the WhatsApp Business app) ---------------------------------

# Meta's history_context.status of a message the business sent, in our words.
HISTORY_STATUS = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "played": "read",
    "error": "failed",
    "failed": "failed",
    "pending": "sent",
}


def _digits(value: Any) -> str:
    return re.sub(r"\D", "", str(value or ""))


def _int(value: Any) -> int:
    try:
        return max(0, int(str(value).strip()))
    except (TypeError, ValueError):
        return 0


def _app_message(message: dict[str, Any], *, customer: str, direction: str, history: bool) -> BusinessAppMessage:
    """The content of an echo or history message read as any inbound one is (text, media, location...)."""
    content = parse_message(message, [])
    if not isinstance(content, InboundMessage):
        raise PayloadError("a business app message that is a system notice")
    status = str(_dict(message.get("history_context")).get("status", "")).lower()
    return BusinessAppMessage(
        provider_message_id=content.provider_message_id,
        customer_phone=customer,
        direction=direction,
        type=content.type,
        timestamp=content.timestamp,
        history=history,
        body=content.body,
        payload=content.payload,
        media_ref=content.media_ref,
        media_mime=content.media_mime,
        media_filename=content.media_filename,
        reply_to=content.reply_to,
        customer_user_id=str(message.get("to_user_id") or message.get("from_user_id") or ""),
        history_status=HISTORY_STATUS.get(status, "") if history else "",
    )


def _parse_echo(payload: dict[str, Any]) -> list[Event]:
    """smb_message_echoes: `from` is the business's number, `to` the customer's (or withheld, with only
    `to_user_id`)."""
    message = payload["message"]
    customer = str(message.get("to") or "")
    if not customer and not message.get("to_user_id"):
        raise ValueError("echo without a recipient")
    return [_app_message(message, customer=customer, direction="out", history=False)]


def _parse_history_message(payload: dict[str, Any]) -> list[Event]:
    """One message of a history thread. The thread id is the customer; the message is the business's
    when it has `to` (Meta includes it only for what the business sent) or when `from` is not the
    customer."""
    message = payload["message"]
    if not re.fullmatch(r"[0-9]{1,12}", str(message.get("timestamp", "")).strip()):
        # An old message without its time would be dated now and jump to the top of the inbox.
        raise ValueError("history message without its timestamp")
    customer = str(payload.get("customer") or "")
    sender = _digits(message.get("from"))
    outbound = bool(message.get("to")) or (bool(sender) and sender == _digits(payload.get("business")))
    if not customer:
        customer = str(message.get("to") or "") if outbound else str(message.get("from") or "")
    thread = _dict(payload.get("thread"))
    if thread.get("user_id") and not (message.get("to_user_id") or message.get("from_user_id")):
        message = {**message, "from_user_id": thread["user_id"]}  # the thread's BSUID is the customer's
    if not customer and not (message.get("to_user_id") or message.get("from_user_id")):
        raise ValueError("history message without its customer")
    return [_app_message(message, customer=customer, direction="out" if outbound else "in", history=True)]


def _parse_history_progress(payload: dict[str, Any]) -> list[Event]:
    meta = _dict(payload["metadata"])
    return [
        HistoryProgress(
            phase=min(_int(meta.get("phase")), 2),
            chunk_order=_int(meta.get("chunk_order")),
            progress=min(_int(meta.get("progress")), 100),
        )
    ]


def _parse_history_error(payload: dict[str, Any]) -> list[Event]:
    error = _dict(payload["error"])
    details = _dict(error.get("error_data")).get("details") or error.get("message") or ""
    return [
        HistoryDeclined(
            code=str(error.get("code", ""))[:20], title=str(error.get("title") or "")[:300], details=str(details)[:300]
        )
    ]


def _parse_state_sync(payload: dict[str, Any]) -> list[Event]:
    item = _dict(payload["item"])
    if item.get("type", "contact") != "contact":
        return []  # only contacts are synchronised today; anything new is kept raw, never an error
    contact = _dict(item.get("contact"))
    action = str(item.get("action", ""))
    if action not in {"add", "remove"}:
        return []
    phone = str(contact.get("phone_number") or "")
    if not phone:
        raise ValueError("state sync contact without its number")
    return [
        AppContactChange(
            phone=phone,
            action=action,
            timestamp=_ts(_dict(item.get("metadata")).get("timestamp")),
            full_name=str(contact.get("full_name") or "")[:150],
            first_name=str(contact.get("first_name") or "")[:150],
            user_id=str(contact.get("user_id") or ""),
        )
    ]


COEXISTENCE_PARSERS = {
    "echo": _parse_echo,
    "history_message": _parse_history_message,
    "history_progress": _parse_history_progress,
    "history_error": _parse_history_error,
    "state_sync": _parse_state_sync,
}
