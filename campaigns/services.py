"""Writes on campaigns (cadences: campaigns.cadences). Every send goes through the inbox sending path with an
idempotency key made of the campaign (or enrollment) and the contact (or step), so a batch or a tick that
runs twice never sends anything twice."""

from __future__ import annotations

import datetime
import json
import logging
import re
import zoneinfo
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns import live, rails
from campaigns.audience import audience_contacts, audience_ready
from campaigns.models import (
    RECIPIENT_RANK,
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    CapOverflow,
    ContentKind,
    MediaKind,
    OutreachContent,
    QuietHours,
    RecipientStatus,
)
from campaigns.spintax import SpintaxError, spin_for_contact, spintax_check
from core import events
from core.urlguard import UrlRefused, address_allowed, url_check
from crm.models import ConsentStatus, Contact, ContactConsent
from crm.services import MEDIUM_OF_KIND
from inbox.models import Channel, Conversation, Direction, Message, MessageStatus, MessageType
from inbox.providers import provider_class
from inbox.services import address_check, conversation_open, message_limit_refusal, message_room, message_send
from tenants.selectors import tenant_is_active

logger = logging.getLogger(__name__)

PLACEHOLDER = re.compile(r"\{\{\s*([\w.-]+)\s*\}\}")
SLOT = re.compile(r"\{\{(\d{1,3})\}\}")
MAX_VALUE = 1000  # one filled-in value (a contact's data is the customer's: it never grows a message unbounded)
# Codes of message_send's refusals that concern one contact, not the campaign: skip that contact.
SKIP_CODES = {"opted_out", "window_closed", "no_address"}
MAX_BATCH = 500


def _schema() -> str:
    return str(getattr(connection, "schema_name", "public"))


# --- content --------------------------------------------------------------------------------------


def content_render(text: str, contact: Contact) -> str:
    """Fill {{name}}, {{first_name}}, {{phone}}, {{email}} and {{<custom field key>}} from the contact.
    An unknown placeholder becomes empty rather than reaching the customer as braces.

    Values are inserted as plain text in one pass: a value that itself looks like a placeholder stays as
    it is, nothing is evaluated, and each value is cut at MAX_VALUE characters."""
    name = str(contact.name or contact.wa_profile_name or "")
    fields = contact.custom_fields if isinstance(contact.custom_fields, dict) else {}
    known = {
        "name": name,
        "first_name": name.split()[0] if name.strip() else "",
        "phone": str(contact.phone or ""),
        "email": str(contact.email or ""),
    }

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        found = known[key] if key in known else fields.get(key, "")
        return ("" if found is None else str(found))[:MAX_VALUE]

    return PLACEHOLDER.sub(value, text)


def content_spun(text: str, contact: Contact) -> str:
    """The contact's own variation of the spintax ({Olá|Oi}), then its fields filled in: what a
    campaign's preview shows and what a campaign or a cadence step sends to that contact."""
    try:
        spun = spin_for_contact(text, contact_id=contact.pk)
    except SpintaxError:
        spun = text  # saved before braces were checked: sent as written, never a failed send
    return content_render(spun, contact)


def template_preview_fill(body: str, variables: list[str]) -> str:
    """The template body with its {{1}}, {{2}}… slots filled in one pass (a variable that contains
    "{{2}}" is shown as typed, never filled again); slots without a variable stay visible."""

    def slot(match: re.Match[str]) -> str:
        index = int(match.group(1))
        return variables[index - 1][:MAX_VALUE] if 1 <= index <= len(variables) else match.group(0)

    return SLOT.sub(slot, body)


def media_url_check(url: str) -> str:
    """A media link the provider will fetch: https, no credentials, no address of ours (the outbound-URL
    guard, without resolving: the provider fetches it, not us). Returns the reason it is refused, or ""."""
    try:
        parsed = url_check(url, resolve=False)
    except UrlRefused as exc:
        return str(exc)
    if parsed.scheme != "https":
        return _("The media link must start with https://.")
    host = parsed.host.strip("[]")
    if any(ch.isdigit() for ch in host.split(".")[-1]) or ":" in host:
        if not address_allowed(host, allow_loopback=False):
            return _("The media link points to a private address.")
    elif host in ("localhost",) or host.endswith((".localhost", ".internal", ".local")):
        return _("The media link points to a private address.")
    return ""


