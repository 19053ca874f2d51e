"""Outreach the business starts: broadcasts to an audience (campaigns) and timed sequences per contact
(cadences). Both send through the inbox's one send service, so rate limits, retries, consent and
delivery ticks are the same as for a reply typed by an agent."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext, ngettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from crm.models import Contact
from inbox.models import Channel, Message


class ContentKind(models.TextChoices):
    TEXT = "text", _("Text")
    TEMPLATE = "template", _("WhatsApp template")


class OutreachContent(models.Model):
    """What is sent: a text with {{placeholders}}, or an approved WhatsApp template with its variables."""

    kind = models.CharField(_("message type"), max_length=10, choices=ContentKind.choices, default=ContentKind.TEXT)
    body = models.TextField(_("text"), blank=True)
    template_name = models.CharField(_("template"), max_length=512, blank=True)
    template_language = models.CharField(_("template language"), max_length=15, blank=True)
    template_variables = models.JSONField(_("template variables"), default=list, blank=True)

    class Meta:
        abstract = True


class QuietHours(models.Model):
    """When automated sends wait (one row per tenant, in the tenant's timezone). Replies typed by agents
    are never held back."""

    enabled = models.BooleanField(_("hold automated sends during quiet hours"), default=True)
    start = models.TimeField(_("quiet from"), default=datetime.time(21, 0))
    end = models.TimeField(_("quiet until"), default=datetime.time(8, 0))
    quiet_sundays = models.BooleanField(_("quiet all day on Sundays"), default=True)

    def __str__(self) -> str:
        return f"quiet {self.start}-{self.end}"

    @classmethod
    def current(cls) -> QuietHours:
        row, _created = cls.objects.get_or_create(pk=1)
        return row


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SCHEDULED = "scheduled", _("Scheduled")
    RUNNING = "running", _("Sending")
    PAUSED = "paused", _("Paused")
    COMPLETED = "completed", _("Completed")
    CANCELED = "canceled", _("Canceled")


class Campaign(OutreachContent):
    """A broadcast: one message to every contact of an audience, once each."""

    name = models.CharField(_("name"), max_length=120)
    channel = models.ForeignKey(Channel, verbose_name=_("channel"), on_delete=models.PROTECT, related_name="+")
    audience = models.JSONField(_("audience"), default=dict, blank=True)  # a crm filter spec
    status = models.CharField(max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    scheduled_at = models.DateTimeField(_("send at"), null=True, blank=True)
    respect_quiet_hours = models.BooleanField(_("respect quiet hours"), default=True)
    total_recipients = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")

    def __str__(self) -> str:
        return self.name


class RecipientStatus(models.TextChoices):
    PENDING = "pending", _("Waiting")
    QUEUED = "queued", _("Handed to the channel")
    SKIPPED = "skipped", _("Skipped")
    FAILED = "failed", _("Failed")


class CampaignRecipient(models.Model):
    """One contact of a campaign's audience, fixed at launch. Unique per campaign: nobody gets it twice."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="recipients")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=RecipientStatus.choices, default=RecipientStatus.PENDING)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=300, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "contact"], name="recipient_once_per_campaign")]
        indexes = [
            models.Index(fields=["campaign", "id"], name="recipient_pending", condition=Q(status="pending")),
            models.Index(fields=["contact"], name="recipient_by_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.contact_id} {self.status}"


class Cadence(models.Model):
    """A drip sequence: steps sent one after another, each after its delay, until the contact replies,
    opts out or the steps run out."""

    name = models.CharField(_("name"), max_length=120)
    channel = models.ForeignKey(Channel, verbose_name=_("channel"), on_delete=models.PROTECT, related_name="+")
    is_active = models.BooleanField(_("active"), default=True)
    stop_on_reply = models.BooleanField(_("stop when the contact replies"), default=True)
    respect_quiet_hours = models.BooleanField(_("respect quiet hours"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("cadence")
        verbose_name_plural = _("cadences")

    def __str__(self) -> str:
        return self.name


class CadenceStep(OutreachContent):
    cadence = models.ForeignKey(Cadence, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    delay_minutes = models.PositiveIntegerField(_("wait (minutes) before this step"), default=0)

    class Meta:
        ordering = ["cadence", "position"]
        constraints = [models.UniqueConstraint(fields=["cadence", "position"], name="cadence_step_position")]

    def __str__(self) -> str:
        return f"{self.cadence_id}#{self.position}"

    @property
    def wait_display(self) -> str:
        minutes = self.delay_minutes
        if not minutes:
            return gettext("right away")
        if minutes % 1440 == 0:
            return ngettext("after %(n)d day", "after %(n)d days", minutes // 1440) % {"n": minutes // 1440}
        if minutes % 60 == 0:
            return ngettext("after %(n)d hour", "after %(n)d hours", minutes // 60) % {"n": minutes // 60}
        return ngettext("after %(n)d minute", "after %(n)d minutes", minutes) % {"n": minutes}


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "active", pgettext_lazy("enrollment status", "Active")
    COMPLETED = "completed", pgettext_lazy("enrollment status", "Completed")
    STOPPED = "stopped", pgettext_lazy("enrollment status", "Stopped")
    FAILED = "failed", pgettext_lazy("enrollment status", "Failed")


class Enrollment(models.Model):
    """A contact going through a cadence. At most one active enrollment per contact and cadence."""

    cadence = models.ForeignKey(Cadence, on_delete=models.CASCADE, related_name="enrollments")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=EnrollmentStatus.choices, default=EnrollmentStatus.ACTIVE)
    next_position = models.PositiveSmallIntegerField(default=0)  # the step to send next
    next_run_at = models.DateTimeField(null=True, blank=True)
    steps_sent = models.PositiveSmallIntegerField(default=0)
    reason = models.CharField(max_length=300, blank=True)  # why it stopped or failed
    enrolled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["cadence", "contact"], name="enrollment_one_active", condition=Q(status="active")
            )
        ]
        indexes = [
            models.Index(fields=["next_run_at"], name="enrollment_due", condition=Q(status="active")),
            models.Index(fields=["contact", "status"], name="enrollment_by_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.cadence_id}:{self.contact_id} {self.status}"
