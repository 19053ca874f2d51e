from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet

from kanban.models import Board, Card, CardMove, Stage


def boards_all() -> QuerySet[Board]:
    return Board.objects.all()


def board_columns(*, board: Board, owner: str = "", tag: str = "", q: str = "") -> list[dict[str, Any]]:
    """Stages in order, each with its (filtered) cards, count and value total."""
    cards = Card.objects.filter(board=board).select_related("contact", "owner").prefetch_related("tags")
    if owner.isdigit():
        cards = cards.filter(owner_id=int(owner))
    if tag.isdigit():
        cards = cards.filter(tags=int(tag))
    if q.strip():
        text = q.strip()
        cards = cards.filter(
            Q(title__icontains=text) | Q(contact__name__icontains=text) | Q(contact__phone__contains=text)
        )
    by_stage: dict[int, list[Card]] = {}
    for card in cards.order_by("rank"):
        by_stage.setdefault(card.stage_id, []).append(card)
    columns = []
    for stage in Stage.objects.filter(board=board).order_by("rank"):
        stage_cards = by_stage.get(stage.pk, [])
        columns.append(
            {
                "stage": stage,
                "cards": stage_cards,
                "count": len(stage_cards),
                "total": sum((c.value for c in stage_cards), Decimal("0")),
            }
        )
    return columns


def card_history(*, card: Card) -> QuerySet[CardMove]:
    return CardMove.objects.filter(card=card).select_related("from_stage", "to_stage", "actor")


def contacts_in_stage(*, stage_id: int, contact_ids: list[int]) -> set[int]:
    """Which of these contacts have a lead card in that stage (a cadence step's condition)."""
    return set(Card.objects.filter(stage_id=stage_id, contact_id__in=contact_ids).values_list("contact_id", flat=True))


def stage_kind(stage_id: int) -> str:
    """open, won or lost ("" for a stage that is gone)."""
    return str(Stage.objects.filter(pk=stage_id).values_list("kind", flat=True).first() or "")


def stages_for_choice() -> QuerySet[Stage]:
    """Every stage with its board, for a form's choice (board > stage)."""
    return Stage.objects.select_related("board").order_by("board__name", "rank")