def content_validate(
    *,
    kind: str,
    body: str,
    template_name: str,
    channel: Channel,
    media_url: str = "",
    media_kind: str = "",
    variables: list[str] | None = None,
) -> None:
    """Raise a ValidationError (keyed by field) when this content cannot go out on this channel."""
    capabilities = provider_class(channel.kind).capabilities
    for text in [body, *(variables or [])]:
        problem = spintax_check(text)
        if problem:
            raise ValidationError(
                {"body": _("The variations {a|b} do not balance: %(problem)s") % {"problem": problem}}
            )
    if kind == ContentKind.MEDIA:
        if media_kind not in MediaKind.values:
            raise ValidationError({"media_kind": _("Choose the kind of media.")})
        if not media_url:
            raise ValidationError({"media_url": _("Give the link of the media file.")})
        problem = media_url_check(media_url)
        if problem:
            raise ValidationError(
                {"media_url": _("This media link cannot be used: %(problem)s") % {"problem": problem}}
            )
        if media_kind == MediaKind.AUDIO and body.strip():
            raise ValidationError({"body": _("An audio message has no caption. Leave the text empty.")})
        if len(body) > 1024:
            raise ValidationError({"body": _("A caption has at most 1,024 characters.")})
        return
    if kind == ContentKind.TEMPLATE:
        if not capabilities.templates:
            raise ValidationError({"kind": _("This channel does not support templates.")})
        if not template_name:
            raise ValidationError({"template_name": _("Choose an approved template.")})
    elif not body.strip():
        raise ValidationError({"body": _("Write the message.")})
    elif len(body) > capabilities.max_body:
        raise ValidationError({"body": _("The message is longer than this channel allows.")})


def template_text(content: OutreachContent, channel: Channel) -> str:
    """The approved template's body with its {{1}}… slots (the name when the template is unknown here)."""
    from whatsapp.models import MessageTemplate

    template = MessageTemplate.objects.filter(
        waba_id=channel.waba_id, name=content.template_name, language=content.template_language
    ).first()
    return template.body_text if template else content.template_name


def outreach_send(
    *,
    content: OutreachContent,
    channel: Channel,
    contact: Contact,
    idempotency_key: str,
    conversation: Conversation | None = None,
    template_body: str | None = None,
    dispatch: bool = True,
    hold_quiet_hours: bool = False,
) -> Message:
    """Send campaign or cadence content to one contact (marketing, so marketing opt-outs hold). A batch
    passes the conversation and the template text it already has."""
    conversation = conversation or conversation_open(contact=contact, channel=channel)
    if content.kind == ContentKind.TEMPLATE:
        variables = [content_spun(str(v), contact) for v in content.template_variables]
        preview = template_preview_fill(
            template_body if template_body is not None else template_text(content, channel), variables
        )
        return message_send(
            conversation=conversation,
            type=MessageType.TEMPLATE,
            template_name=content.template_name,
            template_language=content.template_language,
            template_variables={"body": variables},
            body=preview,
            is_marketing=True,
            idempotency_key=idempotency_key,
            dispatch=dispatch,
            hold_quiet_hours=hold_quiet_hours,
        )
    return message_send(
        conversation=conversation,
        body=content_spun(content.body, contact),
        is_marketing=True,
        idempotency_key=idempotency_key,
        dispatch=dispatch,
        hold_quiet_hours=hold_quiet_hours,
    )


def conversation_rows(
    *, channel: Channel, contact_ids: list[int], now: datetime.datetime
) -> dict[int, tuple[int, datetime.datetime | None]]:
    """Each contact's conversation on the channel as (id, last inbound time), opening the missing ones:
    two statements for a batch (three if another runner opened some of them at the same moment), and
    no model instances."""

    def found(ids: list[int]) -> dict[int, tuple[int, datetime.datetime | None]]:
        rows = Conversation.objects.filter(channel_id=channel.pk, contact_id__any=ids).values_list(
            "contact_id", "id", "last_inbound_at"
        )
        return {contact_id: (pk, last_inbound) for contact_id, pk, last_inbound in rows}

    result = found(contact_ids)
    missing = [i for i in contact_ids if i not in result]
    if missing:
        opened = columns_insert(
            Conversation,
            Conversation(contact_id=missing[0], channel=channel, last_message_at=now),
            {"contact_id": missing},
            ignore_conflicts=True,
        )
        result.update({contact_id: (pk, None) for contact_id, pk in opened.items()})
        raced = [i for i in missing if i not in opened]
        if raced:
            result.update(found(raced))
    return result


