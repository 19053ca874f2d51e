"""Live campaign progress over the staff WebSocket (core.realtime, the inbox's socket): counts per state,
the current rate and the ETA, pushed after commit at most once a second per campaign (a campaign of
1,000 messages a second changes far more often than a browser can show)."""

from __future__ import annotations

import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from core.realtime import STAFF_TOPIC, push
from core.redis import redis_client

EVENT = "campaign.progress"
RATE_WINDOW_S = 30
THROTTLE_MS = 1000


def progress_payload(campaign_id: int) -> dict[str, Any] | None:
    """The payload of one progress event (the page renders the same numbers on load)."""
    from campaigns.models import Campaign, CampaignRecipient
    from campaigns.selectors import campaign_stats

    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        return None
    stats = campaign_stats(campaign)
    since = timezone.now() - datetime.timedelta(seconds=RATE_WINDOW_S)
    recent = CampaignRecipient.objects.filter(campaign=campaign, message__sent_at__gte=since).count()
    rate = recent / RATE_WINDOW_S
    remaining = stats["pending"] + stats["sending"]
    eta = round(remaining / rate) if rate > 0 and remaining else None
    return {
        "campaign_id": campaign.pk,
        "status": campaign.status,
        "status_label": str(campaign.get_status_display()),
        "pause_reason": campaign.pause_reason,
        "hold_reason": campaign.hold_reason if campaign.hold_until and campaign.hold_until > timezone.now() else "",
        "counts": {k: stats[k] for k in STATES},
        "progress": stats["progress"],
        "processed": stats["processed"],
        "rate_per_s": round(rate, 2),
        "eta_s": eta,
    }


STATES = ("total", "pending", "sending", "sent", "delivered", "read", "replied", "failed", "skipped", "unknown")


def progress_push(campaign_ids: list[int] | set[int], *, force: bool = False) -> None:
    """After the current transaction commits, push the progress of these campaigns to the tenant's staff
    (a campaign pushed in the last second waits for its next change, unless `force`)."""
    if not campaign_ids:
        return
    schema = str(getattr(connection, "schema_name", "public"))
    ids = sorted(set(campaign_ids))

    def send() -> None:
        client = redis_client()
        for campaign_id in ids:
            key = f"{schema}:campaign:progress:{campaign_id}"
            if not force and not client.set(key, "1", nx=True, px=THROTTLE_MS):
                continue
            with schema_context(schema):
                payload = progress_payload(campaign_id)
            if payload is not None:
                push(schema, STAFF_TOPIC, EVENT, payload)

    transaction.on_commit(send)
