from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from accounts.models import User
from accounts.services import api_token_create
from core import events
from kanban.models import ActorKind, Card, CardMove, Stage
from kanban.services import (
    MAX_RANK_LENGTH,
    board_create,
    card_create,
    card_move,
    stage_create,
    stage_delete,
    stage_reorder,
)
from tenants.models import Tenant
from tests.conftest import tenant_client

pytestmark = pytest.mark.django_db


def titles(stage: Stage) -> list[str]:
    return list(Card.objects.filter(stage=stage).order_by("rank").values_list("title", flat=True))


@pytest.fixture
def board(in_tenant_a: Any) -> Any:
    return board_create(name="Vendas")


def test_default_stages_and_cards_append_in_order(board: Any) -> None:
    stages = list(board.stages.order_by("rank"))
    assert [s.name for s in stages][:2] == ["Novo lead", "Contato feito"] and stages[-1].kind == "lost"
    for title in ("A", "B", "C"):
        card_create(board=board, stage=stages[0], title=title, value=Decimal("100.50"))
    assert titles(stages[0]) == ["A", "B", "C"]


def test_moves_place_cards_exactly_and_write_one_card_row(board: Any) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first, second = list(board.stages.order_by("rank"))[:2]
    a, b, c = (card_create(board=board, stage=first, title=t) for t in "ABC")
    x = card_create(board=board, stage=second, title="X")
    card_move(card_id=c.pk, to_stage_id=first.pk, before_id=a.pk)
    assert titles(first) == ["C", "A", "B"]
    card_move(card_id=x.pk, to_stage_id=first.pk, after_id=a.pk)
    assert titles(first) == ["C", "A", "X", "B"]
    untouched = {card.pk: card.rank for card in Card.objects.exclude(pk=x.pk)}
    with CaptureQueriesContext(connection) as captured:
        card_move(card_id=b.pk, to_stage_id=second.pk, reason="ligou de volta")
    writes = [
        q["sql"].split(" ")[0:3]
        for q in captured.captured_queries
        if q["sql"].startswith(("UPDATE", "INSERT", "DELETE"))
    ]
    assert writes == [["UPDATE", '"kanban_card"', "SET"], ["INSERT", "INTO", '"kanban_cardmove"']]
    assert {card.pk: card.rank for card in Card.objects.exclude(pk__in=[x.pk, b.pk])} == {
        k: v for k, v in untouched.items() if k != b.pk
    }
    move = CardMove.objects.filter(card=b).first()
    assert (move.from_stage_id, move.to_stage_id, move.reason) == (first.pk, second.pk, "ligou de volta")


def test_many_drops_in_the_same_gap_rebalance_and_keep_order(board: Any) -> None:
    stage = board.stages.order_by("rank").first()
    left = card_create(board=board, stage=stage, title="left")
    card_create(board=board, stage=stage, title="right")
    for i in range(80):
        card = card_create(board=board, stage=stage, title=f"n{i}")
        card_move(card_id=card.pk, to_stage_id=stage.pk, after_id=left.pk)  # always right after "left"
    ranks = list(Card.objects.filter(stage=stage).order_by("rank").values_list("rank", flat=True))
    assert max(len(r) for r in ranks) <= MAX_RANK_LENGTH and len(set(ranks)) == len(ranks)
    assert titles(stage)[0] == "left" and titles(stage)[1] == "n79" and titles(stage)[-1] == "right"


def test_stage_events_for_the_rest_of_the_product(board: Any, django_capture_on_commit_callbacks: Any) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    for name in (events.LEAD_STAGE_ENTERED, events.LEAD_STAGE_LEFT, events.LEAD_WON, events.LEAD_LOST):
        events.subscribe(name, lambda schema, payload, name=name: seen.append((name, payload)))
    stages = list(board.stages.order_by("rank"))
    won = next(s for s in stages if s.kind == "won")
    with django_capture_on_commit_callbacks(execute=True):
        card = card_create(board=board, stage=stages[0], title="Deal")
        card_move(card_id=card.pk, to_stage_id=won.pk, actor_kind=ActorKind.AI, reason="cliente confirmou a compra")
    kinds = [name for name, _ in seen]
    assert kinds == [events.LEAD_STAGE_ENTERED, events.LEAD_STAGE_LEFT, events.LEAD_STAGE_ENTERED, events.LEAD_WON]
    assert seen[-1][1]["actor_kind"] == "ai" and seen[-1][1]["reason"] == "cliente confirmou a compra"


