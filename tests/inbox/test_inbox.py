"""The shared inbox: who sees what, filters, search, cursor pages, assignment, notes, saved replies."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from accounts.models import Role, User
from crm.models import Tag
from inbox.models import CannedResponse, Conversation, Direction, InboxSettings, Message, MessageStatus
from inbox.providers import InboundMessage
from inbox.selectors import conversations_search, conversations_visible
from inbox.services import conversation_assign, conversation_assign_round_robin, inbound_apply, note_add
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.messaging import open_conversation
from tests.support import make_member

pytestmark = pytest.mark.django_db


def _many(channels: dict[str, int], count: int) -> list[Conversation]:
    now = timezone.now()
    made = []
    for i in range(count):
        conversation = open_conversation(channels["sms"], f"+55119800{i:05d}")
        Conversation.objects.filter(pk=conversation.pk).update(last_message_at=now - timedelta(minutes=i))
        made.append(conversation)
    return made


def test_cursor_pages_cover_everything_once_in_order(in_tenant_a: Any, channels: dict[str, int]) -> None:
    _many(channels, 75)
    base = Conversation.objects.filter(contact__phone__startswith="+55119800")
    seen: list[int] = []
    cursor = ""
    for _page in range(10):  # 75 in pages of 30: 3 pages; more means the cursor does not move on
        page, cursor = conversations_search(base, cursor=cursor, limit=30)
        seen += [c.pk for c in page]
        if not cursor:
            break
    else:
        raise AssertionError("the cursor never reached the end")
    assert len(seen) == 75 and len(set(seen)) == 75
    ordered = list(base.order_by("-last_message_at", "-id").values_list("pk", flat=True))
    assert seen == ordered


def test_search_by_name_phone_and_message_words(in_tenant_a: Any, channels: dict[str, int]) -> None:
    a = open_conversation(channels["sms"], "+5511981110001")
    a.contact.name = "Marina Alves"
    a.contact.save()
    b = open_conversation(channels["sms"], "+5511981110002")
    Message.objects.create(
        conversation=b,
        channel_id=channels["sms"],
        direction=Direction.INBOUND,
        status=MessageStatus.RECEIVED,
        body="Quero saber o prazo de entrega do pedido",
        idempotency_key="search-1",
    )
    base = Conversation.objects.all()

    def found(q: str) -> set[int]:
        return {c.pk for c in conversations_search(base, q=q, limit=200)[0]}

    assert a.pk in found("marina") and b.pk not in found("marina")
    assert found("81110002") >= {b.pk}
    assert b.pk in found("entrega pedido") and a.pk not in found("entrega")
    assert b.pk in found("praz")  # prefix, as you type


def test_agents_see_only_theirs_and_unassigned_when_the_tenant_says_so(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, owner_a: User, channels: dict[str, int]
) -> None:
    mine = open_conversation(channels["sms"], "+5511982220001")
    others = open_conversation(channels["sms"], "+5511982220002")
    free = open_conversation(channels["sms"], "+5511982220003")
    conversation_assign(conversation=mine, assignee=agent_a)
    conversation_assign(conversation=others, assignee=owner_a)
    visible = set(conversations_visible(user=agent_a, is_manager=False).values_list("pk", flat=True))
    assert {mine.pk, others.pk, free.pk} <= visible  # default: everyone sees all
    InboxSettings.objects.update_or_create(pk=1, defaults={"agents_see_all": False})
    visible = set(conversations_visible(user=agent_a, is_manager=False).values_list("pk", flat=True))
    assert mine.pk in visible and free.pk in visible and others.pk not in visible
    assert tenant_client(tenant_a, agent_a).get(f"/conversations/{others.pk}/").status_code == 404
    assert tenant_client(tenant_a, owner_a).get(f"/conversations/{others.pk}/").status_code == 200


def test_list_filters_and_infinite_scroll_fragment(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    made = _many(channels, 35)
    vip = Tag.objects.create(name="vip")
    made[0].contact.tags.add(vip)
    conversation_assign(conversation=made[1], assignee=agent_a)
    client = tenant_client(tenant_a, agent_a, lang="en")
    first = client.get("/conversations/").content.decode()
    cursor = re.search(r"cursor=([^\"&]+)", first)
    assert cursor is not None and first.count("data-conversation=") == 30
    more = client.get(f"/conversations/?cursor={cursor.group(1)}").content.decode()
    assert "<html" not in more and more.count("data-conversation=") >= 5
    mine = client.get("/conversations/?view=mine").content.decode()
    assert f'data-conversation="{made[1].pk}"' in mine and mine.count("data-conversation=") == 1
    tagged = client.get(f"/conversations/?tag={vip.pk}").content.decode()
    assert tagged.count("data-conversation=") == 1


def test_assign_round_robin_resolve_reopen_and_notes(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    second = make_member(tenant_a, "agent-two@alpha.test", Role.AGENT)
    conversation = open_conversation(channels["sms"], "+5511983330001")
    client = tenant_client(tenant_a, agent_a)
    client.post(f"/conversations/{conversation.pk}/action/", {"action": "assign", "assignee": second.pk})
    conversation.refresh_from_db()
    assert conversation.assignee_id == second.pk
    client.post(f"/conversations/{conversation.pk}/action/", {"action": "resolved"})
    conversation.refresh_from_db()
    assert conversation.status == "resolved"
    client.post(f"/conversations/{conversation.pk}/action/", {"action": "open"})
    client.post(
        f"/conversations/{conversation.pk}/action/", {"action": "note", "note": "Cliente VIP, tratar com cuidado"}
    )
    note = Message.objects.get(conversation=conversation, direction=Direction.NOTE)
    assert note.author_id == agent_a.pk and note.provider_message_id is None  # never sent
    page = client.get(f"/conversations/{conversation.pk}/").content.decode()
    assert "Cliente VIP" in page


def test_round_robin_picks_whoever_waited_longest(in_tenant_a: Any, tenant_a: Tenant, channels: dict[str, int]) -> None:
    from inbox.models import AgentState

    for user in User.objects.filter(memberships__tenant=tenant_a):  # committed members of other tests
        AgentState.objects.update_or_create(user=user, defaults={"available": False})
    one = make_member(tenant_a, "rr-one@alpha.test")
    two = make_member(tenant_a, "rr-two@alpha.test")
    picks = [
        conversation_assign_round_robin(conversation=open_conversation(channels["sms"], f"+551198444000{i}"))
        for i in range(4)
    ]
    assert set(picks[:2]) == {one, two}  # never assigned: both get one first
    assert picks[2] == picks[0] and picks[3] == picks[1]  # then in turn
    AgentState.objects.filter(user__in=[one, two]).update(available=False)
    assert conversation_assign_round_robin(conversation=open_conversation(channels["sms"], "+5511984440009")) is None


def test_new_inbound_conversations_are_auto_assigned_when_enabled(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    from inbox.models import Channel

    InboxSettings.objects.update_or_create(pk=1, defaults={"auto_assign": True})
    message = inbound_apply(
        channel=Channel.objects.get(pk=channels["sms"]),
        event=InboundMessage(
            provider_message_id="SMauto1", from_phone="+5511985550001", type="text", timestamp=timezone.now(), body="oi"
        ),
    )
    assert message is not None and message.conversation.assignee_id is not None


def test_saved_replies_and_attachments(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User, channels: dict[str, int]
) -> None:
    client = tenant_client(tenant_a, owner_a)
    assert (
        client.post(
            "/inbox/replies/", {"shortcut": "pix", "title": "Chave PIX", "body": "Nossa chave PIX é 123"}
        ).status_code
        == 302
    )
    assert CannedResponse.objects.get(shortcut="pix").body == "Nossa chave PIX é 123"
    conversation = open_conversation(channels["whatsapp"], "+5511986660001")
    page = client.get(f"/conversations/{conversation.pk}/").content.decode()
    assert '"shortcut": "pix"' in page  # the composer offers it on "/"
    sent = client.post(
        f"/conversations/{conversation.pk}/",
        {"body": "segue o catálogo", "attachment": ContentFile(b"%PDF-1.4 test", name="catalogo.pdf")},
    )
    assert sent.status_code == 302
    message = Message.objects.get(conversation=conversation, direction=Direction.OUTBOUND)
    assert (message.type, message.media_filename) == ("document", "catalogo.pdf")
    assert message.media.read() == b"%PDF-1.4 test"


def test_older_messages_load_in_pages(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    conversation = open_conversation(channels["sms"], "+5511987770001")
    Message.objects.bulk_create(
        Message(
            conversation=conversation,
            channel_id=channels["sms"],
            direction=Direction.INBOUND,
            body=f"m{i}",
            status=MessageStatus.RECEIVED,
            idempotency_key=f"older-{i}",
        )
        for i in range(120)
    )
    client = tenant_client(tenant_a, agent_a)
    page = client.get(f"/conversations/{conversation.pk}/").content.decode()
    assert page.count('class="msg in"') == 50 and "m119" in page and "m69" not in page
    before = re.search(r"older/\?before=(\d+)", page)
    assert before is not None
    older = client.get(f"/conversations/{conversation.pk}/older/?before={before.group(1)}").content.decode()
    assert older.count('class="msg in"') == 50 and "m69" in older


def test_note_is_not_sent(in_tenant_a: Any, agent_a: User, channels: dict[str, int]) -> None:
    conversation = open_conversation(channels["sms"], "+5511988880001")
    note = note_add(conversation=conversation, body="interno", author=agent_a)
    assert note.direction == Direction.NOTE and note.status == MessageStatus.RECEIVED
