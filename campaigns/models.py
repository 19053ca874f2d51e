"""Outreach the business starts: broadcasts to an audience (campaigns) and timed sequences per contact
(cadences). Both send through the inbox's one send service, so rate limits, retries, consent and
delivery ticks are the same as for a reply typed by an agent."""

from __future__ import annotations

import datetime
import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext, ngettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from crm.models import Contact
from inbox.models import Channel, Message


class ContentKind(models.TextChoices):
    TEXT = "text", _("Text")
    TEMPLATE = "template", _("WhatsApp template")
    MEDIA = "media", _("Media with caption")


class MediaKind(models.TextChoices):
    IMAGE = "image", _("Image")
    DOCUMENT = "document", _("Document")
    VIDEO = "video", _("Video")
    AUDIO = "audio", _("Audio")


class CapOverflow(models.TextChoices):
    """What happens to recipients past a daily cap. Deferring is the default (as the bulk senders that
    protect numbers do): the cap exists to pace the number, not to shrink the audience."""

    DEFER = "defer", _("Send the rest the next day")
    SKIP = "skip", _("Skip the rest (daily cap reached)")


class OutreachContent(models.Model):
    """What is sent: a text with {{placeholders}}, or an approved WhatsApp template with its variables."""

    kind = models.CharField(_("message type"), max_length=10, choices=ContentKind.choices, default=ContentKind.TEXT)
    body = models.TextField(_("text"), blank=True)
    template_name = models.CharField(_("template"), max_length=512, blank=True)
    template_language = models.CharField(_("template language"), max_length=15, blank=True)
    template_variables = models.JSONField(_("template variables"), default=list, blank=True)

    class Meta:
        abstract = True


def weekdays() -> list[int]:
    return [0, 1, 2, 3, 4]


class QuietHours(models.Model):
    """When automated sends wait (one row per tenant, in the tenant's timezone). Replies typed by agents
    are never held back."""

    enabled = models.BooleanField(_("hold automated sends during quiet hours"), default=True)
    start = models.TimeField(_("quiet from"), default=datetime.time(21, 0))
    end = models.TimeField(_("quiet until"), default=datetime.time(8, 0))
    quiet_sundays = models.BooleanField(_("quiet all day on Sundays"), default=True)
    # the days a cadence's "next business day at 10:00" counts (0 = Monday), in the tenant's timezone
    business_days = ArrayField(models.PositiveSmallIntegerField(), default=weekdays, blank=True)

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
    # content beyond the shared OutreachContent: media by link, template header and button variables
    media_kind = models.CharField(_("media type"), max_length=10, choices=MediaKind.choices, blank=True)
    media_url = models.URLField(_("media link"), max_length=1000, blank=True)
    template_header_variables = models.JSONField(_("template header variables"), default=list, blank=True)
    template_button_variables = models.JSONField(_("template button variables"), default=list, blank=True)
    # what the audience form found: duplicate and invalid phones of a pasted list, the import of a file
    audience_report = models.JSONField(default=dict, blank=True)
    # rails
    daily_cap = models.PositiveIntegerField(_("daily cap for this campaign"), null=True, blank=True)
    cap_overflow = models.CharField(
        _("past the daily cap"), max_length=5, choices=CapOverflow.choices, default=CapOverflow.DEFER
    )
    failure_window = models.PositiveSmallIntegerField(_("auto-pause: look at the last N sends"), default=50)
    failure_threshold = models.PositiveSmallIntegerField(_("auto-pause when failures pass (%)"), default=20)
    dedupe_hours = models.PositiveSmallIntegerField(_("skip the same message sent within (hours)"), default=24)
    pause_reason = models.CharField(max_length=300, blank=True)
    hold_until = models.DateTimeField(null=True, blank=True)  # waiting for a daily cap to reset
    hold_reason = models.CharField(max_length=200, blank=True)
    duplicated_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
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
    """One recipient's state, the one source of the campaign's counts (see RECIPIENT_RANK)."""

    PENDING = "pending", _("Waiting")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    READ = "read", _("Read")
    REPLIED = "replied", _("Replied")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")
    UNKNOWN = "unknown", _("Outcome unknown")


# States only move forward along this rank; failed, skipped and unknown leave only as the provider says
# (a delivery receipt for a message whose answer was lost turns `unknown` into `delivered`).
RECIPIENT_RANK = {
    RecipientStatus.PENDING: 0,
    RecipientStatus.SENDING: 1,
    RecipientStatus.UNKNOWN: 2,
    RecipientStatus.SENT: 3,
    RecipientStatus.DELIVERED: 4,
    RecipientStatus.READ: 5,
    RecipientStatus.REPLIED: 6,
}
FINAL_RECIPIENT = frozenset({RecipientStatus.FAILED, RecipientStatus.SKIPPED})


