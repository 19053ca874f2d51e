"""The three-pane inbox: partials for in-page swaps, the list's rows, the timeline, roles, presence."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from accounts.models import Role, User
from core.realtime import STAFF_TOPIC, group_name
from inbox.live import typing_relay
from inbox.models import (
    Conversation,
    ConversationEvent,
    Direction,
    InboxSettings,
    Message,
    MessageStatus,
)
from inbox.services import conversation_assign, note_add
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.messaging import open_conversation
from tests.support import make_member

pytestmark = pytest.mark.django_db

PANE = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "pane"}
LIST = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "conversation-list"}


def _message(conversation: Conversation, direction: str, body: str, **fields: Any) -> Message:
    return Message.objects.create(
        conversation=conversation,
        channel=conversation.channel,
        direction=direction,
        body=body,
        status=fields.pop("status", MessageStatus.RECEIVED if direction == "in" else MessageStatus.SENT),
        idempotency_key=f"pane-{direction}-{body}-{Message.objects.count()}",
        **fields,
    )


def test_a_deep_link_renders_the_three_panes_and_a_swap_only_the_pane(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    conversation = open_conversation(channels["whatsapp"], "+5511971110001")
    _message(conversation, "in", "quero um orçamento")
    client = tenant_client(tenant_a, agent_a, lang="en")

    full = client.get(f"/conversations/{conversation.pk}/?status=open").content.decode()
    assert "<html" in full and 'id="conversation-list"' in full and 'id="pane"' in full
    assert f'data-pane-conversation="{conversation.pk}"' in full and "quero um orçamento" in full
    # the list keeps its filters (selected, and in every row's link) and marks the open conversation
    assert '<option value="open" selected>' in full
    assert f'href="/conversations/{conversation.pk}/?status=open"' in full
    assert re.search(rf'class="conversation-row current" data-conversation="{conversation.pk}"', full)

    swapped = client.get(f"/conversations/{conversation.pk}/", **PANE).content.decode()
    assert "<html" not in swapped and 'id="conversation-list"' not in swapped
    assert swapped.count('id="pane"') == 1 and "quero um orçamento" in swapped
    assert 'id="composer"' in swapped and 'id="canned-data"' in swapped  # the composer is its own include

    # htmx restoring history (back/forward) gets the whole page again
    restored = client.get(
        f"/conversations/{conversation.pk}/", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert 'id="conversation-list"' in restored.content.decode()

    # the list alone, filtered, for the filters and the live refresh; the empty pane from "back"
    listed = client.get("/conversations/?q=71110001", **LIST).content.decode()
    assert listed.lstrip().startswith('<div id="conversation-list"') and "<html" not in listed
    assert f'data-conversation="{conversation.pk}"' in listed and 'id="pane"' not in listed
    assert "?q=71110001" in listed
    empty = client.get("/conversations/", **PANE).content.decode()
    assert 'id="pane"' in empty and "Start a conversation" in empty and 'id="conversation-list"' not in empty


def test_list_rows_show_preview_waiting_since_and_who_answers(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    now = timezone.now()
    waiting = open_conversation(channels["whatsapp"], "+5511971120001")
    first = _message(waiting, "in", "bom dia")
    bot = _message(waiting, "out", "olá, em que posso ajudar?", payload={"sender": "bot"})
    asked = _message(waiting, "in", "qual o preço?")
    again = _message(waiting, "in", "alguém aí?")
    Message.objects.filter(pk=first.pk).update(created_at=now - timedelta(hours=3))
    Message.objects.filter(pk=bot.pk).update(created_at=now - timedelta(hours=2))
    Message.objects.filter(pk=asked.pk).update(created_at=now - timedelta(minutes=40))
    Message.objects.filter(pk=again.pk).update(created_at=now - timedelta(minutes=5))
    Conversation.objects.filter(pk=waiting.pk).update(last_message_at=now, unread_count=2)
    answered = open_conversation(channels["whatsapp"], "+5511971120002")
    _message(answered, "in", "obrigado")
    _message(answered, "out", "nós que agradecemos", author=agent_a)
    note_add(conversation=answered, body="nota interna nunca na prévia", author=agent_a)
    conversation_assign(conversation=answered, assignee=agent_a)
    Conversation.objects.filter(pk=answered.pk).update(last_message_at=now - timedelta(minutes=1))

    client = tenant_client(tenant_a, agent_a, lang="en")
    page = client.get("/conversations/?q=7112000", **LIST).content.decode()
    rows = {int(pk): html for pk, html in re.findall(r'data-conversation="(\d+)"(.*?)</li>', page, re.S)}
    assert list(rows) == [waiting.pk, answered.pk]  # newest activity first
    row = rows[waiting.pk]
    assert "alguém aí?" in row and 'data-testid="unread">2<' in row
    assert "🤖 Bot" in row  # the assistant answered last and nobody has it
    since = re.search(r'data-testid="waiting" data-since="([^"]+)"', row)
    assert since is not None  # waiting since the first question after the last answer, not the first message
    assert abs(timezone.datetime.fromisoformat(since.group(1)) - (now - timedelta(minutes=40))) < timedelta(seconds=1)
    other = rows[answered.pk]
    assert "You: nós que agradecemos" in other and "nota interna" not in other
    assert 'data-testid="waiting"' not in other and "👤" in other  # answered, by a person


def test_timeline_day_separators_quotes_reactions_notes_and_system_events(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    from ai.services import bot_handoff
    from kanban.services import board_create, card_create, card_move

    conversation = open_conversation(channels["whatsapp"], "+5511971130001")
    yesterday = timezone.now() - timedelta(days=1)
    old = _message(conversation, "in", "mensagem de ontem", provider_message_id="wamid.old")
    Message.objects.filter(pk=old.pk).update(created_at=yesterday)
    _message(
        conversation, "out", "respondendo a ontem", reply_to_provider_id="wamid.old", provider_message_id="wamid.r"
    )
    _message(conversation, "in", "👍", type="reaction", payload={"message_id": "wamid.r", "emoji": "👍"})
    note_add(conversation=conversation, body="cliente antigo", author=agent_a)
    client = tenant_client(tenant_a, agent_a, lang="en")
    client.post(f"/conversations/{conversation.pk}/action/", {"action": "assign_me"}, **PANE)
    client.post(f"/conversations/{conversation.pk}/action/", {"action": "resolved"}, **PANE)
    bot_handoff(conversation=conversation, reason="pediu um atendente", tell_customer=False)
    board = board_create(name="Vendas pane")
    stages = list(board.stages.order_by("rank"))
    card = card_create(board=board, stage=stages[0], title="Orçamento", contact=conversation.contact)
    card_move(card_id=card.pk, to_stage_id=stages[1].pk, actor=agent_a)

    pane = client.get(f"/conversations/{conversation.pk}/", **PANE).content.decode()
    assert pane.count('class="day-sep"') == 2  # yesterday, today
    today = timezone.localdate(timezone=ZoneInfo(tenant_a.timezone))  # the pane's days are the tenant's
    assert pane.index("mensagem de ontem") < pane.index(f'data-day="{today.isoformat()}')
    quoted = re.search(r'data-testid="quoted">(.*?)</blockquote>', pane, re.S)
    assert quoted is not None and "mensagem de ontem" in quoted.group(1)
    # the reaction sits on the message it reacts to, not as a bubble of its own
    assert re.search(r'data-provider-id="wamid.r".*?data-testid="reactions"><span>👍</span>', pane, re.S)
    assert 'data-type="reaction"' not in pane
    assert 'class="msg note"' in pane and "cliente antigo" in pane
    kinds = re.findall(r'class="sys-event" data-event="(\w+)"', pane)
    assert kinds == ["assigned", "resolved", "handed_off", "stage_moved"]
    assert f"{agent_a.get_short_name()} assigned to {agent_a.get_full_name()}" in pane
    assert f"Lead moved from {stages[0].name} to {stages[1].name}" in pane
    assert ConversationEvent.objects.filter(conversation=conversation).count() == 4
    # nothing of this goes to the contact
    assert not Message.objects.filter(conversation=conversation, direction=Direction.OUTBOUND, status="queued").exists()


def test_window_countdown_and_templates_when_closed(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    open_one = open_conversation(channels["whatsapp"], "+5511971140001")
    client = tenant_client(tenant_a, agent_a, lang="en")
    pane = client.get(f"/conversations/{open_one.pk}/", **PANE).content.decode()
    closes = re.search(r'data-window-closes="([^"]+)"', pane)
    assert closes is not None and 'data-testid="send"' in pane
    assert abs(
        timezone.datetime.fromisoformat(closes.group(1)) - (open_one.last_inbound_at + timedelta(hours=24))
    ) < timedelta(seconds=1)  # type: ignore[operator]
    closed = open_conversation(channels["whatsapp"], "+5511971140002", window_open=False)
    shut = client.get(f"/conversations/{closed.pk}/", **PANE).content.decode()
    assert "window to reply freely is closed" in shut and "Send a template" in shut and 'data-testid="send"' not in shut
    assert 'data-testid="add-note"' in shut  # notes are for the team: always possible


def test_replies_and_actions_in_place_answer_with_the_pane(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    conversation = open_conversation(channels["sms"], "+5511971150001")
    client = tenant_client(tenant_a, agent_a, lang="en")
    sent = client.post(f"/conversations/{conversation.pk}/", {"body": "Já separei seu pedido"}, **PANE)
    assert sent.status_code == 200 and "<html" not in sent.content.decode()
    assert "Já separei seu pedido" in sent.content.decode() and 'data-status="queued"' in sent.content.decode()
    mine = client.post(f"/conversations/{conversation.pk}/action/", {"action": "assign_me"}, **PANE)
    assert mine.status_code == 200 and 'id="pane"' in mine.content.decode()
    conversation.refresh_from_db()
    assert conversation.assignee_id == agent_a.pk
    note = client.post(f"/conversations/{conversation.pk}/action/", {"action": "note", "note": "ligar amanhã"}, **PANE)
    assert 'class="msg note"' in note.content.decode() and "ligar amanhã" in note.content.decode()
    # without JavaScript the same forms still work with a redirect
    plain = client.post(f"/conversations/{conversation.pk}/action/", {"action": "resolved"})
    assert plain.status_code == 302


def test_agents_kept_to_their_own_get_no_pane_no_action_and_no_presence_of_others(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, owner_a: User, channels: dict[str, int]
) -> None:
    InboxSettings.objects.update_or_create(pk=1, defaults={"agents_see_all": False})
    other = make_member(tenant_a, "pane-other@alpha.test", Role.AGENT)
    theirs = open_conversation(channels["sms"], "+5511971160001")
    conversation_assign(conversation=theirs, assignee=other)
    client = tenant_client(tenant_a, agent_a, lang="en")
    assert client.get(f"/conversations/{theirs.pk}/", **PANE).status_code == 404
    assert client.get(f"/conversations/{theirs.pk}/messages/1/").status_code == 404
    assert client.post(f"/conversations/{theirs.pk}/action/", {"action": "assign_me"}, **PANE).status_code == 404
    theirs.refresh_from_db()
    assert theirs.assignee_id == other.pk
    listed = client.get("/conversations/", **LIST).content.decode()
    assert f'data-conversation="{theirs.pk}"' not in listed

    schema = in_tenant_a.schema_name
    layer = get_channel_layer()
    socket = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group_name(schema, STAFF_TOPIC), socket)
    try:
        # typing in a conversation this agent may not see is dropped; the assignee's typing is relayed,
        # addressed to those who may see it
        typing_relay(schema, agent_a.pk, Role.AGENT, {"conversation_id": theirs.pk})
        typing_relay(schema, other.pk, Role.AGENT, {"conversation_id": theirs.pk, "note": True})
        typing_relay(schema, other.pk, Role.AGENT, {"conversation_id": "x"})
        message = async_to_sync(layer.receive)(socket)
        assert message["event"] == "conversation.typing"
        assert message["payload"] == {
            "conversation_id": theirs.pk,
            "user_id": other.pk,
            "name": other.get_short_name(),
            "note": True,
        }
        assert message["audience"]["user_ids"] == [other.pk] and Role.AGENT not in message["audience"]["roles"]
    finally:
        async_to_sync(layer.group_discard)(group_name(schema, STAFF_TOPIC), socket)


def test_a_lead_moved_on_the_board_reaches_the_open_timeline_live_and_only_for_those_who_may_see_it(
    in_tenant_a: Any,
    tenant_a: Tenant,
    agent_a: User,
    channels: dict[str, int],
    django_capture_on_commit_callbacks: Any,
) -> None:
    from kanban.services import board_create, card_create, card_move

    InboxSettings.objects.update_or_create(pk=1, defaults={"agents_see_all": False})
    other = make_member(tenant_a, "pane-mover@alpha.test", Role.AGENT)
    conversation = open_conversation(channels["whatsapp"], "+5511971170001")
    conversation_assign(conversation=conversation, assignee=other)
    board = board_create(name="Vendas live")
    first, second = list(board.stages.order_by("rank"))[:2]
    card = card_create(board=board, stage=first, title="Lead live", contact=conversation.contact)

    schema = in_tenant_a.schema_name
    layer = get_channel_layer()
    socket = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group_name(schema, STAFF_TOPIC), socket)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            # an assignment re-renders open panes through conversation.updated: its line is not pushed too
            conversation_assign(conversation=conversation, assignee=other)
            conversation_assign(conversation=conversation, assignee=None)
            conversation_assign(conversation=conversation, assignee=other)
            card_move(card_id=card.pk, to_stage_id=second.pk)
        pushed: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return await asyncio.wait_for(layer.receive(socket), timeout=10)

        while not pushed or pushed[-1]["event"] != "conversation.event":  # the board's own events come too
            pushed.append(async_to_sync(receive)())
    finally:
        async_to_sync(layer.group_discard)(group_name(schema, STAFF_TOPIC), socket)
    assert [m["event"] for m in pushed].count("conversation.event") == 1  # the move's line only
    message = next(m for m in pushed if m["event"] == "conversation.event")
    event = ConversationEvent.objects.get(conversation=conversation, kind="stage_moved")
    assert message["payload"] == {"conversation_id": conversation.pk, "id": event.pk, "kind": "stage_moved"}
    assert message["audience"]["user_ids"] == [other.pk] and Role.AGENT not in message["audience"]["roles"]

    url = f"/conversations/{conversation.pk}/events/{event.pk}/"
    row = tenant_client(tenant_a, other, lang="en").get(url, HTTP_HX_REQUEST="true")
    assert row.status_code == 200
    html = row.content.decode()
    assert f'id="event-{event.pk}"' in html and f"Lead moved from {first.name} to {second.name}" in html
    assert tenant_client(tenant_a, agent_a, lang="en").get(url).status_code == 404  # not theirs to see