def columns_insert(
    model: Any, template: Any, columns: dict[str, list[Any]], *, ignore_conflicts: bool = False
) -> dict[Any, int]:
    """INSERT of rows of `model` that differ only in `columns` (attname -> one value per row), as one
    array per column through unnest; every other column is prepared once, from `template` (Django
    prepares each field of each row of a bulk_create, and builds an instance per row: for a build batch
    that was most of its time). The last column is the batch's unique key (idempotency key, contact):
    answers key -> new primary key (with ignore_conflicts, a row that existed is left out). A column whose
    default differs per row (a uuid) has to be among `columns`: Message and Conversation have none."""
    names = list(columns)
    if not names or not columns[names[0]]:
        return {}
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    by_name = {f.attname: f for f in fields}
    constant = [f for f in fields if f.attname not in columns]
    params: list[Any] = []
    select: list[str] = []
    for f in constant:
        select.append(f"%s::{f.db_type(connection)}")
        params.append(f.get_db_prep_save(f.pre_save(template, True), connection))
    arrays: list[str] = []
    for i, name in enumerate(names):
        f = by_name[name]
        kind = f.db_type(connection)
        if kind in ("jsonb", "json"):
            encoder = getattr(f, "encoder", None)
            params.append([json.dumps(v, cls=encoder) for v in columns[name]])
            arrays.append("%s::text[]")
            select.append(f"v.c{i}::{kind}")
        else:
            params.append([f.get_db_prep_save(v, connection) for v in columns[name]])
            arrays.append(f"%s::{kind}[]")
            select.append(f"v.c{i}")
    quoted = ", ".join(connection.ops.quote_name(f.column) for f in [*constant, *(by_name[n] for n in names)])
    key = connection.ops.quote_name(by_name[names[-1]].column)
    sql = (
        f"INSERT INTO {model._meta.db_table} ({quoted}) "  # noqa: S608 (our names; values are parameters)
        f"SELECT {', '.join(select)} FROM unnest({', '.join(arrays)}) "
        f"AS v({', '.join(f'c{i}' for i in range(len(names)))})"
        + (" ON CONFLICT DO NOTHING" if ignore_conflicts else "")
        + f" RETURNING {model._meta.pk.column}, {key}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {k: pk for pk, k in cursor.fetchall()}


# --- quiet hours ----------------------------------------------------------------------------------


def quiet_until(now: datetime.datetime, quiet: QuietHours, tz_name: str) -> datetime.datetime | None:
    """The moment automated sends may go out again, or None when they may go out now."""
    if not quiet.enabled:
        return None
    tz = zoneinfo.ZoneInfo(tz_name)
    local = now.astimezone(tz)

    def is_quiet(moment: datetime.datetime) -> bool:
        if quiet.quiet_sundays and moment.weekday() == 6:
            return True
        t = moment.time()
        if quiet.start == quiet.end:
            return False
        if quiet.start < quiet.end:
            return quiet.start <= t < quiet.end
        return t >= quiet.start or t < quiet.end  # across midnight

    if not is_quiet(local):
        return None
    # The next candidate openings: the end of quiet hours today, tomorrow, ... (Sundays skipped).
    for days in range(0, 9):
        day = (local + datetime.timedelta(days=days)).date()
        opening = datetime.datetime.combine(day, quiet.end, tzinfo=tz)
        if quiet.start == quiet.end:
            opening = datetime.datetime.combine(day, datetime.time(0, 0), tzinfo=tz)
        if opening > local and not is_quiet(opening):
            return opening.astimezone(datetime.UTC)
    return None


def _quiet_wait(respect: bool) -> datetime.datetime | None:
    if not respect:
        return None
    tenant = getattr(connection, "tenant", None)
    return quiet_until(timezone.now(), QuietHours.current(), getattr(tenant, "timezone", "America/Sao_Paulo"))


# --- campaigns ------------------------------------------------------------------------------------


def campaign_save(*, campaign: Campaign | None = None, **fields: Any) -> Campaign:
    """Create or edit a campaign while it is a draft or scheduled."""
    campaign = campaign or Campaign()
    if campaign.pk and campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        raise ValidationError(_("A campaign that started sending cannot be edited."))
    for name, value in fields.items():
        setattr(campaign, name, value)
    content_validate(
        kind=campaign.kind,
        body=campaign.body,
        template_name=campaign.template_name,
        channel=campaign.channel,
        media_url=campaign.media_url,
        media_kind=campaign.media_kind,
        variables=[
            str(v)
            for v in [
                *campaign.template_variables,
                *campaign.template_header_variables,
                *campaign.template_button_variables,
            ]
        ],
    )
    if campaign.kind == ContentKind.TEMPLATE and campaign.media_url:
        problem = media_url_check(campaign.media_url)
        if problem:
            raise ValidationError(
                {"media_url": _("This media link cannot be used: %(problem)s") % {"problem": problem}}
            )
    if campaign.failure_threshold > 100:
        raise ValidationError({"failure_threshold": _("A share of failures is between 0 and 100%.")})
    campaign.save()
    return campaign


def campaign_audience(campaign: Campaign) -> QuerySet[Contact]:
    return audience_contacts(campaign.audience)


def campaign_launch(*, campaign: Campaign) -> Campaign:
    """Fix the audience now (each contact once) and start sending, or wait for the scheduled time."""
    now = timezone.now()
    later = campaign.scheduled_at is not None and campaign.scheduled_at > now
    waiting = audience_ready(campaign.audience)
    if waiting:
        raise ValidationError(waiting, code="audience_not_ready")
    with transaction.atomic():
        target = CampaignStatus.SCHEDULED if later else CampaignStatus.RUNNING
        changed = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.DRAFT).update(
            status=target, started_at=None if later else now
        )
        if not changed:
            raise ValidationError(_("This campaign was already launched."))
        sql, params = campaign_audience(campaign).order_by().values("pk").query.sql_with_params()
        with connection.cursor() as cursor:
            # Straight from the audience query into the recipients table: 100,000 contacts in one statement.
            cursor.execute(  # the subquery is Django's own compiled SQL; values are parameters
                f"INSERT INTO {CampaignRecipient._meta.db_table} (campaign_id, contact_id, status, reason, round) "  # noqa: S608
                f"SELECT %s, audience.contact_id, %s, '', 0 FROM ({sql}) AS audience(contact_id) "
                "ON CONFLICT DO NOTHING",
                [campaign.pk, RecipientStatus.PENDING, *params],
            )
        total = CampaignRecipient.objects.filter(campaign=campaign).count()
        Campaign.objects.filter(pk=campaign.pk).update(total_recipients=total)
        if not later:
            _run_soon(campaign.pk)
        live.progress_push([campaign.pk], force=True)
    campaign.refresh_from_db()
    return campaign


