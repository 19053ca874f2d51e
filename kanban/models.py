from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from crm.models import Contact, Tag

# Ranks are fractional keys (base 62) compared byte by byte, never by locale rules.
RANK = {"max_length": 255, "db_collation": "C"}


class Board(models.Model):
    """A sales pipeline."""

    name = models.CharField(_("name"), max_length=80)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("board")
        verbose_name_plural = _("boards")

    def __str__(self) -> str:
        return self.name


class StageKind(models.TextChoices):
    OPEN = "open", pgettext_lazy("stage kind", "Open")
    WON = "won", pgettext_lazy("stage kind", "Won")
    LOST = "lost", pgettext_lazy("stage kind", "Lost")


class StageMeaning(models.TextChoices):
    NONE = "", _("—")
    NEW_LEAD = "new_lead", _("New lead")
    CONTACTED = "contacted", _("Contacted")
    MEETING_SCHEDULED = "meeting_scheduled", _("Meeting scheduled")
    PROPOSAL_SENT = "proposal_sent", _("Proposal sent")
    NEGOTIATION = "negotiation", _("Negotiation")


class Stage(models.Model):
    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(_("name"), max_length=60)
    color = models.CharField(_("color"), max_length=7, default="#64748b")
    kind = models.CharField(_("kind"), max_length=5, choices=StageKind.choices, default=StageKind.OPEN)
    meaning = models.CharField(_("meaning"), max_length=20, choices=StageMeaning.choices, default="", blank=True)
    rank = models.CharField(**RANK)  # type: ignore[arg-type]

    class Meta:
        ordering = ["rank"]
        constraints = [
            models.UniqueConstraint(
                fields=["board", "rank"], name="stage_rank_unique", deferrable=models.Deferrable.DEFERRED
            )
        ]

    def __str__(self) -> str:
        return self.name


class Card(models.Model):
    """A lead on a board."""

    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="cards")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="cards")
    rank = models.CharField(**RANK)  # type: ignore[arg-type]
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="cards")
    title = models.CharField(_("title"), max_length=120)
    value = models.DecimalField(_("value"), max_digits=12, decimal_places=2, default=Decimal("0"))
    currency = models.CharField(_("currency"), max_length=3, default="BRL")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="cards")
    next_action_at = models.DateField(_("next action"), null=True, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    source = models.CharField(_("source"), max_length=60, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rank"]
        # No two cards share a position; checked at commit, so a rebalance can rewrite a stage in one go.
        constraints = [
            models.UniqueConstraint(
                fields=["stage", "rank"], name="card_rank_unique", deferrable=models.Deferrable.DEFERRED
            )
        ]

    def __str__(self) -> str:
        return self.title


class ActorKind(models.TextChoices):
    PERSON = "person", _("Person")
    AI = "ai", _("AI")
    AUTOMATION = "automation", _("Automation")
    API = "api", _("API")


class CardMove(models.Model):
    """Every move of a card: who or what moved it, from where, to where, when and why."""

    card = models.ForeignKey(Card, on_delete=models.CASCADE, related_name="moves")
    from_stage = models.ForeignKey(Stage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to_stage = models.ForeignKey(Stage, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_kind = models.CharField(max_length=10, choices=ActorKind.choices, default=ActorKind.PERSON)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.card_id}: {self.from_stage_id} -> {self.to_stage_id}"
