"""Rollups: small tables the dashboard reads instead of the raw messages, calls and moves.

Every row is one UTC hour of one combination of dimensions. An hour is rebuilt as a whole from the raw
rows of that hour (analytics.rollups), so applying the same events twice, or out of order, ends in the
same numbers. Dimension columns are plain integers, not foreign keys: a rollup outlives the channel or
campaign it counts, and writing it takes no lock on them.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from tenants.models import Tenant


class MessageHour(models.Model):
    """Messages created in the hour, per channel, campaign or cadence, and author (agent)."""

    hour = models.DateTimeField()
    channel_id = models.IntegerField()
    campaign_id = models.IntegerField(null=True)
    cadence_id = models.IntegerField(null=True)
    agent_id = models.IntegerField(null=True)  # who wrote an outbound message (None: campaigns, bots, system)
    inbound = models.PositiveIntegerField(default=0)
    outbound = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)  # outbound that left (sent, delivered or read)
    delivered = models.PositiveIntegerField(default=0)
    read = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["hour"], name="analytics_msghour_hour")]
        verbose_name = _("message rollup")

    def __str__(self) -> str:
        return f"messages {self.hour:%Y-%m-%d %H}h channel {self.channel_id}"


class ConversationHour(models.Model):
    """Conversations opened (created) and resolved in the hour, per channel and assignee."""

    hour = models.DateTimeField()
    channel_id = models.IntegerField()
    agent_id = models.IntegerField(null=True)
    opened = models.PositiveIntegerField(default=0)
    resolved = models.PositiveIntegerField(default=0)
    contained = models.PositiveIntegerField(default=0)  # of the resolved: by the assistant, no person involved

    class Meta:
        indexes = [models.Index(fields=["hour"], name="analytics_convhour_hour")]

    def __str__(self) -> str:
        return f"conversations {self.hour:%Y-%m-%d %H}h channel {self.channel_id}"


class Resolution(models.Model):
    """A conversation marked resolved (the inbox keeps only the current status): who held it, when."""

    conversation_id = models.BigIntegerField()
    channel_id = models.IntegerField()
    agent_id = models.IntegerField(null=True)
    resolved_at = models.DateTimeField()
    # The assistant answered and no person did: no reply written by a member, never handed off.
    contained = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["resolved_at"], name="analytics_resolution_at")]

    def __str__(self) -> str:
        return f"conversation {self.conversation_id} resolved {self.resolved_at:%Y-%m-%d %H:%M}"


class ResponseSample(models.Model):
    """One answer by a team member: from the customer's first unanswered message to the reply.
    One row per reply that ended a wait (far fewer than messages); the median is read from here."""

    reply_id = models.BigIntegerField(unique=True)  # the outbound message that answered
    conversation_id = models.BigIntegerField()
    hour = models.DateTimeField()  # of the reply
    channel_id = models.IntegerField()
    agent_id = models.IntegerField()
    seconds = models.PositiveIntegerField()
    is_first = models.BooleanField()  # the first answer the conversation ever got

    class Meta:
        indexes = [models.Index(fields=["hour"], name="analytics_response_hour")]

    def __str__(self) -> str:
        return f"reply {self.reply_id}: {self.seconds}s"


class ResponseDay(models.Model):
    """Answers of a day (the tenant's day), per channel and agent, as a histogram of waits: the
    dashboard reads medians and averages from here. Buckets are exact below 20 s, then about 5% wide
    (analytics.rollups.RESPONSE_BUCKETS)."""

    day = models.DateField()
    channel_id = models.IntegerField()
    agent_id = models.IntegerField()
    is_first = models.BooleanField()
    bucket = models.PositiveIntegerField()  # the bucket's lower bound, in seconds
    responses = models.PositiveIntegerField(default=0)
    seconds_sum = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["day"], name="analytics_responseday_day")]

    def __str__(self) -> str:
        return f"responses {self.day} agent {self.agent_id}: {self.responses} at {self.bucket}s"


class CallHour(models.Model):
    """Calls created in the hour, per voice agent, direction and outcome."""

    hour = models.DateTimeField()
    agent_id = models.IntegerField(null=True)  # the voice agent
    direction = models.CharField(max_length=3)
    status = models.CharField(max_length=16)
    outcome = models.CharField(max_length=60)  # the disconnection reason
    calls = models.PositiveIntegerField(default=0)
    answered = models.PositiveIntegerField(default=0)  # ended with a duration
    duration_ms = models.BigIntegerField(default=0)
    positive = models.PositiveIntegerField(default=0)
    negative = models.PositiveIntegerField(default=0)
    successful = models.PositiveIntegerField(default=0)  # Retell's analysis said the call reached its goal
    cost_cents = models.DecimalField(max_digits=14, decimal_places=3, default=0)  # Retell's combined cost (USD)

    class Meta:
        indexes = [models.Index(fields=["hour"], name="analytics_callhour_hour")]

    def __str__(self) -> str:
        return f"calls {self.hour:%Y-%m-%d %H}h"


class LeadMoveHour(models.Model):
    """Card moves in the hour, per board and stage pair (from None: the card was created there)."""

    hour = models.DateTimeField()
    board_id = models.IntegerField()
    from_stage_id = models.IntegerField(null=True)
    to_stage_id = models.IntegerField()
    moves = models.PositiveIntegerField(default=0)
    won = models.PositiveIntegerField(default=0)
    won_value = models.DecimalField(max_digits=14, decimal_places=2, default=0)

    class Meta:
        indexes = [models.Index(fields=["hour"], name="analytics_leadhour_hour")]

    def __str__(self) -> str:
        return f"moves {self.hour:%Y-%m-%d %H}h board {self.board_id}"


class OptOutHour(models.Model):
    """Contacts whose consent became an opt-out in the hour, per medium."""

    hour = models.DateTimeField()
    medium = models.CharField(max_length=10)
    opted_out = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["hour"], name="analytics_optouthour_hour")]

    def __str__(self) -> str:
        return f"opt-outs {self.hour:%Y-%m-%d %H}h {self.medium}"


class TenantUsage(Tenant):
    """The superadmin's read-only view of each tenant's usage (analytics.admin), over its rollups."""

    class Meta:
        proxy = True
        verbose_name = _("tenant usage")
        verbose_name_plural = _("tenant usage")
