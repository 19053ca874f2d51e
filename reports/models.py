"""A tenant's scheduled summary: its settings (one row) and the log of every report sent, one row per
period and medium, which is what makes a second tick or a retried task send nothing."""

from __future__ import annotations

from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Frequency(models.TextChoices):
    OFF = "off", _("Off")
    DAILY = "daily", _("Daily")
    WEEKLY = "weekly", _("Weekly")


class Weekday(models.IntegerChoices):
    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class ReportSettings(models.Model):
    """One row per tenant schema: when the summary goes out and where to."""

    frequency = models.CharField(_("frequency"), max_length=10, choices=Frequency.choices, default=Frequency.OFF)
    weekday = models.PositiveSmallIntegerField(_("weekday"), choices=Weekday.choices, default=Weekday.MONDAY)
    hour = models.PositiveSmallIntegerField(_("hour of day"), default=8, validators=[MaxValueValidator(23)])
    email_enabled = models.BooleanField(_("email the owners"), default=True)
    whatsapp_number = models.CharField(_("WhatsApp number"), max_length=20, blank=True)
    whatsapp_channel = models.ForeignKey(
        "inbox.Channel", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # outside the 24-hour window a WhatsApp Cloud API number may only send an approved template: this one,
    # {{1}} the period and {{2}} the numbers on one line
    whatsapp_template = models.ForeignKey(
        "whatsapp.MessageTemplate",
        verbose_name=_("template outside the 24-hour window"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.frequency} at {self.hour:02d}:00"


class Medium(models.TextChoices):
    EMAIL = "email", _("Email")
    WHATSAPP = "whatsapp", _("WhatsApp")


class RunStatus(models.TextChoices):
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    SKIPPED = "skipped", _("Skipped")
    FAILED = "failed", _("Failed")


class ReportRun(models.Model):
    """One report of one period through one medium. Scheduled runs are unique on (frequency, period
    start, medium): the row is the claim, made before sending, so a second tick sends nothing. A claim
    still "sending" after STALE (its worker died) is taken over by the next tick, up to MAX_ATTEMPTS: the
    WhatsApp copy keeps its idempotency key (sent once), an email may go twice rather than never. Test
    runs (the settings page's button) are not limited."""

    STALE_MINUTES = 10
    MAX_ATTEMPTS = 3

    frequency = models.CharField(max_length=10, choices=Frequency.choices)
    period_start = models.DateField()
    period_end = models.DateField()
    medium = models.CharField(max_length=10, choices=Medium.choices)
    is_test = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.SENDING)
    detail = models.CharField(max_length=300, blank=True)
    message_id = models.BigIntegerField(null=True, blank=True)  # the WhatsApp copy in the inbox
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(default=timezone.now)  # when a worker last took it
    attempts = models.PositiveSmallIntegerField(default=1)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["frequency", "period_start", "medium"],
                condition=models.Q(is_test=False),
                name="report_run_once_per_period",
            )
        ]

    def __str__(self) -> str:
        return f"{self.frequency} {self.period_start} {self.medium}: {self.status}"
