"""Writes on boards, stages and cards. A move writes one card row (its stage and rank) and one history row.

Positions are fractional keys (the `fractional-indexing` package): a card dropped between two others gets
a key between theirs, so no other row changes. Moves into a stage are serialized by a row lock on the
stage, so two concurrent drops never compute the same key; the card itself is locked too, so two people
moving the same card end in one consistent state (the last one wins, both are in the history).
Stage and board locks are FOR NO KEY UPDATE: they serialize writers without blocking the foreign-key
checks of history rows that point at those stages (which would deadlock two crossing moves).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils.translation import gettext as _
from fractional_indexing import generate_key_between, generate_n_keys_between

from core import events
from kanban.models import ActorKind, Board, Card, CardMove, Stage, StageKind

MAX_RANK_LENGTH = 40  # longer keys get the stage rebalanced

DEFAULT_STAGES = [
    ("Novo lead", StageKind.OPEN, "new_lead", "#64748b"),
    ("Contato feito", StageKind.OPEN, "contacted", "#0ea5e9"),
    ("Reunião agendada", StageKind.OPEN, "meeting_scheduled", "#8b5cf6"),
    ("Proposta enviada", StageKind.OPEN, "proposal_sent", "#f59e0b"),
    ("Ganho", StageKind.WON, "", "#16a34a"),
    ("Perdido", StageKind.LOST, "", "#dc2626"),
]


def _schema() -> str:
    return str(getattr(connection, "schema_name", "public"))


def _changed(board_id: int, **extra: Any) -> None:
    events.announce(events.BOARD_CHANGED, _schema(), {"board_id": board_id, **extra})


@transaction.atomic
def board_create(*, name: str, with_default_stages: bool = True) -> Board:
    board = Board.objects.create(name=name)
    if with_default_stages:
        keys = generate_n_keys_between(None, None, len(DEFAULT_STAGES))
        Stage.objects.bulk_create(
            Stage(board=board, name=n, kind=k, meaning=m, color=c, rank=r)
            for (n, k, m, c), r in zip(DEFAULT_STAGES, keys, strict=True)
        )
    return board


@transaction.atomic
def stage_create(
    *, board: Board, name: str, kind: str = StageKind.OPEN, color: str = "#64748b", meaning: str = ""
) -> Stage:
    Board.objects.select_for_update(no_key=True).get(pk=board.pk)  # stages of a board are ordered one writer at a time
    last = Stage.objects.filter(board=board).order_by("-rank").values_list("rank", flat=True).first()
    stage = Stage.objects.create(
        board=board, name=name, kind=kind, color=color, meaning=meaning, rank=generate_key_between(last, None)
    )
    _changed(board.pk)
    return stage


def stage_update(*, stage: Stage, **changes: Any) -> Stage:
    for field in ("name", "kind", "color", "meaning"):
        if field in changes:
            setattr(stage, field, changes[field])
    stage.full_clean(exclude=["board", "rank"])
    stage.save()
    _changed(stage.board_id)
    return stage


@transaction.atomic
def stage_reorder(*, stage: Stage, after_id: int | None = None, before_id: int | None = None) -> Stage:
    Board.objects.select_for_update(no_key=True).get(pk=stage.board_id)
    siblings = Stage.objects.filter(board_id=stage.board_id).exclude(pk=stage.pk)
    stage.rank = _between(siblings, after_id, before_id)
    stage.save(update_fields=["rank"])
    _changed(stage.board_id)
    return stage


@transaction.atomic
def stage_delete(*, stage: Stage, move_cards_to: Stage | None = None) -> None:
    if stage.cards.exists():
        if move_cards_to is None or move_cards_to.pk == stage.pk or move_cards_to.board_id != stage.board_id:
            raise ValidationError(_("Move this stage's cards to another stage first."))
        for card_id in stage.cards.values_list("pk", flat=True):
            card_move(
                card_id=card_id, to_stage_id=move_cards_to.pk, actor_kind=ActorKind.PERSON, reason="stage deleted"
            )
    board_id = stage.board_id
    stage.delete()
    _changed(board_id)


def _between(siblings: Any, after_id: int | None, before_id: int | None) -> str:
    """A rank that sorts right after `after_id` (or right before `before_id`; at the end when neither)."""
    ordered = siblings.order_by("rank")
    if after_id:
        lower = ordered.filter(pk=after_id).values_list("rank", flat=True).first()
        if lower is None:
            raise ValidationError(_("That position is not in this column any more. Reload and try again."))
        upper = ordered.filter(rank__gt=lower).values_list("rank", flat=True).first()
    elif before_id:
        upper = ordered.filter(pk=before_id).values_list("rank", flat=True).first()
        if upper is None:
            raise ValidationError(_("That position is not in this column any more. Reload and try again."))
        lower = ordered.filter(rank__lt=upper).order_by("-rank").values_list("rank", flat=True).first()
    else:
        lower, upper = ordered.order_by("-rank").values_list("rank", flat=True).first(), None
    return str(generate_key_between(lower, upper))


def _rebalance(stage: Stage) -> None:
    """Even out a stage's keys when they grew long (many drops in the same gap). Rare; one stage only."""
    cards = list(Card.objects.filter(stage=stage).order_by("rank"))
    for card, key in zip(cards, generate_n_keys_between(None, None, len(cards)), strict=True):
        card.rank = key
    Card.objects.bulk_update(cards, ["rank"])


