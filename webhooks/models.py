"""Outgoing webhooks: a tenant's endpoints, one delivery per (endpoint, event), and every attempt made."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext_lazy as _

from core.fields import EncryptedJSONField


class Endpoint(models.Model):
    url = models.URLField(_("URL"), max_length=2000)
    description = models.CharField(_("description"), max_length=200, blank=True)
    events = ArrayField(models.CharField(max_length=64), verbose_name=_("events"), default=list)
    enabled = models.BooleanField(_("enabled"), default=True)
    # {"current": "whsec_...", "previous": "whsec_..." | "", "previous_until": iso | ""} and custom headers:
    # encrypted at rest, never shown back after creation (a header may carry the receiver's own token).
    secrets = EncryptedJSONField(default=dict)
    headers = EncryptedJSONField(default=dict)
    disabled_reason = models.CharField(max_length=200, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)  # first failure after the last success
    slow_until = models.DateTimeField(null=True, blank=True)  # 429 / 5xx: nothing goes before this
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Delivered")
    FAILED = "failed", _("Failed")  # every attempt used, or the endpoint answered 410


class Delivery(models.Model):
    """One event for one endpoint. Its webhook id stays the same over every attempt and replay, so the
    receiver can drop duplicates; the body is fixed when the event happens."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    webhook_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=64)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)  # a runner's lease on it
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="webhooks_delivery_due", condition=models.Q(status="pending")
            ),
            models.Index(fields=["endpoint", "-created_at"], name="webhooks_delivery_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.webhook_id}"


class Attempt(models.Model):
    """What one try sent and got back (the delivery log)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)  # the first 2 KB
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"#{self.number} {self.status_code or self.error}"


class InboundAuth(models.TextChoices):
    HMAC = "hmac", _("HMAC-SHA256 of the body (X-Signature: sha256=<hex>)")
    STANDARD = "standard", _("Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)")


class InboundHook(models.Model):
    """A URL other systems POST JSON to (a payment approved, a form filled): fields are picked from the
    body by path and turned into actions on a contact."""

    name = models.CharField(_("name"), max_length=100)
    key = models.CharField(max_length=48, unique=True)  # the URL's secret-free part: /hooks/in/<key>/
    auth = models.CharField(_("signature"), max_length=16, choices=InboundAuth.choices, default=InboundAuth.HMAC)
    secret = EncryptedJSONField(default=dict)  # {"value": "..."}
    enabled = models.BooleanField(_("enabled"), default=True)
    # {"phone": "customer.phone", "name": "customer.name", "email": "customer.email"}: dotted paths
    mapping = models.JSONField(default=dict)
    # [{"type": "tag_add", "tag_id": 3}, {"type": "card_move", "board_id": 1, "stage_id": 4}, ...]
    actions = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class InboundEventStatus(models.TextChoices):
    APPLIED = "applied", _("Applied")
    FAILED = "failed", _("Failed")


class InboundEvent(models.Model):
    hook = models.ForeignKey(InboundHook, on_delete=models.CASCADE, related_name="events")
    received_at = models.DateTimeField(auto_now_add=True)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=InboundEventStatus.choices)
    outcome = models.JSONField(default=list)  # what each action did
    contact_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.hook_id} {self.status}"
