"""The provider interface: one shape for every channel kind, so inbox, campaigns and bots never know
which one they talk to. Providers live in their own apps and are found by dotted path in
``settings.CHANNEL_PROVIDERS``; inbox never imports them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.db import connection
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    import aiohttp

    from inbox.models import Channel


class ErrorKind(enum.StrEnum):
    RETRYABLE = "retryable"  # rate limit, 5xx, timeout before sending: try again later
    PERMANENT = "permanent"  # invalid number, opted out, template rejected: never retry
    UNKNOWN = "unknown"  # the request went out but no answer came back: do not retry blindly


class ProviderError(Exception):
    """A failed provider call, classified. `opted_out` is "all" or "marketing" when the provider says the
    recipient has opted out, so consent is recorded from the error too."""

    def __init__(
        self, kind: ErrorKind, code: str, message: str, retry_after: float | None = None, opted_out: str = ""
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.kind = kind
        self.code = str(code)
        self.message = message
        self.retry_after = retry_after  # what the provider said about this request (Retry-After), if anything
        self.opted_out = opted_out
        self.backoff_base: float | None = None  # the backoff's base for this code, grown per attempt


class PayloadError(ValueError):
    """A stored webhook event its provider cannot read (signed, yet malformed). The one error
    `parse_event` raises: the event is recorded as applied-as-nothing and never retried."""


@dataclass(frozen=True)
class Capabilities:
    templates: bool = False
    media_kinds: frozenset[str] = frozenset()
    interactive: bool = False
    reactions: bool = False
    session_window_hours: int | None = None  # free-form only this long after the contact's last message
    qr_login: bool = False
    max_body: int = 4096
    user_ids: bool = False  # reaches a user by a provider-scoped id (WhatsApp BSUID) when no phone is known


@dataclass
class OutboundMessage:
    to: str  # E.164; "" when the contact has none (then `recipient`)
    type: str
    body: str = ""
    media_url: str = ""
    media_bytes: bytes | None = None
    media_mime: str = ""
    media_filename: str = ""
    template_name: str = ""
    template_language: str = ""
    template_variables: dict[str, Any] = field(
        default_factory=dict
    )  # {"header": [...], "body": [...], "buttons": [...]}
    payload: dict[str, Any] = field(default_factory=dict)  # location, interactive, reaction
    reply_to: str = ""
    tracking: str = ""  # echoed back by providers that support it
    recipient: str = ""  # the user's business-scoped id (WhatsApp BSUID), used when `to` is ""


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str


# --- events parsed from webhooks -----------------------------------------------------------------


@dataclass(frozen=True)
class InboundMessage:
    provider_message_id: str
    from_phone: str  # "" when the provider withholds it (a WhatsApp user with a username)
    type: str
    timestamp: datetime
    body: str = ""
    profile_name: str = ""
    from_user_id: str = ""  # WhatsApp BSUID
    from_parent_user_id: str = ""
    username: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    media_ref: str = ""  # provider media id or URL, fetched later
    media_mime: str = ""
    media_filename: str = ""
    reply_to: str = ""


@dataclass(frozen=True)
class StatusUpdate:
    provider_message_id: str
    status: str  # sent | delivered | read | failed
    timestamp: datetime
    error_code: str = ""
    error_text: str = ""
    recipient_phone: str = ""
    recipient_user_id: str = ""  # WhatsApp BSUID (absent on a failed send that went to a phone)
    recipient_parent_user_id: str = ""


@dataclass(frozen=True)
class TemplateStatusUpdate:
    template_id: str
    name: str
    language: str
    status: str
    reason: str = ""


@dataclass(frozen=True)
class QualityUpdate:
    """Meta's `phone_number_quality_update`: the number was flagged (quality dropped) or unflagged, or its
    messaging limit moved down or up."""

    display_phone_number: str  # digits, as Meta shows the number
    event: str  # FLAGGED | UNFLAGGED | DOWNGRADE | UPGRADE | ...
    current_limit: str = ""  # TIER_1K, TIER_10K...


@dataclass(frozen=True)
class PreferenceUpdate:
    phone: str  # "" when only a BSUID came
    marketing_opt_out: bool
    timestamp: datetime
    user_id: str = ""
    parent_user_id: str = ""


@dataclass(frozen=True)
class IdentityChange:
    """A user's provider id changed (WhatsApp regenerates the BSUID when the user changes number)."""

    previous_user_id: str
    user_id: str
    timestamp: datetime
    previous_parent_user_id: str = ""
    parent_user_id: str = ""
    phone: str = ""  # the new phone, when it may be shared


# --- coexistence: the number is also used in the WhatsApp Business app on the business's phone ------