@transaction.atomic
def card_create(
    *, board: Board, stage: Stage, title: str, actor: Any = None, actor_kind: str = ActorKind.PERSON, **fields: Any
) -> Card:
    if stage.board_id != board.pk:
        raise ValidationError(_("That stage belongs to another board."))
    Stage.objects.select_for_update(no_key=True).get(pk=stage.pk)
    tags = fields.pop("tags", None)
    card = Card(
        board=board, stage=stage, title=title, rank=_between(Card.objects.filter(stage=stage), None, None), **fields
    )
    card.value = Decimal(card.value or 0)
    card.full_clean(exclude=["tags"])
    card.save()
    if tags is not None:
        card.tags.set(tags)
    CardMove.objects.create(
        card=card,
        from_stage=None,
        to_stage=stage,
        actor_kind=actor_kind,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        reason="created",
    )
    _announce_entered(card, None, stage, actor_kind, "created")
    return card


def card_update(*, card: Card, **changes: Any) -> Card:
    tags = changes.pop("tags", None)
    for field, value in changes.items():
        setattr(card, field, value)
    card.full_clean(exclude=["tags", "stage", "board", "rank"])
    card.save()
    if tags is not None:
        card.tags.set(tags)
    _changed(card.board_id, card_id=card.pk)
    return card


def card_delete(*, card: Card) -> None:
    board_id = card.board_id
    card.delete()
    _changed(board_id)


def card_move(
    *,
    card_id: int,
    to_stage_id: int,
    after_id: int | None = None,
    before_id: int | None = None,
    actor: Any = None,
    actor_kind: str = ActorKind.PERSON,
    reason: str = "",
) -> Card:
    """Put a card in a stage, right after `after_id` or right before `before_id` (else at the end)."""
    with transaction.atomic():
        to_stage = Stage.objects.select_for_update(no_key=True).get(pk=to_stage_id)
        # No join here: after waiting on a concurrent mover, PostgreSQL re-checks a joined row against the
        # new stage and would drop it. The card row alone, then its current stage.
        card = Card.objects.select_for_update().get(pk=card_id)
        if to_stage.board_id != card.board_id:
            raise ValidationError(_("That stage belongs to another board."))
        from_stage = Stage.objects.get(pk=card.stage_id)
        siblings = Card.objects.filter(stage=to_stage).exclude(pk=card.pk)
        rank = _between(siblings, after_id, before_id)
        if len(rank) > MAX_RANK_LENGTH:
            _rebalance(to_stage)
            rank = _between(siblings, after_id, before_id)
        card.stage, card.rank = to_stage, rank
        card.save(update_fields=["stage", "rank", "updated_at"])
        if from_stage.pk != to_stage.pk:
            CardMove.objects.create(
                card=card,
                from_stage=from_stage,
                to_stage=to_stage,
                actor_kind=actor_kind,
                actor=actor if getattr(actor, "is_authenticated", False) else None,
                reason=reason[:300],
            )
            _announce_entered(card, from_stage, to_stage, actor_kind, reason)
            _stage_moved_in_timeline(card, from_stage, to_stage, actor)
        else:
            _changed(card.board_id, card_id=card.pk)
    return card


def _stage_moved_in_timeline(card: Card, from_stage: Stage, to_stage: Stage, actor: Any) -> None:
    """The lead's move shows inline in the contact's latest conversation."""
    from inbox.selectors import conversation_latest_of
    from inbox.services import conversation_event_record

    conversation_id = conversation_latest_of(contact_id=card.contact_id) if card.contact_id else None
    if conversation_id is not None:
        conversation_event_record(
            conversation=conversation_id,
            kind="stage_moved",
            actor=actor,
            detail={"from": from_stage.name, "to": to_stage.name},
        )


def _announce_entered(card: Card, from_stage: Stage | None, to_stage: Stage, actor_kind: str, reason: str) -> None:
    payload = {
        "card_id": card.pk,
        "board_id": card.board_id,
        "contact_id": card.contact_id,
        "stage_id": to_stage.pk,
        "from_stage_id": from_stage.pk if from_stage else None,
        "actor_kind": actor_kind,
        "reason": reason,
    }
    schema = _schema()
    if from_stage is not None:
        events.announce(events.LEAD_STAGE_LEFT, schema, {**payload, "stage_id": from_stage.pk})
    events.announce(events.LEAD_STAGE_ENTERED, schema, payload)
    if to_stage.kind == StageKind.WON:
        events.announce(events.LEAD_WON, schema, payload)
    elif to_stage.kind == StageKind.LOST:
        events.announce(events.LEAD_LOST, schema, payload)
    _changed(card.board_id, card_id=card.pk)
