"""The rollups follow the domain events on the committed path; the API, CSV, home page and superadmin
usage read them; one tenant's numbers never reach another."""

from __future__ import annotations

import csv
import io
import time
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import Role, User
from accounts.services import api_token_create
from ai.models import BotReply, ConversationBot, ReplyMode
from analytics import services
from analytics.models import MessageHour, Resolution, ResponseSample
from analytics.selectors import Filters, dashboard_funnel, dashboard_summary
from core.realtime import MANAGERS_TOPIC, group_name
from core.redis import redis_client
from inbox.models import Channel, Message
from inbox.providers import InboundMessage, StatusUpdate
from inbox.services import (
    conversation_assign,
    conversation_set_status,
    inbound_apply,
    message_send,
    status_apply,
)
from kanban.services import board_create, card_create, card_move
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.support import PASSWORD, make_member

pytestmark = pytest.mark.django_db


def _today(tenant: Tenant, **kw: Any) -> Filters:
    today = (
        timezone.now()
        .astimezone(Filters(start=timezone.now().date(), end=timezone.now().date(), tz=tenant.timezone).zone)
        .date()
    )
    return Filters(start=today, end=today, tz=tenant.timezone, **kw)


def _kpis(f: Filters) -> dict[str, Any]:
    return {k: v["value"] for k, v in dashboard_summary(f)["kpis"].items()}


def test_domain_events_on_commit_update_the_rollups_and_push_today(
    in_tenant_a: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    schema = in_tenant_a.schema_name
    client = redis_client()
    for what in ("dirty", "messages", "conversations", "scheduled"):
        client.delete(f"t.{schema}.analytics.{what}")
    layer = get_channel_layer()
    socket = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group_name(schema, MANAGERS_TOPIC), socket)
    channel = Channel.objects.create(kind="sms_twilio", name="SMS live", phone_number="+5511900003333", credentials={})
    agent = make_member(in_tenant_a, "live-agent@alpha.test", Role.AGENT)
    board = board_create(name="Live board")
    stages = list(board.stages.order_by("rank"))
    won = next(s for s in stages if s.kind == "won")
    f = _today(in_tenant_a, channel_id=channel.pk)
    assert _kpis(f)["messages_received"] == 0

    while (timezone.now() - timedelta(seconds=90)).astimezone(f.zone).date() != _today(in_tenant_a).start:
        time.sleep(1)  # the first 90 s after the tenant's midnight: "90 s ago" would be yesterday
    asked = timezone.now() - timedelta(seconds=90)
    with django_capture_on_commit_callbacks(execute=True):
        inbound = inbound_apply(
            channel=channel,
            event=InboundMessage(provider_message_id="SMlive1", from_phone="+5511987650001", type="text",
                                 timestamp=asked, body="Oi, tem horário amanhã?"),
        )  # fmt: skip
        assert inbound is not None
        Message.objects.filter(pk=inbound.pk).update(created_at=asked)  # the customer asked 90 s ago
        conversation = inbound.conversation
        conversation.refresh_from_db()
        conversation_assign(conversation=conversation, assignee=agent)
        reply = message_send(conversation=conversation, body="Temos às 10h!", author=agent, dispatch=False)
        Message.objects.filter(pk=reply.pk).update(status="sent", sent_at=timezone.now(), provider_message_id="SMr1")
        assert status_apply(channel=channel, update=StatusUpdate("SMr1", "delivered", timezone.now()))
        conversation_set_status(conversation=conversation, status="resolved")
        card = card_create(board=board, stage=stages[0], title="Horário amanhã", value=350)
        card_move(card_id=card.pk, to_stage_id=won.pk, actor=agent)

    # The subscribers only noted the hours (nothing rebuilt yet) and scheduled one refresh.
    assert _kpis(f)["messages_received"] == 0
    assert client.get(f"t.{schema}.analytics.scheduled") == b"1"
    assert client.scard(f"t.{schema}.analytics.dirty") > 0
    assert client.sismember(f"t.{schema}.analytics.messages", str(reply.pk))
    services.hours_mark(schema, [], [inbound.pk])  # moved 90 s back, it may sit in the previous hour now

    rebuilt = services.rollups_refresh()  # what the refresh task runs, in the tenant's schema
    assert {"msg", "conv", "resp", "lead"} <= set(rebuilt)
    numbers = _kpis(f)
    assert numbers["messages_received"] == 1
    assert numbers["messages_sent"] == 1 and numbers["messages_delivered"] == 1 and numbers["delivered_rate"] == 1.0
    assert numbers["conversations_opened"] == 1 and numbers["conversations_resolved"] == 1
    assert numbers["responses"] == 1 and numbers["first_responses"] == 1
    sample = ResponseSample.objects.get(reply_id=reply.pk)
    assert sample.agent_id == agent.pk and 85 <= sample.seconds <= 120 and sample.is_first
    assert numbers["first_response_avg_s"] == float(sample.seconds)
    funnel = dashboard_funnel(_today(in_tenant_a, board_id=board.pk))
    assert funnel["won"] == 1 and funnel["value_won"] == 350.0
    assert client.get(f"t.{schema}.analytics.scheduled") is None  # the next event schedules the next refresh

    pushed = async_to_sync(layer.receive)(socket)
    assert pushed["event"] == services.LIVE_EVENT
    assert pushed["payload"]["messages_received"] >= 1 and pushed["payload"]["conversations_resolved"] >= 1
    assert set(pushed["payload"]) == {
        "date", "messages_received", "messages_sent", "conversations_opened", "conversations_resolved", "calls"
    }  # fmt: skip

    # A redelivered event (the same hours noted again) rebuilds to the same numbers, never double.
    services.hours_mark(schema, [], [inbound.pk, reply.pk], [conversation.pk])
    services.rollups_refresh()
    assert _kpis(f) == numbers
    # Nothing noted: a refresh rebuilds nothing.
    assert services.rollups_refresh() == {}
    async_to_sync(layer.group_discard)(group_name(schema, MANAGERS_TOPIC), socket)