def _run_soon(campaign_id: int) -> None:
    """After commit, the campaign's channel gets a dispatcher runner (which builds and sends its batches)."""
    from inbox.dispatcher import kick_on_commit

    channel_id = Campaign.objects.filter(pk=campaign_id).values_list("channel_id", flat=True).first()
    if channel_id is not None:
        kick_on_commit(channel_id)


def campaign_run(*, campaign_id: int) -> float | None:
    """Wake the campaign's channel runner (the dispatcher builds and sends every batch). Always None."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.status != CampaignStatus.RUNNING or not tenant_is_active():
        return None
    from inbox.dispatcher import kick

    kick(campaign.channel_id)
    return None


# --- the dispatcher's campaign hooks ----------------------------------------------------------------


def campaigns_build(channel_id: int, wanted: int) -> int:
    """Dispatcher hook: build up to `wanted` messages of the running campaigns on this channel (bulk
    INSERT; the runner calls it in a thread of its own, so building overlaps the sends). Campaigns with
    nothing left are completed. Returns the recipients handled."""
    if not tenant_is_active():
        return 0
    built = 0
    running = Campaign.objects.filter(channel_id=channel_id, status=CampaignStatus.RUNNING).select_related("channel")
    now = timezone.now()
    for campaign in running.order_by("started_at", "id"):
        room = wanted - built
        handled = 0
        if campaign.hold_until is not None and campaign.hold_until > now:
            continue  # waiting for a daily cap to reset
        if room > 0 and _quiet_wait(campaign.respect_quiet_hours) is None:
            cap, why = rails.cap_room(campaign, now)
            if cap is not None and cap < room:
                room = cap
            with transaction.atomic():  # the plan's messages this month, locked until the batch is written
                plan_room = message_room(channel_kind=campaign.channel.kind, lock=True)
                if plan_room is not None and plan_room < room:
                    room = plan_room
                if room > 0:
                    handled = _campaign_build_batch(campaign, min(room, MAX_BATCH))
            if room <= 0 and cap == 0:
                handled = _campaign_cap_reached(campaign, why, now)
            elif room <= 0 and plan_room == 0:
                _campaign_limit_reached(campaign)
                continue
            built += handled
        if handled == 0:
            _campaign_complete_if_done(campaign)
    return built


def _campaign_cap_reached(campaign: Campaign, reason: str, now: datetime.datetime) -> int:
    """A daily cap is spent: the rest waits for tomorrow (held, not built), or is skipped with the
    reason when the campaign says so. Returns the recipients skipped."""
    if campaign.cap_overflow == CapOverflow.SKIP:
        skipped = CampaignRecipient.objects.filter(campaign=campaign, status=RecipientStatus.PENDING).update(
            status=RecipientStatus.SKIPPED, reason=_("Daily cap reached."), processed_at=now
        )
        live.progress_push([campaign.pk], force=True)
        return skipped
    opening = rails.next_day_start(now, rails.tenant_timezone())
    Campaign.objects.filter(pk=campaign.pk).update(hold_until=opening, hold_reason=reason[:200])
    live.progress_push([campaign.pk], force=True)
    return 0


def _campaign_limit_reached(campaign: Campaign) -> None:
    """The plan's monthly messages of this channel kind are spent: the campaign pauses with that reason.
    Its recipients not built stay pending (nothing half-sent, resumed later); its messages already built
    were admitted within the limit and go on."""
    reason = message_limit_refusal(channel_kind=campaign.channel.kind)
    if campaign_pause(campaign=campaign, reason=reason, hold_built=False):
        logger.warning("campaign %s paused at the plan's limit", campaign.pk)
        rails.auto_paused_toast(campaign, reason)


def campaign_channels_to_build() -> list[int]:
    """Channels with a running campaign that still has recipients to build (for the beat's ensure)."""
    return list(
        CampaignRecipient.objects.filter(campaign__status=CampaignStatus.RUNNING, status=RecipientStatus.PENDING)
        .exclude(campaign__hold_until__gt=timezone.now())
        .order_by()
        .values_list("campaign__channel_id", flat=True)
        .distinct()
    )


class _Pending(NamedTuple):
    """A recipient whose message is about to be written: its conversation, content and idempotency key."""

    recipient: CampaignRecipient
    conversation_id: int
    content: dict[str, Any]
    key: str


def _campaign_build_batch(campaign: Campaign, limit: int) -> int:
    channel = campaign.channel
    caps = provider_class(channel.kind).capabilities
    medium = MEDIUM_OF_KIND[channel.kind]
    template_body = template_text(campaign, channel) if campaign.kind == ContentKind.TEMPLATE else None
    with transaction.atomic():
        batch = list(
            CampaignRecipient.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(campaign=campaign, status=RecipientStatus.PENDING)
            .select_related("contact")
            .order_by("id")[:limit]
        )
        if not batch:
            return 0
        now = timezone.now()
        contact_ids = [r.contact_id for r in batch]
        conversations = conversation_rows(channel=channel, contact_ids=contact_ids, now=now)
        refused = dict(
            ContactConsent.objects.filter(contact_id__any=contact_ids, medium=medium)
            .exclude(status=ConsentStatus.OPTED_IN)
            .values_list("contact_id", "status")
        )
        window = caps.session_window_hours
        pending: list[_Pending] = []
        for recipient in batch:
            contact = recipient.contact
            conversation_id, last_inbound = conversations[recipient.contact_id]
            recipient.processed_at = now
            if recipient.contact_id in refused:
                recipient.status = RecipientStatus.SKIPPED
                recipient.reason = _("%(contact)s opted out of %(medium)s messages.") % {
                    "contact": contact.display_name,
                    "medium": medium.label,
                }
                continue
            try:  # no phone: reachable only by a user id of this channel's portfolio (the BSUID rule)
                address_check(contact, channel, caps.user_ids)
            except ValidationError as exc:
                recipient.status, recipient.reason = RecipientStatus.SKIPPED, " ".join(exc.messages)[:300]
                continue
            if (
                campaign.kind != ContentKind.TEMPLATE
                and window is not None
                and (last_inbound is None or now - last_inbound >= datetime.timedelta(hours=window))
            ):
                recipient.status = RecipientStatus.SKIPPED
                recipient.reason = _(
                    "The 24-hour window to reply freely is closed. "
                    "Send an approved template to restart the conversation."
                )
                continue
            key = f"campaign:{campaign.pk}:{contact.pk}" + (f":r{recipient.round}" if recipient.round else "")
            content = campaign_content(campaign, contact, template_body)
            pending.append(_Pending(recipient, conversation_id, content, key))
        if pending:
            # What every message of the batch shares (the campaign's kind, template, media; the times).
            shared = {k: v for k, v in pending[0].content.items() if k not in ("body", "template_variables")}
            template = Message(
                conversation_id=pending[0].conversation_id,
                channel_id=campaign.channel_id,
                direction=Direction.OUTBOUND,
                is_marketing=True,
                status=MessageStatus.QUEUED,
                queued_at=now,
                next_attempt_at=now,
                hold_quiet_hours=campaign.respect_quiet_hours,
                **shared,
            )
            if campaign.dedupe_hours:
                pending = _campaign_dedupe(campaign, pending, template, now)
        # A recipient put back to pending whose message exists (a replay) keeps that message: never two.
        existing = {
            key: (pk, status)
            for key, pk, status in Message.objects.filter(idempotency_key__any=[p.key for p in pending]).values_list(
                "idempotency_key", "id", "status"
            )
        }
        fresh = [p for p in pending if p.key not in existing]
        written = (
            columns_insert(
                Message,
                template,
                {
                    "conversation_id": [p.conversation_id for p in fresh],
                    "body": [p.content["body"] for p in fresh],
                    "template_variables": [p.content.get("template_variables", {}) for p in fresh],
                    "idempotency_key": [p.key for p in fresh],
                },
            )
            if fresh
            else {}
        )
        for p in pending:
            if p.key in existing:
                p.recipient.message_id, status = existing[p.key]
                p.recipient.status = _FOLLOW.get(status, RecipientStatus.SENDING)  # type: ignore[call-overload]
            else:
                p.recipient.message_id, p.recipient.status = written[p.key], RecipientStatus.SENDING
        _recipients_record(batch, now)
        if pending:
            Conversation.objects.filter(pk__any=list({p.conversation_id for p in pending})).update(last_message_at=now)
        live.progress_push([campaign.pk])
    return len(batch)


def _campaign_dedupe(
    campaign: Campaign, pending: list[_Pending], template: Message, now: datetime.datetime
) -> list[_Pending]:
    """The same content to the same person within the window, from any campaign or cadence on any
    channel: skipped and recorded (this campaign's own message of a replay is not a duplicate)."""
    recent = rails.recently_sent(
        contact_ids=[p.recipient.contact_id for p in pending],
        hours=campaign.dedupe_hours,
        now=now,
        exclude_keys=[p.key for p in pending],
    )
    kept = []
    for p in pending:
        fingerprint = rails.content_fingerprint(
            type=template.type,
            body=p.content["body"],
            template_name=template.template_name,
            media_url=template.media_url,
        )
        if fingerprint in recent.get(p.recipient.contact_id, set()):
            p.recipient.status = RecipientStatus.SKIPPED
            p.recipient.reason = _("The same message was sent to this contact in the last %(hours)s hours.") % {
                "hours": campaign.dedupe_hours
            }
        else:
            kept.append(p)
    return kept


def _recipients_record(batch: list[CampaignRecipient], now: datetime.datetime) -> None:
    """One UPDATE ... FROM unnest(arrays) for the batch (bulk_update's CASE per row grows with the batch; an
    array per column keeps the statement's text the same for every batch)."""
    if not batch:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {CampaignRecipient._meta.db_table} AS r SET status = v.status, message_id = v.message_id, "  # noqa: S608
            "reason = v.reason, processed_at = %s "
            "FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::text[]) AS v(id, status, message_id, reason) "
            "WHERE r.id = v.id",
            [
                now,
                [r.pk for r in batch],
                [r.status for r in batch],
                [r.message_id for r in batch],
                [r.reason for r in batch],
            ],
        )


