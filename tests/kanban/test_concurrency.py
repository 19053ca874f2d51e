"""Two people moving the same card at once, and many cards dropped in the same place at once: real
concurrent requests against the app served by uvicorn."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from django.db import connection

from accounts.services import api_token_create
from kanban.models import Card, CardMove
from kanban.services import board_create, card_create
from tenants.models import Tenant
from tests.support import make_member


def _api(app_server: str, tenant: Tenant, committed: Any) -> httpx.Client:
    user = make_member(tenant, f"kanban-{uuid.uuid4().hex[:6]}@alpha.test")
    _token, raw = api_token_create(user=user, tenant=tenant, name="race")
    port = app_server.rsplit(":", 1)[1]
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        timeout=30,
        headers={"Host": f"{tenant.slug}.localhost:{port}", "Authorization": f"Token {raw}"},
    )


def test_concurrent_moves_end_consistent(app_server: str, tenants: tuple[Tenant, Tenant], committed: Any) -> None:
    alpha = tenants[0]
    client = _api(app_server, alpha, committed)
    connection.set_tenant(alpha)
    board = board_create(name=f"Race {uuid.uuid4().hex[:4]}")
    stages = list(board.stages.order_by("rank"))
    contested = card_create(board=board, stage=stages[0], title="contested")
    droppers = [card_create(board=board, stage=stages[0], title=f"d{i}") for i in range(8)]
    anchor = card_create(board=board, stage=stages[1], title="anchor")
    card_create(board=board, stage=stages[1], title="tail")
    connection.set_schema_to_public()

    def move(args: tuple[int, int, int | None]) -> int:
        card_id, stage_id, after = args
        body: dict[str, Any] = {"stage": stage_id, "reason": "race"}
        if after:
            body["after"] = after
        return client.post(f"/api/v1/cards/{card_id}/move/", json=body).status_code

    same_card = [(contested.pk, stages[2 + i % 3].pk, None) for i in range(12)]  # never into the droppers' stage
    same_place = [(d.pk, stages[1].pk, anchor.pk) for d in droppers]
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(move, same_card + same_place))
    client.close()
    assert codes == [200] * len(codes)

    connection.set_tenant(alpha)
    cards = Card.objects.filter(board=board)
    assert cards.count() == 11  # nothing lost, nothing duplicated
    target_ranks = list(cards.filter(stage=stages[1]).values_list("rank", flat=True))
    assert len(target_ranks) == len(set(target_ranks))  # no two cards share a position
    ordered = list(cards.filter(stage=stages[1]).order_by("rank").values_list("title", flat=True))
    assert ordered[0] == "anchor" and ordered[-1] == "tail" and set(ordered[1:9]) == {f"d{i}" for i in range(8)}
    contested.refresh_from_db()
    last = CardMove.objects.filter(card=contested).order_by("-created_at", "-id").first()
    assert (
        last is not None and contested.stage_id == last.to_stage_id
    )  # the card is where its last recorded move put it
    moves = CardMove.objects.filter(card=contested, reason="race")
    assert 1 <= moves.count() <= 12 and all(m.from_stage_id != m.to_stage_id for m in moves)
    connection.set_schema_to_public()
