from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils.translation import gettext_lazy as _


class TemplateStatus(models.TextChoices):
    APPROVED = "APPROVED", _("Approved")
    PENDING = "PENDING", _("Pending review")
    REJECTED = "REJECTED", _("Rejected")
    PAUSED = "PAUSED", _("Paused")
    DISABLED = "DISABLED", _("Disabled")
    IN_APPEAL = "IN_APPEAL", _("In appeal")
    PENDING_DELETION = "PENDING_DELETION", _("Pending deletion")
    ARCHIVED = "ARCHIVED", _("Archived")


class TemplateCategory(models.TextChoices):
    MARKETING = "MARKETING", _("Marketing")
    UTILITY = "UTILITY", _("Utility")
    AUTHENTICATION = "AUTHENTICATION", _("Authentication")


class MessageTemplate(models.Model):
    """A WhatsApp message template of a WhatsApp Business Account, mirrored from Meta."""

    waba_id = models.CharField(max_length=40)
    template_id = models.CharField(max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=512)
    language = models.CharField(_("language"), max_length=15)
    category = models.CharField(_("category"), max_length=20, choices=TemplateCategory.choices)
    status = models.CharField(_("status"), max_length=20, default=TemplateStatus.PENDING)
    parameter_format = models.CharField(max_length=12, default="POSITIONAL")
    components = models.JSONField(default=list)
    reason = models.CharField(max_length=300, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "language"]
        constraints = [models.UniqueConstraint(fields=["waba_id", "name", "language"], name="template_name_language")]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"

    def component(self, kind: str) -> dict[str, object]:
        return next((c for c in self.components if str(c.get("type", "")).upper() == kind), {})

    @property
    def body_text(self) -> str:
        return str(self.component("BODY").get("text", ""))

    @property
    def body_variable_count(self) -> int:
        import re

        return len(set(re.findall(r"\{\{\s*(\w+)\s*\}\}", self.body_text)))


class QrPacing(models.Model):
    """Anti-ban pacing of one WhatsApp Web (QR) number (see whatsapp/pacing.py); no row: the defaults."""

    channel = models.OneToOneField("inbox.Channel", on_delete=models.CASCADE, related_name="qr_pacing")
    min_delay_s = models.PositiveIntegerField(_("shortest pause between messages (seconds)"), default=25)
    max_delay_s = models.PositiveIntegerField(_("longest pause between messages (seconds)"), default=75)
    batch_size = models.PositiveIntegerField(_("messages per batch"), default=30)
    batch_pause_min_s = models.PositiveIntegerField(_("shortest rest after a batch (seconds)"), default=600)
    batch_pause_max_s = models.PositiveIntegerField(_("longest rest after a batch (seconds)"), default=1200)
    daily_cap = models.PositiveIntegerField(_("messages per day, once warmed up"), default=200)
    warmup_start = models.PositiveIntegerField(_("messages on the number's first day"), default=20)
    warmup_days = models.PositiveIntegerField(_("days to reach the daily limit"), default=14)
    stop_failure_rate = models.DecimalField(
        _("stop when this share of the last sends failed"), max_digits=4, decimal_places=3, default=Decimal("0.150")
    )
    stop_unanswered_rate = models.DecimalField(
        _("stop when this share of the last sends got no reply"),
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.970"),
    )
    stop_window = models.PositiveIntegerField(_("sends judged for the automatic stop"), default=50)
    reply_wait_s = models.PositiveIntegerField(
        _("wait for a reply before counting a send unanswered (seconds)"), default=21600
    )
    judged_since = models.DateTimeField(null=True, blank=True)  # set on resume: older sends are not judged again
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(min_delay_s__gt=0, batch_pause_min_s__gt=0, batch_size__gt=0, warmup_start__gt=0),
                name="qr_pacing_positive",
                violation_error_message=_("Pauses, batch size and the first day's messages must be above zero."),
            ),
            models.CheckConstraint(
                condition=models.Q(max_delay_s__gte=models.F("min_delay_s")),
                name="qr_pacing_delay_range",
                violation_error_message=_("The longest pause between messages cannot be shorter than the shortest."),
            ),
            models.CheckConstraint(
                condition=models.Q(batch_pause_max_s__gte=models.F("batch_pause_min_s")),
                name="qr_pacing_batch_pause_range",
                violation_error_message=_("The longest rest after a batch cannot be shorter than the shortest."),
            ),
            models.CheckConstraint(
                condition=models.Q(warmup_start__lte=models.F("daily_cap")),
                name="qr_pacing_warmup_within_cap",
                violation_error_message=_("The first day's messages cannot exceed the daily limit."),
            ),
            models.CheckConstraint(
                condition=models.Q(stop_failure_rate__gt=0, stop_failure_rate__lte=1)
                & models.Q(stop_unanswered_rate__gt=0, stop_unanswered_rate__lte=1),
                name="qr_pacing_rates_are_shares",
                violation_error_message=_("The stop thresholds are shares between 0 and 1, such as 0.15."),
            ),
        ]

    def __str__(self) -> str:
        return f"pacing of channel {self.channel_id}"