def campaign_content(campaign: Campaign, contact: Contact, template_body: str | None) -> dict[str, Any]:
    """What this contact gets: its variation of the spintax, filled with its fields (the preview and the
    send call this same function, so what the preview shows is what goes out)."""

    def fill(text: str) -> str:
        return content_spun(str(text), contact)

    if campaign.kind == ContentKind.TEMPLATE:
        body = [fill(v) for v in campaign.template_variables]
        variables: dict[str, Any] = {"body": body}
        if campaign.media_url and campaign.media_kind in (MediaKind.IMAGE, MediaKind.VIDEO, MediaKind.DOCUMENT):
            variables["header"] = [{"type": campaign.media_kind, "link": campaign.media_url}]
        elif campaign.template_header_variables:
            variables["header"] = [fill(v) for v in campaign.template_header_variables]
        if campaign.template_button_variables:
            variables["buttons"] = [
                {"index": index, "sub_type": "url", "text": fill(v)}
                for index, v in _button_slots(campaign, template_body is not None)
            ]
        return {
            "type": MessageType.TEMPLATE,
            "template_name": campaign.template_name,
            "template_language": campaign.template_language,
            "template_variables": variables,
            "body": template_preview_fill(template_body or "", body),
        }
    if campaign.kind == ContentKind.MEDIA:
        return {
            "type": campaign.media_kind,
            "media_url": campaign.media_url,
            "body": fill(campaign.body) if campaign.media_kind != MediaKind.AUDIO else "",
        }
    return {"type": MessageType.TEXT, "body": fill(campaign.body)}


