"""Automation rules through the real services: every trigger wired from the domain that announces it,
every condition kind, every action (sends reach the Meta emulator through the one send path), the loop
guard (chain, depth, rate), the dry run that changes nothing, and the "done when" rule: tag "quente"
added -> assign round-robin and enroll in a cadence."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from accounts.models import Role
from automations.models import Rule, RuleEvent, RuleRun, RunOutcome, Trigger
from automations.services import rule_events_process, rule_save
from campaigns.models import CampaignRecipient, Enrollment, RecipientStatus
from campaigns.services import cadence_save, campaign_save
from crm.models import Contact, Tag
from crm.services import contact_get_or_create, contacts_tag
from inbox.ingest import drain_batch
from inbox.models import Channel, Conversation, Direction, Message, MessageStatus
from inbox.services import conversation_open, conversation_set_status, message_dispatch, message_send
from kanban.models import StageKind
from kanban.services import board_create, card_create, card_move
from tenants.models import Tenant
from tests.messaging import inbound, meta_envelope, meta_messages_value, open_conversation, post_meta
from tests.support import make_member
from voice.services import call_event_apply
from webhooks.inbound import hook_create, receive

pytestmark = pytest.mark.django_db
PHONE = "+5511987654321"  # the sender of tests.messaging.inbound


@pytest.fixture
def settle(django_capture_on_commit_callbacks: Any) -> Callable[..., list[RuleRun]]:
    """Do something as the domain does it, then run the worker's body until no rule event is left
    (each round's after-commit work, events its actions announce included, runs as production's would)."""

    def run(action: Callable[[], Any] | None = None, rounds: int = 8) -> list[RuleRun]:
        with django_capture_on_commit_callbacks(execute=True):
            if action is not None:
                action()
        for _ in range(rounds):
            with django_capture_on_commit_callbacks(execute=True):
                if rule_events_process() == 0:
                    break
        return list(RuleRun.objects.order_by("id"))

    return run


def _tag(name: str) -> Tag:
    return Tag.objects.get_or_create(name=name)[0]


def _seen_rule(trigger: str, **config: Any) -> tuple[Rule, Tag]:
    seen = _tag(f"seen-{trigger}")
    rule = rule_save(
        name=f"on {trigger}", trigger=trigger, trigger_config=config, actions=[{"type": "tag_add", "tag_id": seen.pk}]
    )
    return rule, seen


def _dispatch_outbound(conversation: Conversation) -> list[Message]:
    sent = []
    for message in Message.objects.filter(
        conversation=conversation, direction=Direction.OUTBOUND, status=MessageStatus.QUEUED
    ):
        message_dispatch(message_id=message.pk)
        message.refresh_from_db()
        sent.append(message)
    return sent


# --- the "done when" rule -----------------------------------------------------------------------------


def test_tag_quente_assigns_round_robin_and_enrolls_in_the_cadence(
    in_tenant_a: Tenant, channels: dict[str, int], settle: Any
) -> None:
    first = make_member(in_tenant_a, "rr-1@alpha.test", Role.AGENT)
    second = make_member(in_tenant_a, "rr-2@alpha.test", Role.AGENT)
    quente = _tag("quente")
    cadence = cadence_save(
        name="Follow-up quente",
        channel=Channel.objects.get(pk=channels["whatsapp"]),
        respect_quiet_hours=False,
        steps=[{"delay_minutes": 60, "kind": "text", "body": "Oi {{first_name}}!"}],
    )
    rule = rule_save(
        name="Lead quente",
        trigger=Trigger.TAG_ADDED,
        trigger_config={"tag_id": quente.pk},
        actions=[{"type": "assign_round_robin"}, {"type": "cadence_enroll", "cadence_id": cadence.pk}],
    )
    a = open_conversation(channels["whatsapp"], "+5511976500001")
    b = open_conversation(channels["whatsapp"], "+5511976500002")
    runs = settle(
        lambda: contacts_tag(contacts=Contact.objects.filter(pk__in=[a.contact_id, b.contact_id]), tag=quente)
    )
    assert [r.outcome for r in runs] == [RunOutcome.DONE, RunOutcome.DONE]
    assert all(r.rule_id == rule.pk and [x["ok"] for x in r.actions_done] == [True, True] for r in runs)
    a.refresh_from_db()
    b.refresh_from_db()
    assert {a.assignee_id, b.assignee_id} <= {first.pk, second.pk, *[m.pk for m in [a.assignee, b.assignee] if m]}
    assert a.assignee_id and b.assignee_id and a.assignee_id != b.assignee_id  # round-robin: one each
    assert set(Enrollment.objects.filter(cadence=cadence).values_list("contact_id", flat=True)) == {
        a.contact_id,
        b.contact_id,
    }
    # tagging again (already tagged) announces nothing: no second run
    assert len(settle(lambda: contacts_tag(contacts=Contact.objects.filter(pk=a.contact_id), tag=quente))) == 2


# --- every trigger, from the domain that announces it ---------------------------------------------------


def test_message_received_and_keyword_from_a_real_inbound_webhook(
    in_tenant_a: Tenant, channels: dict[str, int], settle: Any
) -> None:
    received, seen = _seen_rule(Trigger.MESSAGE_RECEIVED)
    keyword, price = _seen_rule(Trigger.KEYWORD, keywords="preço, orcamento")
    miss = rule_save(
        name="other word",
        trigger=Trigger.KEYWORD,
        trigger_config={"keywords": ["boleto"]},
        actions=[{"type": "tag_add", "tag_id": seen.pk}],
    )

    def arrive() -> None:
        body = meta_envelope(meta_messages_value(messages=[inbound("text", "wamid.rule.kw.1")]))
        body["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "Qual o PRECO?"
        assert post_meta(body).status_code == 200
        drain_batch()
        connection.set_tenant(in_tenant_a)

    runs = settle(arrive)
    assert {(r.rule_id, r.outcome) for r in runs} == {(received.pk, RunOutcome.DONE), (keyword.pk, RunOutcome.DONE)}
    assert not RuleRun.objects.filter(rule=miss).exists()  # another keyword: not this rule's event
    contact = Contact.objects.get(phone=PHONE)
    assert set(contact.tags.values_list("pk", flat=True)) >= {seen.pk, price.pk}
    # our own reply is no "message received"
    before = RuleRun.objects.count()
    conversation = Conversation.objects.get(contact=contact)
    settle(lambda: message_send(conversation=conversation, body="Custa 10"))
    assert RuleRun.objects.count() == before


def test_conversation_created_and_resolved(in_tenant_a: Tenant, channels: dict[str, int], settle: Any) -> None:
    created, seen_created = _seen_rule(Trigger.CONVERSATION_CREATED)
    resolved, seen_resolved = _seen_rule(Trigger.CONVERSATION_RESOLVED)
    contact = contact_get_or_create(phone="+5511976500010")
    channel = Channel.objects.get(pk=channels["sms"])
    runs = settle(lambda: conversation_open(contact=contact, channel=channel))
    assert [(r.rule_id, r.outcome) for r in runs] == [(created.pk, RunOutcome.DONE)]
    conversation = Conversation.objects.get(contact=contact)
    settle(lambda: conversation_set_status(conversation=conversation, status="pending"))
    assert not RuleRun.objects.filter(rule=resolved).exists()
    settle(lambda: conversation_set_status(conversation=conversation, status="resolved"))
    assert RuleRun.objects.get(rule=resolved).outcome == RunOutcome.DONE
    assert set(contact.tags.values_list("pk", flat=True)) == {seen_created.pk, seen_resolved.pk}


def test_stage_entered_left_won_and_lost(in_tenant_a: Tenant, settle: Any) -> None:
    board = board_create(name="Funil regras")
    stages = list(board.stages.order_by("rank"))
    won = next(s for s in stages if s.kind == StageKind.WON)
    lost = next(s for s in stages if s.kind == StageKind.LOST)
    entered, _s1 = _seen_rule(Trigger.STAGE_ENTERED, stage_id=stages[1].pk)
    left, _s2 = _seen_rule(Trigger.STAGE_LEFT, stage_id=stages[0].pk)
    win, _s3 = _seen_rule(Trigger.LEAD_WON)
    lose, _s4 = _seen_rule(Trigger.LEAD_LOST)
    contact = contact_get_or_create(phone="+5511976500020")
    card = card_create(board=board, stage=stages[0], title="Padaria", contact=contact)
    settle(lambda: card_move(card_id=card.pk, to_stage_id=stages[1].pk))
    assert {r.rule_id for r in RuleRun.objects.all()} == {entered.pk, left.pk}
    settle(lambda: card_move(card_id=card.pk, to_stage_id=won.pk))
    settle(lambda: card_move(card_id=card.pk, to_stage_id=lost.pk))
    assert RuleRun.objects.get(rule=win).outcome == RuleRun.objects.get(rule=lose).outcome == RunOutcome.DONE
    assert RuleRun.objects.filter(rule=entered).count() == 1  # only stage 1 is that rule's stage


def test_campaign_replied_from_a_real_inbound_reply(in_tenant_a: Tenant, channels: dict[str, int], settle: Any) -> None:
    rule, seen = _seen_rule(Trigger.CAMPAIGN_REPLIED)
    channel = Channel.objects.get(pk=channels["whatsapp"])
    conversation = open_conversation(channel.pk, PHONE)
    campaign = campaign_save(
        name="Black Friday", channel=channel, audience={}, kind="text", body="Oferta!", respect_quiet_hours=False
    )
    sent = message_send(conversation=conversation, body="Oferta!", is_marketing=True)
    CampaignRecipient.objects.create(
        campaign=campaign, contact=conversation.contact, status=RecipientStatus.SENT, message=sent
    )

    def reply(wamid: str) -> Callable[[], None]:
        def go() -> None:
            assert post_meta(meta_envelope(meta_messages_value(messages=[inbound("text", wamid)]))).status_code == 200
            drain_batch()
            connection.set_tenant(in_tenant_a)

        return go

    settle(reply("wamid.rule.camp.1"))
    run = RuleRun.objects.get(rule=rule)
    assert (
        run.outcome == RunOutcome.DONE and RuleEvent.objects.get(pk=run.event_id).payload["campaign_id"] == campaign.pk
    )
    settle(reply("wamid.rule.camp.2"))  # a second message is no new reply to the campaign
    assert RuleRun.objects.filter(rule=rule).count() == 1
    assert conversation.contact.tags.filter(pk=seen.pk).exists()


def test_call_ended_from_the_retell_event(in_tenant_a: Tenant, settle: Any) -> None:
    rule, seen = _seen_rule(Trigger.CALL_ENDED)
    payload = {
        "event": "call_ended",
        "call": {
            "call_id": "call_rule_1",
            "call_status": "ended",
            "direction": "inbound",
            "from_number": "+5511976500030",
            "to_number": "+5511900000001",
        },
    }
    settle(lambda: call_event_apply(payload=payload))
    assert RuleRun.objects.get(rule=rule).outcome == RunOutcome.DONE
    assert Contact.objects.get(phone="+5511976500030").tags.filter(pk=seen.pk).exists()


def test_inbound_webhook_received(in_tenant_a: Tenant, settle: Any) -> None:
    hook, secret = hook_create(name="Loja", mapping={"phone": "customer.phone"}, actions=[{"type": "contact_upsert"}])
    other, _secret = hook_create(name="Outra", mapping={"phone": "phone"}, actions=[])
    rule, seen = _seen_rule(Trigger.INBOUND_WEBHOOK, hook_id=hook.pk)
    body = json.dumps({"customer": {"phone": "+5511976500040"}}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    settle(lambda: receive(hook, body, {"x-signature": signature}))
    run = RuleRun.objects.get(rule=rule)
    assert (
        run.outcome == RunOutcome.DONE and Contact.objects.get(phone="+5511976500040").tags.filter(pk=seen.pk).exists()
    )
    assert other.pk != hook.pk


def test_a_disabled_rule_records_nothing(in_tenant_a: Tenant, settle: Any) -> None:
    rule, _seen = _seen_rule(Trigger.TAG_ADDED, tag_id=_tag("x").pk)
    rule.enabled = False
    rule.save()
    from automations.services import rules_changed

    rules_changed()
    contact = contact_get_or_create(phone="+5511976500050")
    settle(lambda: contacts_tag(contacts=Contact.objects.filter(pk=contact.pk), tag=_tag("x")))
    assert not RuleEvent.objects.exists() and not RuleRun.objects.exists()