class CampaignRecipient(models.Model):
    """One contact of a campaign's audience, fixed at launch. Unique per campaign: nobody gets it twice."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="recipients")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=RecipientStatus.choices, default=RecipientStatus.PENDING)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=300, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    round = models.PositiveSmallIntegerField(default=0)  # 1, 2… after "retry the failed ones"

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "contact"], name="recipient_once_per_campaign")]
        indexes = [
            models.Index(fields=["campaign", "id"], name="recipient_pending", condition=Q(status="pending")),
            models.Index(fields=["contact"], name="recipient_by_contact"),
            models.Index(fields=["message"], name="recipient_by_message", condition=Q(message__isnull=False)),
            models.Index(fields=["campaign", "status"], name="recipient_by_state"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.contact_id} {self.status}"


class ChannelDailyCap(models.Model):
    """How many automated (campaign) messages a channel may send per day, in the tenant's timezone."""

    channel = models.OneToOneField(Channel, on_delete=models.CASCADE, related_name="+")
    daily_cap = models.PositiveIntegerField(_("daily cap"))

    def __str__(self) -> str:
        return f"{self.channel_id}: {self.daily_cap}/day"


class Cadence(models.Model):
    """A drip sequence: steps one after another (each on its own channel, a message or an AI call), each on
    its timing, until the steps run out or the contact leaves (a reply, an opt-out, a stage change, a won
    or lost lead, the goal stage, a person). The cadence's channel is the default of its message steps."""

    name = models.CharField(_("name"), max_length=120)
    channel = models.ForeignKey(Channel, verbose_name=_("channel"), on_delete=models.PROTECT, related_name="+")
    is_active = models.BooleanField(_("active"), default=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    stop_on_reply = models.BooleanField(_("stop when the contact replies"), default=True)
    respect_quiet_hours = models.BooleanField(_("respect quiet hours"), default=True)
    exit_on_stage_change = models.BooleanField(_("stop when the lead changes stage"), default=False)
    exit_on_won_lost = models.BooleanField(_("stop when the lead is won or lost"), default=True)
    goal_stage = models.ForeignKey(
        "kanban.Stage",
        verbose_name=_("goal stage (stop when the lead reaches it)"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    enroll_inactive_days = models.PositiveSmallIntegerField(
        _("start for contacts inactive for (days)"), null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("cadence")
        verbose_name_plural = _("cadences")

    def __str__(self) -> str:
        return self.name


class StepAction(models.TextChoices):
    MESSAGE = "message", _("Send a message")
    CALL = "call", _("AI voice call")


class StepTiming(models.TextChoices):
    DELAY = "delay", _("After a wait")
    BUSINESS_DAY = "business_day", _("On a business day at a time")


class CadenceStep(OutreachContent):
    """One step. Its `key` is its identity: enrollments point at it and its runs are keyed by it, so
    reordering, inserting or removing steps never shifts anyone. `position` is only the order. A removed
    step keeps its row (and its numbers) with `removed_at` set."""

    cadence = models.ForeignKey(Cadence, on_delete=models.CASCADE, related_name="steps")
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    position = models.PositiveSmallIntegerField()
    action = models.CharField(_("step"), max_length=10, choices=StepAction.choices, default=StepAction.MESSAGE)
    step_channel = models.ForeignKey(
        Channel,
        verbose_name=_("channel"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )  # empty: the cadence's channel
    call_agent = models.CharField(_("voice agent"), max_length=64, blank=True)  # an id from CADENCE_CALL_AGENTS
    timing = models.CharField(_("timing"), max_length=12, choices=StepTiming.choices, default=StepTiming.DELAY)
    delay_minutes = models.PositiveIntegerField(_("wait (minutes) before this step"), default=0)
    business_days = models.PositiveSmallIntegerField(_("business days later"), default=1)
    at_time = models.TimeField(_("at"), null=True, blank=True)
    only_if_no_reply = models.BooleanField(_("only if the contact has not replied"), default=False)
    only_in_stage = models.ForeignKey(
        "kanban.Stage",
        verbose_name=_("only if the lead is still in stage"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    only_business_days = models.BooleanField(_("only on business days"), default=False)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["cadence", "position", "id"]
        indexes = [models.Index(fields=["cadence", "position"], name="cadence_step_order")]

    def __str__(self) -> str:
        return f"{self.cadence_id}#{self.position}"

    @property
    def wait_display(self) -> str:
        if self.timing == StepTiming.BUSINESS_DAY:
            at = self.at_time.strftime("%H:%M") if self.at_time else "09:00"
            return ngettext(
                "the next business day at %(at)s", "%(n)d business days later at %(at)s", self.business_days
            ) % {"n": self.business_days, "at": at}
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
    PAUSED = "paused", pgettext_lazy("enrollment status", "Paused")
    COMPLETED = "completed", pgettext_lazy("enrollment status", "Completed")
    STOPPED = "stopped", pgettext_lazy("enrollment status", "Stopped")
    FAILED = "failed", pgettext_lazy("enrollment status", "Failed")


class ExitReason(models.TextChoices):
    """Why a contact left a cadence before its end: a code, counted and reported (words come from here)."""

    REPLIED = "replied", _("Replied")
    STAGE_CHANGED = "stage_changed", _("Lead changed stage")
    OPTED_OUT = "opted_out", _("Opted out")
    WON = "won", _("Lead won")
    LOST = "lost", _("Lead lost")
    GOAL_REACHED = "goal_reached", _("Goal stage reached")
    MANUAL = "manual", _("Stopped by a person")
    FAILED = "failed", _("A step could not be sent")
    OTHER = "other", _("Other")


class Enrollment(models.Model):
    """A contact going through a cadence. At most one active (or paused) enrollment per contact and
    cadence. `next_step` is the step to run next, by identity."""

    cadence = models.ForeignKey(Cadence, on_delete=models.CASCADE, related_name="enrollments")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=EnrollmentStatus.choices, default=EnrollmentStatus.ACTIVE)
    next_step = models.ForeignKey(CadenceStep, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_step = models.ForeignKey(CadenceStep, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    next_run_at = models.DateTimeField(null=True, blank=True)
    steps_sent = models.PositiveSmallIntegerField(default=0)
    exit_reason = models.CharField(max_length=16, choices=ExitReason.choices, blank=True)
    exit_detail = models.CharField(max_length=300, blank=True)  # extra context (who stopped it, the error)
    enrolled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["cadence", "contact"],
                name="enrollment_one_active",
                condition=Q(status__in=["active", "paused"]),
            )
        ]
        indexes = [
            models.Index(fields=["next_run_at"], name="enrollment_due", condition=Q(status="active")),
            models.Index(fields=["contact", "status"], name="enrollment_by_contact"),
            models.Index(fields=["cadence", "status"], name="enrollment_by_state"),
        ]

    def __str__(self) -> str:
        return f"{self.cadence_id}:{self.contact_id} {self.status}"

    @property
    def reason(self) -> str:
        """What the pages show: the exit's words, then its detail."""
        label = str(self.get_exit_reason_display()) if self.exit_reason else ""
        return " · ".join(filter(None, [label, self.exit_detail]))


class StepRunStatus(models.TextChoices):
    QUEUED = "queued", _("Handed to the sender")
    PLACED = "placed", _("Call placed")
    SKIPPED = "skipped", _("Skipped")
    FAILED = "failed", _("Failed")


class StepRunCode(models.TextChoices):
    """Why a step was skipped or failed."""

    NONE = "", "—"
    REPLIED = "replied", _("The contact had replied")
    NOT_IN_STAGE = "not_in_stage", _("The lead was no longer in the stage")
    DUPLICATE = "duplicate", _("The same message was sent recently")
    OPTED_OUT = "opted_out", _("Opted out")
    WINDOW_CLOSED = "window_closed", _("The 24-hour window was closed")
    NO_ADDRESS = "no_address", _("No address on this channel")
    UNSUPPORTED = "unsupported", _("Not supported by the channel")
    VOICE_UNAVAILABLE = "voice_unavailable", _("No voice agent can place the call")
    NO_AGENT = "no_agent", _("No voice agent chosen")
    MIGRATED = "migrated", _("Ran before the upgrade")


class StepRun(models.Model):
    """One (enrollment, step) that ran: unique, so each runs exactly once whatever the beats and restarts
    (the tick inserts these rows with ON CONFLICT DO NOTHING and acts only on the rows it inserted)."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="runs")
    step = models.ForeignKey(CadenceStep, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=10, choices=StepRunStatus.choices, default=StepRunStatus.QUEUED)
    code = models.CharField(max_length=20, choices=StepRunCode.choices, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    call_id = models.CharField(max_length=64, blank=True)
    ran_at = models.DateTimeField()
    replied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["enrollment", "step"], name="step_run_once")]
        indexes = [models.Index(fields=["step", "status"], name="step_run_by_step")]

    def __str__(self) -> str:
        return f"{self.enrollment_id}/{self.step_id} {self.status}"