def _button_slots(campaign: Campaign, known: bool) -> list[tuple[int, str]]:
    """The button variables with the index of the template's dynamic URL button each fills (in order
    of the template's buttons; without the template here, the order given)."""
    cached = getattr(campaign, "_button_slots", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    values = [str(v) for v in campaign.template_button_variables]
    indexes: list[int] = []
    if known:
        from whatsapp.models import MessageTemplate

        template = MessageTemplate.objects.filter(
            waba_id=campaign.channel.waba_id, name=campaign.template_name, language=campaign.template_language
        ).first()
        buttons = template.component("BUTTONS").get("buttons", []) if template else []
        indexes = [
            i
            for i, button in enumerate(buttons if isinstance(buttons, list) else [])
            if str(button.get("type", "")).upper() == "URL" and "{{" in str(button.get("url", ""))
        ]
    if len(indexes) < len(values):
        indexes += list(range(len(indexes), len(values)))
    slots = list(zip(indexes, values, strict=False))
    campaign._button_slots = slots  # type: ignore[attr-defined]  # once per batch, not per recipient
    return slots


def _campaign_complete_if_done(campaign: Campaign) -> None:
    """Complete only once every recipient has an outcome (never before: that is how broadcasts send twice)."""
    if CampaignRecipient.objects.filter(
        campaign=campaign, status__in=[RecipientStatus.PENDING, RecipientStatus.SENDING]
    ).exists():
        return
    if Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.RUNNING).update(
        status=CampaignStatus.COMPLETED, finished_at=timezone.now()
    ):
        events.announce(events.CAMPAIGN_FINISHED, _schema(), {"campaign_id": campaign.pk})
        live.progress_push([campaign.pk], force=True)


_FOLLOW = {
    MessageStatus.SENT: RecipientStatus.SENT,
    MessageStatus.DELIVERED: RecipientStatus.DELIVERED,
    MessageStatus.READ: RecipientStatus.READ,
    MessageStatus.FAILED: RecipientStatus.FAILED,
    MessageStatus.UNKNOWN: RecipientStatus.UNKNOWN,
}


def recipients_follow(changes: list[tuple[int, str, str]]) -> int:
    """Dispatcher and status hook: the recipients of these messages take their new state, forward only
    (RECIPIENT_RANK; failed after anything short of delivered; an opt-out found at send time is a skip).
    One statement for the batch."""
    ids: list[int] = []
    targets: list[str] = []
    ranks: list[int] = []
    for message_id, status, code in changes:
        target = _FOLLOW.get(status)  # type: ignore[call-overload]
        if target is None:
            continue
        if target == RecipientStatus.FAILED and code == "opted_out":
            target = RecipientStatus.SKIPPED
        ids.append(message_id)
        targets.append(target)
        ranks.append(RECIPIENT_RANK.get(target, 0))
    if not ids:
        return 0
    rank_sql = "CASE r.status " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in RECIPIENT_RANK.items()) + " ELSE 99 END"
    table, messages = CampaignRecipient._meta.db_table, Message._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS r SET status = v.status, processed_at = %s, "  # noqa: S608 (our names; values are parameters)
            "reason = CASE WHEN v.status IN ('failed', 'skipped') THEN left(m.error_text, 300) ELSE r.reason END "
            f"FROM unnest(%s::bigint[], %s::text[], %s::int[]) AS v(id, status, rank) JOIN {messages} m ON m.id = v.id "
            "WHERE r.message_id = v.id AND ("
            "(v.status IN ('failed', 'skipped') AND r.status IN ('sending', 'unknown', 'sent')) OR "
            "(v.status NOT IN ('failed', 'skipped') AND r.status NOT IN ('failed', 'skipped') "
            f"AND {rank_sql} < v.rank))",
            [timezone.now(), ids, targets, ranks],
        )
        count = int(cursor.rowcount)
    if count:
        sends = {m for m, s, _c in changes if s in (MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.UNKNOWN)}
        found = list(
            CampaignRecipient.objects.filter(message_id__any=[m for m, _s, _c in changes]).values_list(
                "message_id", "campaign_id", "status", "reason"
            )
        )
        # the recipient's own state decides (a send refused for an opt-out is a skip, not a failure)
        rails.outcomes_record([(cid, status, reason) for mid, cid, status, reason in found if mid in sends])
        live.progress_push({cid for _m, cid, _s, _r in found})
    return count


