"""AI lead progression against the OpenAI-compatible emulator (scripted structured output): the debounce
(a due time on the row, swept, never a countdown), auto-move over the threshold with "AI" and the reason in
the card's history, suggestions to accept or dismiss below it, the won/lost guard, the history in the
conversation and on the card, the lead score on the board, and who may do what."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.utils import timezone

from accounts.models import Membership
from ai import leads
from ai.leads import classify_due, lead_classify, lead_inbound, lead_settings_save
from ai.models import AISettings, ConversationLead, LeadSettings, LeadSuggestion, SuggestionStatus
from core.redis import redis_client
from emulators.openai import OpenAIEmulator
from inbox.models import Channel, Conversation, Direction, Message
from kanban.models import ActorKind, Board, Card, CardMove
from kanban.services import board_create, card_create
from tests.ai.conftest import conversation_of, customer_says, phone
from tests.conftest import tenant_client

pytestmark = pytest.mark.django_db


def _verdict(stage: str, confidence: float, reason: str = "pediu para agendar uma visita", score: int = 72) -> dict:
    return {
        "intent": "agendar visita",
        "interest": "high",
        "suggested_stage": stage,
        "confidence": confidence,
        "reason": reason,
        "lead_score": score,
    }


@pytest.fixture
def board(in_tenant_a: Any) -> Board:
    return board_create(name="Vendas")


def _settings(board: Board, **fields: Any) -> LeadSettings:
    values = {"enabled": True, "auto_move": True, "threshold": 0.8, "allow_closed": False, **fields}
    return LeadSettings.objects.create(board=board, **values)


def _lead(
    wa_channel: Channel, board: Board, text: str = "quero agendar uma visita amanhã"
) -> tuple[Conversation, Card]:
    message = customer_says(wa_channel, phone(), text)
    conversation = conversation_of(message)
    first = board.stages.order_by("rank").first()
    assert first is not None
    card = card_create(board=board, stage=first, title="Lead", contact=conversation.contact)
    return conversation, card


def _notes(conversation: Conversation) -> list[str]:
    return list(
        Message.objects.filter(conversation=conversation, direction=Direction.NOTE)
        .order_by("pk")
        .values_list("body", flat=True)
    )


def test_inbound_messages_settle_before_one_classification_with_the_boards_stages_as_the_schema(
    ai_key: AISettings, wa_channel: Channel, board: Board, openai_emulator: OpenAIEmulator
) -> None:
    _settings(board, auto_move=False)
    number = phone()
    for text in ("oi", "quanto custa o plano anual?", "quero fechar ainda hoje"):
        message = customer_says(wa_channel, number, text)
        lead_inbound(conversation_id=message.conversation_id)
    conversation = Conversation.objects.get(contact__phone=number)
    row = ConversationLead.objects.get(conversation=conversation)
    assert row.due_at is not None and row.due_at > timezone.now() + timedelta(seconds=leads.settle_seconds() - 5)
    score = redis_client().zscore(leads.DUE_KEY, connection.schema_name)
    assert score is not None and score <= row.due_at.timestamp() + 0.001
    assert classify_due() == 0 and openai_emulator.chat_requests() == []  # not settled yet
    openai_emulator.reply(_verdict("Proposta enviada", 0.6, "quer fechar o plano anual", 88))
    with time_machine.travel(row.due_at + timedelta(seconds=1), tick=True):
        assert classify_due() == 1
        assert classify_due() == 0  # claimed once: a second run finds nothing due
    (request,) = openai_emulator.chat_requests()
    schema = request["json"]["response_format"]["json_schema"]
    assert schema["strict"] is True
    assert schema["schema"]["properties"]["suggested_stage"]["enum"] == list(
        board.stages.order_by("rank").values_list("name", flat=True)
    )
    assert "quero fechar ainda hoje" in request["json"]["messages"][-1]["content"]
    (suggestion,) = LeadSuggestion.objects.filter(conversation=conversation)
    assert suggestion.status == SuggestionStatus.PENDING and suggestion.card is None and suggestion.score == 88
    assert suggestion.intent == "agendar visita" and suggestion.interest == "high"
    # Nothing new from the customer: no second model call.
    assert lead_classify(conversation_id=conversation.pk) is None
    assert len(openai_emulator.chat_requests()) == 1


def test_over_the_threshold_the_card_moves_and_its_history_says_ai_with_the_reason(
    ai_key: AISettings, wa_channel: Channel, board: Board, openai_emulator: OpenAIEmulator
) -> None:
    _settings(board, threshold=0.8)
    conversation, card = _lead(wa_channel, board)
    openai_emulator.reply(_verdict("Reunião agendada", 0.92))
    suggestion = lead_classify(conversation_id=conversation.pk)
    assert suggestion is not None and suggestion.status == SuggestionStatus.APPLIED
    card.refresh_from_db()
    assert card.stage.name == "Reunião agendada"
    move = CardMove.objects.filter(card=card).first()
    assert move is not None and move.actor_kind == ActorKind.AI
    assert move.reason == "AI: pediu para agendar uma visita (92%)"
    (note,) = _notes(conversation)
    assert "Reunião agendada" in note and "pediu para agendar uma visita" in note and "92%" in note


def test_below_the_threshold_the_suggestion_waits_on_the_board_and_the_card_to_be_accepted(
    ai_key: AISettings, wa_channel: Channel, board: Board, openai_emulator: OpenAIEmulator, agent_a: Any
) -> None:
    _settings(board, threshold=0.8)
    conversation, card = _lead(wa_channel, board)
    openai_emulator.reply(_verdict("Reunião agendada", 0.79, score=64))
    suggestion = lead_classify(conversation_id=conversation.pk)
    assert suggestion is not None and suggestion.status == SuggestionStatus.PENDING
    card.refresh_from_db()
    assert card.stage.name == "Novo lead"
    assert "sugere" in _notes(conversation)[0] or "suggests" in _notes(conversation)[0]
    client = tenant_client(connection.tenant, agent_a, lang="en")
    board_page = client.get(f"/boards/{board.pk}/").content.decode()
    assert 'data-testid="lead-score">🤖 64' in board_page and "AI suggests: Reunião agendada" in board_page
    card_page = client.get(f"/cards/{card.pk}/").content.decode()
    assert "The AI suggests moving this lead to <strong>Reunião agendada</strong>" in card_page
    assert "pediu para agendar uma visita" in card_page
    answer = client.post(f"/ai/lead-suggestions/{suggestion.pk}/decide/", {"decision": "accept"})
    assert answer.status_code == 302 and answer["Location"] == f"/cards/{card.pk}/"
    card.refresh_from_db()
    assert card.stage.name == "Reunião agendada"
    move = CardMove.objects.filter(card=card).first()
    assert move is not None and move.actor_kind == ActorKind.PERSON and move.actor == agent_a
    assert move.reason == "Accepted the AI's suggestion: pediu para agendar uma visita"
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.ACCEPTED and suggestion.decided_by == agent_a
    history = client.get(f"/cards/{card.pk}/").content.decode()
    assert "Accepted" in history and "AI suggests" not in history
    # Decided once: a second decision is refused with a message.
    client.post(f"/ai/lead-suggestions/{suggestion.pk}/decide/", {"decision": "dismiss"})
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.ACCEPTED


def test_won_and_lost_are_never_set_by_the_ai_unless_the_board_allows_it(
    ai_key: AISettings, wa_channel: Channel, board: Board, openai_emulator: OpenAIEmulator
) -> None:
    settings_row = _settings(board, threshold=0.5)
    conversation, card = _lead(wa_channel, board, "fechado! pode mandar o boleto")
    openai_emulator.reply(_verdict("Ganho", 0.99, "confirmou a compra"))
    suggestion = lead_classify(conversation_id=conversation.pk)
    assert suggestion is not None and suggestion.status == SuggestionStatus.PENDING
    card.refresh_from_db()
    assert card.stage.name == "Novo lead"
    assert not CardMove.objects.filter(card=card, actor_kind=ActorKind.AI).exists()
    assert "Ganho" in _notes(conversation)[0]
    # The board allows it: the next classification moves the card to won, and the old suggestion is replaced.
    settings_row.allow_closed = True
    settings_row.save()
    customer_says(wa_channel, conversation.contact.phone, "já paguei")
    openai_emulator.reply(_verdict("Ganho", 0.99, "pagou"))
    second = lead_classify(conversation_id=conversation.pk)
    assert second is not None and second.status == SuggestionStatus.APPLIED
    card.refresh_from_db()
    assert card.stage.name == "Ganho"
    suggestion.refresh_from_db()
    assert suggestion.status == SuggestionStatus.SUPERSEDED


def test_auto_move_off_only_suggests_a_lead_without_a_card_gets_one_and_an_unchanged_stage_notes_nothing(
    ai_key: AISettings, wa_channel: Channel, board: Board, openai_emulator: OpenAIEmulator
) -> None:
    settings_row = _settings(board, auto_move=False)
    conversation, card = _lead(wa_channel, board)
    openai_emulator.reply(_verdict("Reunião agendada", 1.0))
    assert lead_classify(conversation_id=conversation.pk).status == SuggestionStatus.PENDING  # type: ignore[union-attr]
    card.refresh_from_db()
    assert card.stage.name == "Novo lead"
    # Same stage as now: the score is kept, nothing is noted.
    customer_says(wa_channel, conversation.contact.phone, "só mais uma dúvida")
    openai_emulator.reply(_verdict("Novo lead", 0.9, score=30))
    unchanged = lead_classify(conversation_id=conversation.pk)
    assert unchanged is not None and unchanged.status == SuggestionStatus.UNCHANGED and len(_notes(conversation)) == 1
    # A contact with no card: with auto-move on, the AI creates it in the stage, its history says why.
    settings_row.auto_move = True
    settings_row.save()
    fresh = conversation_of(customer_says(wa_channel, phone(), "quero uma proposta"))
    openai_emulator.reply(_verdict("Proposta enviada", 0.95, "pediu proposta"))
    created = lead_classify(conversation_id=fresh.pk)
    assert created is not None and created.status == SuggestionStatus.APPLIED
    new_card = Card.objects.get(contact=fresh.contact)
    assert new_card.board == board and new_card.stage.name == "Proposta enviada"
    (move,) = CardMove.objects.filter(card=new_card)
    assert move.actor_kind == ActorKind.AI and move.reason == "AI: pediu proposta (95%)"


def test_a_board_with_classification_off_or_no_key_costs_no_model_call(
    wa_channel: Channel, board: Board, openai_emulator: OpenAIEmulator
) -> None:
    message = customer_says(wa_channel, phone(), "oi")
    lead_inbound(conversation_id=message.conversation_id)
    assert not ConversationLead.objects.exists()  # no board classified: not even a row
    _settings(board)
    lead_inbound(conversation_id=message.conversation_id)
    assert lead_classify(conversation_id=message.conversation_id) is None  # no API key
    assert openai_emulator.chat_requests() == []


def test_an_unusable_or_failed_answer_moves_nothing_and_a_rate_limit_is_tried_again_later(
    ai_key: AISettings, wa_channel: Channel, board: Board, openai_emulator: OpenAIEmulator
) -> None:
    _settings(board, threshold=0.1)
    conversation, card = _lead(wa_channel, board)
    openai_emulator.reply(_verdict("Etapa inventada", 0.99))
    assert lead_classify(conversation_id=conversation.pk) is None
    lead_inbound(conversation_id=conversation.pk)
    customer_says(wa_channel, conversation.contact.phone, "e aí?")
    openai_emulator.fail(429, 429, 429, 429)
    row = ConversationLead.objects.get(conversation=conversation)
    with time_machine.travel(row.due_at + timedelta(seconds=1), tick=True):  # type: ignore[operator]
        assert classify_due() == 0
    row.refresh_from_db()
    assert row.due_at is not None  # back in the queue, a minute later
    card.refresh_from_db()
    assert card.stage.name == "Novo lead" and not LeadSuggestion.objects.exists()


def test_who_may_change_the_settings_and_decide_suggestions(
    ai_key: AISettings, wa_channel: Channel, board: Board, openai_emulator: OpenAIEmulator, agent_a: Any, owner_a: Any
) -> None:
    agent = tenant_client(connection.tenant, agent_a, lang="en")
    owner = tenant_client(connection.tenant, owner_a, lang="en")
    assert agent.get("/ai/lead-progression/").status_code == 403
    assert agent.post("/ai/lead-progression/", {"board": board.pk, f"{board.pk}-enabled": "on"}).status_code == 403
    with pytest.raises(PermissionDenied):
        lead_settings_save(actor=Membership.objects.get(user=agent_a), board=board, enabled=True)
    page = owner.get("/ai/lead-progression/")
    assert page.status_code == 200 and "Default for every board" in page.content.decode()
    saved = owner.post(
        "/ai/lead-progression/",
        {"board": board.pk, f"{board.pk}-enabled": "on", f"{board.pk}-auto_move": "on", f"{board.pk}-threshold": "0.7"},
    )
    assert saved.status_code == 302
    row = LeadSettings.objects.get(board=board)
    assert row.enabled and row.auto_move and row.threshold == 0.7 and not row.allow_closed
    bad = owner.post("/ai/lead-progression/", {"board": board.pk, f"{board.pk}-threshold": "1.5"})
    assert bad.status_code == 302 and LeadSettings.objects.get(board=board).threshold == 0.7
    # Suggestions: every member may decide (card.edit), over the API too.
    conversation, card = _lead(wa_channel, board)
    row.auto_move = False
    row.save()
    openai_emulator.reply(_verdict("Reunião agendada", 0.5))
    suggestion = lead_classify(conversation_id=conversation.pk)
    assert suggestion is not None
    listed = agent.get("/api/v1/lead-suggestions/?status=pending").json()
    assert [s["id"] for s in listed["results"]] == [suggestion.pk]
    dismissed = agent.post(f"/api/v1/lead-suggestions/{suggestion.pk}/dismiss/")
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    assert agent.post(f"/api/v1/lead-suggestions/{suggestion.pk}/accept/").status_code == 400
    card.refresh_from_db()
    assert card.stage.name == "Novo lead"
    assert any("dismissed" in n for n in _notes(conversation))


def test_the_beat_sweep_starts_one_run_per_tenant_with_a_due_conversation(in_tenant_a: Any) -> None:
    schema = connection.schema_name
    r = redis_client()
    r.zrem(leads.DUE_KEY, schema)
    leads.wake_schedule(schema, time.time() + 3600)
    leads.wake_schedule(schema, time.time() - 1)  # an earlier due time wins
    assert leads.due_sweep() == 1
    assert r.zscore(leads.DUE_KEY, schema) is None
    assert leads.due_sweep() == 0  # taken once
