"""Automation rules (WHEN an event, IF conditions, THEN actions), the events waiting for them and the
log of every run."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Trigger(models.TextChoices):
    MESSAGE_RECEIVED = "message_received", _("A message is received")
    KEYWORD = "keyword", _("A message has a keyword")
    CONVERSATION_CREATED = "conversation_created", _("A conversation is created")
    CONVERSATION_RESOLVED = "conversation_resolved", _("A conversation is resolved")
    TAG_ADDED = "tag_added", _("A tag is added")
    STAGE_ENTERED = "stage_entered", _("A lead enters a stage")
    STAGE_LEFT = "stage_left", _("A lead leaves a stage")
    LEAD_WON = "lead_won", _("A lead is won")
    LEAD_LOST = "lead_lost", _("A lead is lost")
    CAMPAIGN_REPLIED = "campaign_replied", _("A campaign is replied to")
    CALL_ENDED = "call_ended", _("A call ends")
    INBOUND_WEBHOOK = "inbound_webhook", _("An inbound webhook is received")


class Match(models.TextChoices):
    ALL = "all", _("all conditions")
    ANY = "any", _("any condition")


class Rule(models.Model):
    name = models.CharField(_("name"), max_length=120)
    enabled = models.BooleanField(_("enabled"), default=True)
    trigger = models.CharField(_("when"), max_length=32, choices=Trigger.choices)
    # what narrows the trigger: {"keywords": [...]} / {"tag_id": n} / {"stage_id": n} / {"hook_id": n} ...
    trigger_config = models.JSONField(default=dict, blank=True)
    match = models.CharField(_("match"), max_length=3, choices=Match.choices, default=Match.ALL)
    conditions = models.JSONField(default=list, blank=True)  # [{"kind": ..., ...}]
    actions = models.JSONField(default=list)  # [{"type": ..., ...}]
    max_runs_per_hour = models.PositiveIntegerField(_("runs per contact per hour, at most"), default=5)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("automation rule")
        verbose_name_plural = _("automation rules")

    def __str__(self) -> str:
        return self.name


class RuleEventStatus(models.TextChoices):
    PENDING = "pending", _("Waiting")
    DONE = "done", _("Done")


class RuleEvent(models.Model):
    """A domain event some enabled rule listens to, kept until a worker has run the rules on it. `depth`
    and `chain` are the cause it carried: how many rule runs led to it, and which rules."""

    kind = models.CharField(max_length=32)  # the Trigger kind it feeds (keyword rules read message_received)
    payload = models.JSONField()
    contact_id = models.BigIntegerField(null=True, blank=True)
    depth = models.PositiveIntegerField(default=0)
    chain = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=RuleEventStatus.choices, default=RuleEventStatus.PENDING)
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["id"], name="rule_event_pending", condition=models.Q(status="pending"))]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk}"


class RunOutcome(models.TextChoices):
    NOT_MATCHED = "not_matched", _("Conditions not met")
    DONE = "done", _("Actions done")
    PARTIAL = "partial", _("Some actions failed")
    FAILED = "failed", _("Failed")
    STOPPED_LOOP = "stopped_loop", _("Stopped: the rule would trigger itself")
    STOPPED_DEPTH = "stopped_depth", _("Stopped: too many rules in a chain")
    STOPPED_RATE = "stopped_rate", _("Stopped: ran too often for this contact")


class RuleRun(models.Model):
    """One rule on one event: whether it matched, what each action did, and errors. Unique per (rule,
    event), so an event processed twice runs no rule twice."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="runs")
    event = models.ForeignKey(RuleEvent, on_delete=models.SET_NULL, null=True, related_name="runs")
    kind = models.CharField(max_length=32)
    contact_id = models.BigIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=RunOutcome.choices)
    conditions = models.JSONField(default=list)  # [{"kind":..., "ok": bool}]
    actions_done = models.JSONField(default=list)  # [{"type":..., "ok": bool, "detail": str}]
    error = models.CharField(max_length=500, blank=True)
    depth = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["rule", "event"], name="rule_run_once_per_event")]
        indexes = [models.Index(fields=["rule", "contact_id", "-created_at"], name="rule_run_by_contact")]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.outcome}"