def recipients_replied(*, contact_id: int) -> int:
    """The contact wrote back: its campaign recipients that reached it count as replied."""
    return CampaignRecipient.objects.filter(
        contact_id=contact_id,
        status__in=[RecipientStatus.SENT, RecipientStatus.DELIVERED, RecipientStatus.READ],
        campaign__status__in=[CampaignStatus.RUNNING, CampaignStatus.COMPLETED],
    ).update(status=RecipientStatus.REPLIED)


def quiet_opening_now() -> datetime.datetime | None:
    """Dispatcher hook: when automated sends held by quiet hours may go again (None: they may go now)."""
    return _quiet_wait(True)


def _campaign_queued(campaign: Campaign) -> QuerySet[Message]:
    """The campaign's messages built and not yet claimed by a sender."""
    return Message.objects.filter(
        pk__in=CampaignRecipient.objects.filter(campaign=campaign, status=RecipientStatus.SENDING).values("message_id"),
        status=MessageStatus.QUEUED,
    )


def campaign_pause(*, campaign: Campaign, reason: str = "", hold_built: bool = True) -> bool:
    """Stop sending: nothing more is built, and the messages already built (deferred retries included)
    are held (no due time) until resumed (`hold_built` False: they go on, as at the plan's limit, where
    they were admitted within it). A request already in flight finishes. `reason` is shown on the page
    (the automatic pause says why)."""
    with transaction.atomic():
        moved = _campaign_move(campaign, [CampaignStatus.RUNNING, CampaignStatus.SCHEDULED], CampaignStatus.PAUSED)
        if moved and hold_built:
            _campaign_queued(campaign).update(next_attempt_at=None)
        if moved:
            Campaign.objects.filter(pk=campaign.pk).update(pause_reason=reason[:300])
            campaign.pause_reason = reason[:300]
            live.progress_push([campaign.pk], force=True)
    return moved


def campaign_resume(*, campaign: Campaign) -> bool:
    """Go on: to running, or back to scheduled when its time is still in the future."""
    with transaction.atomic():
        later = campaign.scheduled_at is not None and campaign.scheduled_at > timezone.now()
        target = CampaignStatus.SCHEDULED if later else CampaignStatus.RUNNING
        moved = _campaign_move(campaign, [CampaignStatus.PAUSED], target)
        if moved:
            Campaign.objects.filter(pk=campaign.pk).update(pause_reason="")
            campaign.pause_reason = ""
            rails.outcomes_forget(campaign.pk)
            rails.alert_clear(campaign.pk)
        if moved and target == CampaignStatus.RUNNING:
            Campaign.objects.filter(pk=campaign.pk, started_at=None).update(started_at=timezone.now())
            _campaign_queued(campaign).filter(next_attempt_at=None).update(next_attempt_at=timezone.now())
            _run_soon(campaign.pk)
        if moved:
            live.progress_push([campaign.pk], force=True)
    return moved


def campaign_duplicate(*, campaign: Campaign, created_by: Any = None) -> Campaign:
    """A new draft with the same channel, audience, message and rails (nothing of its sending)."""
    copy = Campaign(
        name=(_("%(name)s (copy)") % {"name": campaign.name})[:120],
        duplicated_from=campaign,
        created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
    )
    for field in (
        "channel_id",
        "audience",
        "audience_report",
        "kind",
        "body",
        "template_name",
        "template_language",
        "template_variables",
        "template_header_variables",
        "template_button_variables",
        "media_kind",
        "media_url",
        "respect_quiet_hours",
        "daily_cap",
        "cap_overflow",
        "failure_window",
        "failure_threshold",
        "dedupe_hours",
    ):
        setattr(copy, field, getattr(campaign, field))
    copy.save()
    return copy