@dataclass(frozen=True)
class BusinessAppMessage:
    """A message that went through the WhatsApp Business app rather than through us: an echo of what the
    owner typed on the phone (`history=False`, always outbound) or one message of the chat history the
    business shared when it connected (`history=True`, either direction). Recorded, never sent, never
    acted on."""

    provider_message_id: str
    customer_phone: str  # the customer's number (the thread id); "" when Meta withholds it
    direction: str  # "in" (the customer wrote) or "out" (the business wrote)
    type: str
    timestamp: datetime
    history: bool
    body: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    media_ref: str = ""
    media_mime: str = ""
    media_filename: str = ""
    reply_to: str = ""
    customer_user_id: str = ""  # the customer's business-scoped user id (BSUID), when Meta sends one
    history_status: str = ""  # history only: Meta's status of the message then (delivered, read, ...)


@dataclass(frozen=True)
class HistoryProgress:
    """One chunk of shared chat history arrived: where the import stands (phase 0-2, chunk order,
    overall progress 0-100)."""

    phase: int
    chunk_order: int
    progress: int


@dataclass(frozen=True)
class HistoryDeclined:
    """The business did not share its chat history (Meta's history error, e.g. 2593109)."""

    code: str
    title: str
    details: str = ""


@dataclass(frozen=True)
class AppContactChange:
    """A contact added, edited (`add`) or removed (`remove`) in the business app's address book."""

    phone: str
    action: str  # "add" | "remove"
    timestamp: datetime
    full_name: str = ""
    first_name: str = ""
    user_id: str = ""  # BSUID, when Meta sends one


Event = (
    InboundMessage
    | StatusUpdate
    | TemplateStatusUpdate
    | QualityUpdate
    | PreferenceUpdate
    | BusinessAppMessage
    | HistoryProgress
    | HistoryDeclined
    | AppContactChange
    | IdentityChange
)


class ChannelProvider:
    """Base class of a channel kind's provider. Subclasses override what their kind supports."""

    kind: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        # The tenant it was made in: `send_async` runs `send` in another thread, whose connection has none.
        self.tenant = getattr(connection, "tenant", None)

    def send(self, message: OutboundMessage) -> SendResult:
        raise ProviderError(ErrorKind.PERMANENT, "unsupported", f"{self.kind} cannot send")

    async def send_async(self, http: aiohttp.ClientSession, message: OutboundMessage) -> SendResult:
        """The dispatcher's send: many at once over one pooled aiohttp session. Kinds without an async
        client of their own (a media upload, a QR-linked session) run `send` in a thread."""
        import asyncio

        def in_tenant() -> SendResult:
            if self.tenant is not None and getattr(connection, "tenant", None) != self.tenant:
                connection.set_tenant(self.tenant)  # type: ignore[attr-defined]
            return self.send(message)

        return await asyncio.to_thread(in_tenant)

    def mark_read(self, provider_message_id: str) -> None:
        """Tell the provider the business read an inbound message (blue ticks); a no-op where unsupported."""

    def disconnect(self) -> None:
        """End the provider-side session when the channel goes away (a no-op for API-based kinds)."""

    def fetch_media(self, media_ref: str) -> tuple[bytes, str]:
        raise ProviderError(ErrorKind.PERMANENT, "unsupported", f"{self.kind} has no media to fetch")

    @classmethod
    def parse_event(cls, payload: dict[str, Any]) -> list[Event]:
        """Turn one stored raw webhook event into domain events; PayloadError when it cannot be read."""
        return []

    @classmethod
    def apply_own_event(cls, channel: Channel, event: Event) -> bool | None:
        """Apply an event only this kind knows (template status...). Same return contract as status_apply."""
        return False

    @classmethod
    def route_keys(cls, channel: Channel) -> list[tuple[str, str]]:
        """(route kind, external id) pairs by which this channel's webhooks find it."""
        return []

    @classmethod
    def route_kinds(cls) -> list[str]:
        """Every route kind this provider registers (what a channel's deletion removes)."""
        return []

    @classmethod
    def connect_verify(cls, channel: Channel) -> None:
        """Prove, with the credentials given, that the ids on this (unsaved) channel belong to them, before
        any webhook route points at it; it may complete the credentials (a webhook key). Raises
        ValidationError with a message for the user."""

    @classmethod
    def webhook_url(cls, channel: Channel) -> str:
        """Where the provider must send this channel's webhooks ("" where we set it ourselves)."""
        return ""


@cache
def provider_class(kind: str) -> type[ChannelProvider]:
    try:
        path = settings.CHANNEL_PROVIDERS[kind]
    except KeyError:
        raise LookupError(f"no provider registered for channel kind {kind!r}") from None
    cls: type[ChannelProvider] = import_string(path)
    return cls


def provider_for(channel: Channel) -> ChannelProvider:
    return provider_class(channel.kind)(channel)
