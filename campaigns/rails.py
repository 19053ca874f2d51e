"""The rails that keep a number unbanned: daily caps (per channel and per campaign), the cross-channel
duplicate guard, and the automatic pause when too many of the last sends failed.

Past a daily cap the rest waits for the next day by default (`CapOverflow.DEFER`): a cap paces the
number, it does not shrink the audience, and a shop that set 1,000 a day for 5,000 contacts wants them
all reached in five days, not 4,000 dropped. A campaign may choose to skip the rest instead, each with
the reason "daily cap reached", which is what a one-day offer wants.
"""

from __future__ import annotations

import datetime
import logging
import zoneinfo
from collections import Counter
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import Campaign, CampaignRecipient, CampaignStatus, ChannelDailyCap, RecipientStatus
from core.redis import redis_client
from inbox.models import Direction, Message, MessageStatus

logger = logging.getLogger(__name__)


def tenant_timezone() -> str:
    tenant = getattr(connection, "tenant", None)
    return str(getattr(tenant, "timezone", "") or "America/Sao_Paulo")


def day_start(now: datetime.datetime, tz_name: str) -> datetime.datetime:
    """Midnight of `now`'s day in the tenant's timezone (as an aware datetime)."""
    local = now.astimezone(zoneinfo.ZoneInfo(tz_name))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def next_day_start(now: datetime.datetime, tz_name: str) -> datetime.datetime:
    start = day_start(now, tz_name)
    # a calendar day later at midnight (not 24 h: a day with a DST change is 23 or 25 hours long)
    following = (start + datetime.timedelta(days=1, hours=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    return following


def channel_sent_today(channel_id: int, since: datetime.datetime) -> int:
    """Automated (marketing) messages queued on the channel since `since`."""
    return Message.objects.filter(
        channel_id=channel_id, direction=Direction.OUTBOUND, is_marketing=True, queued_at__gte=since
    ).count()


def campaign_sent_today(campaign_id: int, since: datetime.datetime) -> int:
    return CampaignRecipient.objects.filter(campaign_id=campaign_id, message__queued_at__gte=since).count()


def cap_room(campaign: Campaign, now: datetime.datetime | None = None) -> tuple[int | None, str]:
    """How many more messages this campaign may build today (None: no cap), and the reason to show when
    that is none."""
    now = now or timezone.now()
    tz_name = tenant_timezone()
    since = day_start(now, tz_name)
    rooms: list[tuple[int, str]] = []
    if campaign.daily_cap is not None:
        rooms.append(
            (
                campaign.daily_cap - campaign_sent_today(campaign.pk, since),
                _("Daily cap of this campaign reached (%(cap)s a day).") % {"cap": campaign.daily_cap},
            )
        )
    channel_cap = ChannelDailyCap.objects.filter(channel_id=campaign.channel_id).values_list("daily_cap", flat=True)
    cap = channel_cap.first()
    if cap is not None:
        rooms.append(
            (
                cap - channel_sent_today(campaign.channel_id, since),
                _("Daily cap of the channel reached (%(cap)s a day).") % {"cap": cap},
            )
        )
    if not rooms:
        return None, ""
    room, reason = min(rooms, key=lambda pair: pair[0])
    return max(0, room), reason


def channel_cap_save(*, channel_id: int, daily_cap: int | None) -> None:
    if daily_cap is None:
        ChannelDailyCap.objects.filter(channel_id=channel_id).delete()
    else:
        ChannelDailyCap.objects.update_or_create(channel_id=channel_id, defaults={"daily_cap": daily_cap})


# --- the duplicate guard ---------------------------------------------------------------------------


def content_fingerprint(*, type: str, body: str, template_name: str = "", media_url: str = "") -> str:
    """What makes two messages "the same content": the words (spacing and case aside), the template and
    the media link."""
    words = " ".join(body.split()).casefold()
    return f"{type}\x1f{template_name}\x1f{media_url}\x1f{words}"


def recently_sent(
    *, contact_ids: list[int], hours: int, now: datetime.datetime, exclude_keys: list[str]
) -> dict[int, set[str]]:
    """The fingerprints of the automated messages each contact was sent within `hours`, on any channel,
    from any campaign or cadence (a failed send reached nobody and does not count)."""
    if not contact_ids or hours <= 0:
        return {}
    since = now - datetime.timedelta(hours=hours)
    rows = (
        Message.objects.filter(
            conversation__contact_id__any=contact_ids,
            direction=Direction.OUTBOUND,
            is_marketing=True,
            queued_at__gte=since,
        )
        .exclude(status=MessageStatus.FAILED)
        .exclude(idempotency_key__any=exclude_keys)
        .values_list("conversation__contact_id", "type", "body", "template_name", "media_url")
    )
    found: dict[int, set[str]] = {}
    for contact_id, kind, body, template_name, media_url in rows:
        found.setdefault(contact_id, set()).add(
            content_fingerprint(type=kind, body=body, template_name=template_name, media_url=media_url)
        )
    return found


# --- the automatic pause ---------------------------------------------------------------------------


def _outcomes_key(campaign_id: int) -> str:
    return f"{connection.schema_name}:campaign:outcomes:{campaign_id}"  # type: ignore[attr-defined]


def outcomes_record(outcomes: list[tuple[int, str, str]]) -> list[int]:
    """Record send outcomes [(campaign id, status, reason)] in each campaign's window of its last N sends
    (a Redis list, so the check costs no query of the recipients table at 1,000 sends a second), then pause
    the running campaigns whose failures in that window pass their threshold; the reason says how many
    failed and why most did. Returns the campaigns paused."""
    from campaigns.services import campaign_pause

    if not outcomes:
        return []
    campaigns = {
        c.pk: c
        for c in Campaign.objects.filter(
            pk__in={cid for cid, _s, _r in outcomes}, status=CampaignStatus.RUNNING, failure_window__gt=0
        )
    }
    if not campaigns:
        return []
    client = redis_client()
    pipe = client.pipeline()
    for campaign_id, status, reason in outcomes:
        if campaign_id in campaigns:
            entry = ("1" + reason[:120]) if status == RecipientStatus.FAILED else "0"
            pipe.lpush(_outcomes_key(campaign_id), entry)
    for campaign in campaigns.values():
        key = _outcomes_key(campaign.pk)
        pipe.ltrim(key, 0, campaign.failure_window - 1)
        pipe.expire(key, 7 * 86400)
        pipe.lrange(key, 0, campaign.failure_window - 1)
    results = pipe.execute()
    windows = [r for r in results if isinstance(r, list)]
    paused = []
    for campaign, window in zip(campaigns.values(), windows, strict=True):
        size = campaign.failure_window
        if len(window) < size:
            continue
        failed = [entry.decode()[1:] for entry in window if entry.startswith(b"1")]
        if len(failed) * 100 <= campaign.failure_threshold * size:
            continue
        common = Counter(failed).most_common(1)[0][0] or _("no reason given")
        reason = _(
            "Paused automatically: %(failed)s of the last %(window)s sends failed (more than %(threshold)s%%). "
            "Most common reason: %(common)s"
        ) % {"failed": len(failed), "window": size, "threshold": campaign.failure_threshold, "common": common}
        if campaign_pause(campaign=campaign, reason=reason):
            logger.warning("campaign %s auto-paused: %s", campaign.pk, reason)
            _alert(campaign, reason)
            code = Counter(failed).most_common(1)[0][0] or "-"  # what the provider said, not our words
            facts = {"failed": len(failed), "window": size, "threshold": campaign.failure_threshold, "common": code}
            _alert_raise(campaign, facts)
            paused.append(campaign.pk)
    return paused


def outcomes_forget(campaign_id: int) -> None:
    """A resumed campaign starts a new window (the failures that paused it are not counted again)."""
    redis_client().delete(_outcomes_key(campaign_id))


AUTO_PAUSED_ALERT = "campaign.auto_paused"  # the alerts app words it (core.events.ALERT_RAISED)


def _alert_raise(campaign: Campaign, facts: dict[str, Any]) -> None:
    """The tenant's alert (bell, email): codes and numbers only, worded by the alerts app."""
    from core import events

    schema = str(getattr(connection, "schema_name", "public"))
    detail = {"campaign_id": campaign.pk, "name": campaign.name, **{k: str(v) for k, v in facts.items()}}
    events.announce(events.ALERT_RAISED, schema, {"kind": AUTO_PAUSED_ALERT, "key": str(campaign.pk), "detail": detail})


def alert_clear(campaign_id: int) -> None:
    """Resumed: the auto-pause alert (if any) closes."""
    from core import events

    schema = str(getattr(connection, "schema_name", "public"))
    events.announce(events.ALERT_CLEARED, schema, {"kind": AUTO_PAUSED_ALERT, "key": str(campaign_id)})


def _alert(campaign: Campaign, reason: str) -> None:
    """The managers' open pages get a toast (the campaign page shows the reason itself)."""
    from django.db import transaction

    from core.realtime import MANAGERS_TOPIC, push

    schema = str(getattr(connection, "schema_name", "public"))
    payload: dict[str, Any] = {"campaign_id": campaign.pk, "name": campaign.name, "reason": reason}
    transaction.on_commit(lambda: push(schema, MANAGERS_TOPIC, "campaign.auto_paused", payload))


def auto_paused_toast(campaign: Campaign, reason: str) -> None:
    """The managers' toast for a campaign paused by the system for a reason other than failures (the
    plan's limit): the reason is on the campaign page, and the usage alert is the one in the bell."""
    _alert(campaign, reason)