def campaign_retry_failed(*, campaign: Campaign) -> int:
    """Send again to the recipients whose send failed (a new message each: the failed one stays in the
    history). The campaign goes back to sending; a paused or scheduled one waits for its resume.
    Returns how many recipients will be tried again."""
    if campaign.status in (CampaignStatus.DRAFT, CampaignStatus.CANCELED):
        raise ValidationError(_("Only a launched campaign that was not canceled can retry its failed sends."))
    with transaction.atomic():
        count = CampaignRecipient.objects.filter(campaign=campaign, status=RecipientStatus.FAILED).update(
            status=RecipientStatus.PENDING, message=None, reason="", processed_at=None, round=F("round") + 1
        )
        if (
            count
            and Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.COMPLETED).update(
                status=CampaignStatus.RUNNING, finished_at=None
            )
        ) or (count and campaign.status == CampaignStatus.RUNNING):
            _run_soon(campaign.pk)
        live.progress_push([campaign.pk], force=True)
    campaign.refresh_from_db()
    return count


def campaign_cancel(*, campaign: Campaign) -> bool:
    """Stop for good: recipients not reached yet are skipped, messages not yet sent are dropped (failed,
    'canceled'); a request already in flight finishes."""
    with transaction.atomic():
        moved = _campaign_move(
            campaign,
            [CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.RUNNING, CampaignStatus.PAUSED],
            CampaignStatus.CANCELED,
        )
        if moved:
            now = timezone.now()
            dropped = list(_campaign_queued(campaign).values_list("pk", flat=True))
            Message.objects.filter(pk__in=dropped, status=MessageStatus.QUEUED).update(
                status=MessageStatus.FAILED, failed_at=now, next_attempt_at=None, error_code="canceled"
            )
            CampaignRecipient.objects.filter(
                Q(status=RecipientStatus.PENDING) | Q(message_id__in=dropped), campaign=campaign
            ).update(status=RecipientStatus.SKIPPED, reason=_("Campaign canceled."), processed_at=now)
            Campaign.objects.filter(pk=campaign.pk).update(finished_at=now)
            live.progress_push([campaign.pk], force=True)
    return moved


def _campaign_move(campaign: Campaign, sources: list[str], target: str) -> bool:
    moved = Campaign.objects.filter(pk=campaign.pk, status__in=sources).update(status=target) == 1
    campaign.refresh_from_db()
    return moved


def campaigns_resume_running() -> int:
    """After a suspension: every campaign still running gets its batches going again (a second runner
    is harmless: recipients are claimed with SKIP LOCKED and every message has its idempotency key)."""
    ids = list(Campaign.objects.filter(status=CampaignStatus.RUNNING).values_list("pk", flat=True))
    for pk in ids:
        _run_soon(pk)
    return len(ids)


def campaigns_start_due() -> int:
    """Beat: scheduled campaigns whose time has come start sending."""
    started = 0
    for pk in Campaign.objects.filter(status=CampaignStatus.SCHEDULED, scheduled_at__lte=timezone.now()).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            if Campaign.objects.filter(pk=pk, status=CampaignStatus.SCHEDULED).update(
                status=CampaignStatus.RUNNING, started_at=timezone.now()
            ):
                _run_soon(pk)
                started += 1
    return started


REPLY_WINDOW = datetime.timedelta(days=7)


def campaign_reply_note(*, contact_id: int, conversation_id: int, message_id: int) -> int | None:
    """An inbound message answers a campaign when it is the contact's first message in that conversation
    since a campaign message reached them there (within REPLY_WINDOW): `campaign.replied` is announced.
    Returns the campaign's id, or None."""
    since = timezone.now() - REPLY_WINDOW
    recipient = (
        CampaignRecipient.objects.filter(
            contact_id=contact_id,
            status__in=[RecipientStatus.SENT, RecipientStatus.DELIVERED, RecipientStatus.READ, RecipientStatus.REPLIED],
            message__conversation_id=conversation_id,
            message__created_at__gte=since,
        )
        .select_related("message")
        .order_by("-message__created_at")
        .first()
    )
    if recipient is None or recipient.message is None:
        return None
    earlier = Message.objects.filter(
        conversation_id=conversation_id, direction="in", created_at__gt=recipient.message.created_at
    ).exclude(pk=message_id)
    if earlier.exists():
        return None
    events.announce(
        events.CAMPAIGN_REPLIED,
        _schema(),
        {
            "campaign_id": recipient.campaign_id,
            "contact_id": contact_id,
            "conversation_id": conversation_id,
            "message_id": message_id,
        },
    )
    return recipient.campaign_id


@transaction.atomic
def quiet_hours_save(**fields: Any) -> QuietHours:
    quiet = QuietHours.current()
    for name, value in fields.items():
        setattr(quiet, name, value)
    quiet.save()
    return quiet


# Cadences live in campaigns.cadences; these names are kept here for the callers that import them from
# services (lazily: cadences imports this module).
_CADENCE_NAMES = frozenset(
    {
        "cadence_save",
        "cadence_enroll",
        "cadences_advance",
        "enrollments_stop",
        "enrollments_stop_on_reply",
        "enrollments_stop_on_opt_out",
        "DEDUPE_HOURS_CADENCE",
    }
)


def __getattr__(name: str) -> Any:
    if name in _CADENCE_NAMES:
        from campaigns import cadences

        return getattr(cadences, name)
    raise AttributeError(name)