def test_stage_reorder_and_delete(board: Any) -> None:
    stages = list(board.stages.order_by("rank"))
    stage_reorder(stage=stages[-1], before_id=stages[0].pk)
    assert board.stages.order_by("rank").first().pk == stages[-1].pk
    extra = stage_create(board=board, name="Extra")
    card = card_create(board=board, stage=extra, title="Y")
    with pytest.raises(ValidationError):
        stage_delete(stage=extra)
    stage_delete(stage=extra, move_cards_to=stages[0])
    card.refresh_from_db()
    assert card.stage_id == stages[0].pk and not Stage.objects.filter(pk=extra.pk).exists()


def test_a_card_cannot_move_to_another_boards_stage(board: Any) -> None:
    other = board_create(name="Outro")
    card = card_create(board=board, stage=board.stages.first(), title="Z")
    with pytest.raises(ValidationError):
        card_move(card_id=card.pk, to_stage_id=other.stages.first().pk)


def test_board_page_columns_totals_filters_and_card_page(board: Any, tenant_a: Tenant, agent_a: User) -> None:
    first = board.stages.order_by("rank").first()
    client = tenant_client(tenant_a, agent_a, lang="en")
    client.post(
        f"/boards/{board.pk}/stages/{first.pk}/cards/",
        {"title": "Loja do Zé", "value": "1500.00", "contact_phone": "11 98000-1111"},
    )
    client.post(f"/boards/{board.pk}/stages/{first.pk}/cards/", {"title": "Padaria", "value": "500"})
    page = client.get(f"/boards/{board.pk}/").content.decode()
    assert "Loja do Zé" in page and "R$ 2000.00" in page.replace(",", ".")
    filtered = client.get(f"/boards/{board.pk}/?q=Padaria").content.decode()
    assert "Padaria" in filtered and "Loja do Zé" not in filtered
    card = Card.objects.get(title="Loja do Zé")
    assert card.contact.phone == "+5511980001111"
    second = board.stages.order_by("rank")[1]
    moved = client.post(f"/cards/{card.pk}/move/", {"stage": second.pk})  # the keyboard "move to"
    assert moved.status_code == 302
    card.refresh_from_db()
    assert card.stage_id == second.pk
    detail = client.get(f"/cards/{card.pk}/").content.decode()
    assert detail.count('data-testid="move"') == 2  # created, then moved, each with who and when
    json_move = client.post(f"/cards/{card.pk}/move/", {"stage": first.pk}, HTTP_ACCEPT="application/json")
    assert json_move.json()["stage"] == first.pk


def test_pipeline_api(board: Any, tenant_a: Tenant, agent_a: User) -> None:
    _token, raw = api_token_create(user=agent_a, tenant=tenant_a, name="kanban")
    api = Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {raw}")
    stages = api.get(f"/api/v1/stages/?board={board.pk}").json()["results"]
    created = api.post(
        "/api/v1/cards/",
        {"board": board.pk, "stage": stages[0]["id"], "title": "API lead", "value": "99.90"},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    card_id = created.json()["id"]
    moved = api.post(
        f"/api/v1/cards/{card_id}/move/",
        {"stage": stages[1]["id"], "reason": "qualificado"},
        content_type="application/json",
    )
    assert moved.json()["stage"] == stages[1]["id"]
    history = api.get(f"/api/v1/cards/{card_id}/moves/").json()
    assert history[0]["actor_kind"] == "api" and history[0]["reason"] == "qualificado"
    bad = api.post(f"/api/v1/cards/{card_id}/move/", {"stage": 999999}, content_type="application/json")
    assert bad.status_code == 400
    assert api.get("/api/v1/boards/").json()["results"][0]["stages"]


def test_lead_card_in_the_inbox_and_stage_changes_in_the_contact_timeline(
    board: Any, tenant_a: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    from tests.messaging import open_conversation

    conversation = open_conversation(channels["sms"], "+5511976000001")
    stages = list(board.stages.order_by("rank"))
    card = card_create(
        board=board, stage=stages[0], title="Pedido grande", contact=conversation.contact, value=Decimal("3200")
    )
    card_move(card_id=card.pk, to_stage_id=stages[2].pk, actor=agent_a, reason="reunião marcada")
    client = tenant_client(tenant_a, agent_a, lang="en")
    panel = client.get(f"/conversations/{conversation.pk}/").content.decode()
    assert 'data-testid="lead-card"' in panel and "Pedido grande" in panel and stages[2].name in panel
    page = client.get(f"/contacts/{conversation.contact.pk}/").content.decode()
    assert f"Pedido grande: {stages[0].name} → {stages[2].name}" in page and "reunião marcada" in page
    assert 'data-testid="lead-card"' in page