def test_a_conversation_the_assistant_resolved_alone_counts_as_contained_one_a_person_touched_does_not(
    in_tenant_a: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    channel = Channel.objects.create(kind="sms_twilio", name="SMS bot", phone_number="+5511900004444", credentials={})
    agent = make_member(in_tenant_a, "contained-agent@alpha.test", Role.AGENT)
    f = _today(in_tenant_a, channel_id=channel.pk)
    conversations = []
    for n, (person_replies, handed_off) in enumerate([(False, False), (True, False), (False, True), (False, False)]):
        with django_capture_on_commit_callbacks(execute=True):
            inbound = inbound_apply(
                channel=channel,
                event=InboundMessage(provider_message_id=f"SMbot{n}", from_phone=f"+551198765100{n}", type="text",
                                     timestamp=timezone.now(), body="Vocês abrem sábado?"),
            )  # fmt: skip
            assert inbound is not None
            conversation = inbound.conversation
            if n < 3:  # the last one the assistant never answered: resolved, not contained
                bot = message_send(conversation=conversation, body="Abrimos das 8h às 12h.", dispatch=False)
                BotReply.objects.create(message=bot, mode=ReplyMode.RETRIEVAL)
            if person_replies:
                message_send(conversation=conversation, body="Confirmo!", author=agent, dispatch=False)
            if handed_off:
                ConversationBot.objects.create(conversation=conversation, mode="human", handed_off_at=timezone.now())
            conversation_set_status(conversation=conversation, status="resolved")
        conversations.append(conversation)
    contained = dict(Resolution.objects.filter(channel_id=channel.pk).values_list("conversation_id", "contained"))
    assert contained == {conversations[0].pk: True, conversations[1].pk: False, conversations[2].pk: False,
                         conversations[3].pk: False}  # fmt: skip
    services.rollups_refresh()
    numbers = _kpis(f)
    assert numbers["conversations_resolved"] == 4 and numbers["conversations_contained"] == 1
    assert numbers["containment_rate"] == 0.25


def test_api_and_csv_for_managers_only_with_clear_errors(in_tenant_a: Tenant, owner_a: User, agent_a: User) -> None:
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    MessageHour.objects.create(hour=hour, channel_id=1, inbound=12, outbound=5, sent=5, delivered=4, read=3)
    MessageHour.objects.create(hour=hour - timedelta(days=30), channel_id=1, inbound=8, outbound=2, sent=2)
    _token, raw = api_token_create(user=owner_a, tenant=in_tenant_a, name="analytics")
    api = Client(HTTP_HOST=f"{in_tenant_a.slug}.localhost", HTTP_AUTHORIZATION=f"Token {raw}")
    summary = api.get("/api/v1/analytics/summary/").json()
    received = summary["kpis"]["messages_received"]
    assert received["value"] >= 12 and received["previous"] >= 8
    assert summary["kpis"]["read_rate"]["value"] is not None
    series = api.get("/api/v1/analytics/series/", {"interval": "week"}).json()
    assert series["interval"] == "week" and sum(p["received"] for p in series["points"]) == received["value"]
    for report in ("agents", "funnel", "campaigns", "calls"):
        assert api.get(f"/api/v1/analytics/{report}/").status_code == 200, report
    bad = api.get("/api/v1/analytics/summary/", {"start": "2026-12-10", "end": "2026-12-01"}, HTTP_ACCEPT_LANGUAGE="en")
    assert bad.status_code == 400 and "anterior à data inicial" in bad.json()["errors"]["period"][0]  # pt-BR default
    assert api.get("/api/v1/analytics/series/", {"interval": "month"}).status_code == 400

    page = tenant_client(in_tenant_a, owner_a, lang="en")
    exported = page.get("/analytics/export/series.csv", {"interval": "day"})
    assert exported.status_code == 200 and exported["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0][:3] == ["t", "received", "sent"] and len(rows) == 31
    assert sum(int(r[1]) for r in rows[1:]) == received["value"]
    kpis = list(csv.reader(io.StringIO(page.get("/analytics/export/summary.csv").content.decode())))
    assert ["messages_received", str(received["value"]), str(received["previous"])] == kpis[
        [r[0] for r in kpis].index("messages_received")
    ][:3]
    assert page.get("/analytics/export/nothing.csv").status_code == 404
    assert page.get("/analytics/export/summary.csv", {"start": "garbage-x"}).status_code in (200, 400)

    home = page.get("/").content.decode()
    assert 'data-testid="dashboard"' in home and "vendor/chartjs/chart.umd.min." in home
    agent_home = tenant_client(in_tenant_a, agent_a, lang="en").get("/")
    assert agent_home.status_code == 200 and 'data-testid="dashboard"' not in agent_home.content.decode()
    assert tenant_client(in_tenant_a, agent_a).get("/analytics/export/summary.csv").status_code == 403


def test_one_tenants_numbers_never_reach_another(tenant_a: Tenant, tenant_b: Tenant, owner_a: User, db: Any) -> None:
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    connection.set_tenant(tenant_b)
    MessageHour.objects.create(hour=hour, channel_id=1, inbound=987_654)
    connection.set_tenant(tenant_a)
    _token, raw = api_token_create(user=owner_a, tenant=tenant_a, name="iso")
    api = Client(HTTP_HOST=f"{tenant_a.slug}.localhost", HTTP_AUTHORIZATION=f"Token {raw}")
    body = (
        api.get("/api/v1/analytics/summary/").content.decode() + api.get("/api/v1/analytics/series/").content.decode()
    )
    assert "987654" not in body
    connection.set_schema_to_public()


def test_superadmin_sees_usage_per_tenant(tenant_a: Tenant, tenant_b: Tenant, db: Any) -> None:
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    connection.set_tenant(tenant_b)
    MessageHour.objects.create(hour=hour, channel_id=1, inbound=4321, outbound=1234)
    from analytics.models import CallHour

    CallHour.objects.create(hour=hour, direction="out", status="ended", outcome="", calls=3, answered=3,
                            duration_ms=9 * 60_000)  # fmt: skip
    connection.set_schema_to_public()
    admin = User.objects.create_superuser(email="usage-root@platform.test", password=PASSWORD)
    client = Client(HTTP_HOST="localhost")
    client.force_login(admin)
    page = client.get("/admin/analytics/tenantusage/")
    assert page.status_code == 200
    html = page.content.decode()
    assert tenant_b.name in html and tenant_a.name in html
    assert "4321" in html and "1234" in html
    assert client.get(f"/admin/analytics/tenantusage/{tenant_b.pk}/change/").status_code in (200, 403)
    assert client.get("/admin/analytics/tenantusage/add/").status_code == 403
