from __future__ import annotations

from django.db import models
from django.db.models import Q

from tenants.models import Tenant


class ChannelRoute(models.Model):
    """Maps a provider's external id (a Meta phone number id, a WABA id, a Twilio account+number) to the
    tenant and channel it belongs to, so one intake URL serves every tenant."""

    kind = models.CharField(max_length=30)
    external_id = models.CharField(max_length=120)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="channel_routes")
    channel_id = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "external_id"], name="route_unique_external_id")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.external_id} -> {self.tenant_id}/{self.channel_id}"


class WebhookEvent(models.Model):
    """One verified provider event, stored raw once (unique on the provider's event id) before it is applied."""

    provider = models.CharField(max_length=30)
    event_id = models.CharField(max_length=200)
    route_kind = models.CharField(max_length=30)
    route_key = models.CharField(max_length=120)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True)
    # Past the retention period the payload is emptied; the row (provider, event_id) stays to refuse replays.
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="webhook_event_once")]
        indexes = [
            models.Index(
                fields=["next_attempt_at", "id"], name="webhook_event_pending", condition=Q(processed_at=None)
            ),
            # The drain claims pending events oldest first: with no index in that order, PostgreSQL walked
            # the primary key through every processed event (310 ms a claim at a million events).
            models.Index(fields=["id"], name="webhook_event_pending_order", condition=Q(processed_at=None)),
            models.Index(
                fields=["processed_at"],
                name="webhook_event_purgeable",
                condition=Q(processed_at__isnull=False, purged_at=None),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.event_id}"
