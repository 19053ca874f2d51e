"""A tenant alert: one row per cause (kind + key) while it is open; a repeat of the cause bumps the
row, the cause going away closes it. Closed rows are the history."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Resolution(models.TextChoices):
    CLEARED = "cleared", _("Cleared by itself")  # the announcing app said the cause is gone
    RESOLVED = "resolved", _("Marked resolved")  # a manager closed it by hand


class Alert(models.Model):
    kind = models.CharField(_("kind"), max_length=60)  # a key of alerts.kinds.KINDS
    key = models.CharField(max_length=200)  # which thing: a channel id, a campaign id, a number...
    detail = models.JSONField(default=dict, blank=True)  # codes and ids, worded when shown
    count = models.PositiveIntegerField(default=1)  # how many times the cause was raised while open
    first_raised_at = models.DateTimeField(_("since"))
    last_seen_at = models.DateTimeField(_("last seen"))
    dismissed_at = models.DateTimeField(null=True, blank=True)  # seen: out of the bell, still open
    dismissed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=20, choices=Resolution.choices, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    emailed_at = models.DateTimeField(null=True, blank=True)  # claimed before the email goes: once per alert

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "key"], condition=models.Q(resolved_at__isnull=True), name="alert_one_open_per_cause"
            )
        ]
        indexes = [models.Index(fields=["resolved_at", "-last_seen_at"], name="alert_state_recent")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.key}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
