"""Each condition kind (true and false), each action through the real services (sends reach the Meta
emulator over HTTP), the loop guard (a chain that would trigger itself, depth, rate) and the dry run."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils.translation import gettext

from accounts.models import Role
from ai.models import BotMode, ConversationBot
from automations.models import Match, RuleEvent, RuleRun, RunOutcome, Trigger
from automations.services import (
    MAX_DEPTH,
    rule_dry_run,
    rule_event_record,
    rule_events_process,
    rule_save,
    sample_payload,
)
from campaigns.models import Enrollment
from campaigns.services import cadence_save
from crm.models import Contact, CustomField, Tag
from crm.services import contact_update, contacts_tag
from emulators.meta import MetaEmulator
from inbox.models import Channel, Conversation, Direction, Message, MessageStatus
from inbox.services import message_dispatch
from kanban.models import Card, CardMove
from kanban.services import board_create
from tenants.models import Tenant
from tests.messaging import open_conversation
from tests.support import make_member
from tests.webhooks.receiver import Receiver
from webhooks import delivery as webhook_runner
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db
PHONE = "+5511976501000"


@pytest.fixture
def world(in_tenant_a: Tenant, channels: dict[str, int]) -> dict[str, Any]:
    conversation = open_conversation(channels["whatsapp"], PHONE)
    contact = conversation.contact
    CustomField.objects.create(key="plano", label="Plano", kind="text")
    contact_update(contact=contact, name="Bia Souza", email="bia@example.com", custom_fields={"plano": "Ouro"})
    vip = Tag.objects.create(name="vip")
    contact.tags.add(vip)
    trigger = Tag.objects.create(name="gatilho")
    return {"conversation": conversation, "contact": contact, "vip": vip, "trigger": trigger, "channels": channels}


@pytest.fixture
def settle(django_capture_on_commit_callbacks: Any) -> Callable[..., list[RuleRun]]:
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


def _tag_fires(w: dict[str, Any], settle: Any) -> RuleRun:
    """Put the trigger tag on the contact (the rule's WHEN) and return the one run it caused."""
    runs = settle(lambda: contacts_tag(contacts=Contact.objects.filter(pk=w["contact"].pk), tag=w["trigger"]))
    (run,) = runs
    return run


def _rule(
    w: dict[str, Any],
    *,
    conditions: list[dict[str, Any]] | None = None,
    actions: list[dict[str, Any]] | None = None,
    match: str = Match.ALL,
) -> Any:
    return rule_save(
        name="r",
        trigger=Trigger.TAG_ADDED,
        trigger_config={"tag_id": w["trigger"].pk},
        match=match,
        conditions=conditions or [],
        actions=actions or [{"type": "tag_add", "tag_id": Tag.objects.get_or_create(name="done")[0].pk}],
    )


# --- conditions -------------------------------------------------------------------------------------


def _conditions(w: dict[str, Any]) -> list[tuple[dict[str, Any], bool]]:
    wa, sms = w["channels"]["whatsapp"], w["channels"]["sms"]
    return [
        ({"kind": "contact_field", "field": "name", "op": "contains", "value": "souza"}, True),
        ({"kind": "contact_field", "field": "email", "op": "equals", "value": "outra@example.com"}, False),
        ({"kind": "contact_field", "field": "phone", "op": "starts_with", "value": "+5511"}, True),
        ({"kind": "contact_field", "field": "email", "op": "is_empty"}, False),
        ({"kind": "custom_field", "field": "plano", "op": "equals", "value": "ouro"}, True),
        ({"kind": "custom_field", "field": "plano", "op": "not_equals", "value": "Ouro"}, False),
        ({"kind": "custom_field", "field": "cidade", "op": "is_set"}, False),
        ({"kind": "tag", "tag_id": w["vip"].pk, "has": True}, True),
        ({"kind": "tag", "tag_id": w["vip"].pk, "has": False}, False),
        ({"kind": "channel", "channel_id": wa}, True),
        ({"kind": "channel", "channel_id": sms}, False),
        ({"kind": "conversation_state", "state": "open"}, True),
        ({"kind": "conversation_state", "state": "resolved"}, False),
        ({"kind": "conversation_state", "state": "unassigned"}, True),
        ({"kind": "conversation_state", "state": "assigned"}, False),
    ]


def test_each_condition_kind_true_and_false(world: dict[str, Any]) -> None:
    for condition, expected in _conditions(world):
        rule = _rule(world, conditions=[condition])
        result = rule_dry_run(
            rule=rule,
            payload=sample_payload(kind="tag_added", contact=world["contact"], extra={"tag_id": world["trigger"].pk}),
        )
        assert result.matched is expected, condition


def test_business_hours_in_the_tenant_timezone(world: dict[str, Any]) -> None:
    rule = _rule(
        world,
        conditions=[
            {"kind": "business_hours", "inside": True, "days": [0, 1, 2, 3, 4], "start": "09:00", "end": "18:00"}
        ],
    )
    payload = sample_payload(kind="tag_added", contact=world["contact"], extra={"tag_id": world["trigger"].pk})
    # Tuesday 2026-12-01: 12:30 UTC is 09:30 in São Paulo (open); 11:30 UTC is 08:30 (closed); Sunday closed
    with time_machine.travel(datetime(2026, 12, 1, 12, 30, tzinfo=UTC), tick=False):
        assert rule_dry_run(rule=rule, payload=payload).matched
    with time_machine.travel(datetime(2026, 12, 1, 11, 30, tzinfo=UTC), tick=False):
        assert not rule_dry_run(rule=rule, payload=payload).matched
    with time_machine.travel(datetime(2026, 12, 6, 15, 0, tzinfo=UTC), tick=False):
        assert not rule_dry_run(rule=rule, payload=payload).matched


def test_all_and_any(world: dict[str, Any], settle: Any) -> None:
    one_true = [
        {"kind": "tag", "tag_id": world["vip"].pk, "has": True},
        {"kind": "contact_field", "field": "name", "op": "equals", "value": "x"},
    ]
    everything = _rule(world, conditions=one_true, match=Match.ALL)
    anything = _rule(world, conditions=one_true, match=Match.ANY)
    runs = settle(lambda: contacts_tag(contacts=Contact.objects.filter(pk=world["contact"].pk), tag=world["trigger"]))
    outcome = {r.rule_id: r for r in runs}
    assert outcome[everything.pk].outcome == RunOutcome.NOT_MATCHED and outcome[everything.pk].actions_done == []
    assert [c["ok"] for c in outcome[everything.pk].conditions] == [True, False]
    assert outcome[anything.pk].outcome == RunOutcome.DONE


def test_conditions_and_actions_naming_rows_that_do_not_exist_are_refused(world: dict[str, Any]) -> None:
    bad = [
        {"conditions": [{"kind": "tag", "tag_id": 999999}]},
        {"conditions": [{"kind": "channel", "channel_id": 999999}]},
        {"conditions": [{"kind": "contact_field", "field": "password", "op": "equals"}]},
        {"actions": [{"type": "cadence_enroll", "cadence_id": 999999}]},
        {"actions": [{"type": "assign", "user_id": 999999}]},
        {"actions": [{"type": "webhook_call", "endpoint_id": 999999}]},
        {"actions": [{"type": "card_move", "stage_id": 999999}]},
        {"actions": [{"type": "rm -rf"}]},
        {"actions": []},
    ]
    for fields in bad:
        with pytest.raises(ValidationError):
            rule_save(
                name="x", trigger=Trigger.MESSAGE_RECEIVED, **{"actions": [{"type": "hand_to_assistant"}], **fields}
            )
    with pytest.raises(ValidationError):
        rule_save(
            name="x",
            trigger=Trigger.KEYWORD,
            trigger_config={"keywords": " , "},
            actions=[{"type": "hand_to_assistant"}],
        )


# --- actions through the real services -----------------------------------------------------------------


def test_reply_and_template_reach_the_meta_emulator(
    world: dict[str, Any], settle: Any, meta_emulator: MetaEmulator
) -> None:
    _rule(
        world,
        actions=[
            {"type": "reply", "text": "Oi {{first_name}}, já vamos te atender"},
            {"type": "send_template", "template_name": "boas_vindas", "language": "pt_BR", "variables": "{{name}}"},
        ],
    )
    run = _tag_fires(world, settle)
    assert run.outcome == RunOutcome.DONE, run.actions_done
    conversation = world["conversation"]
    queued = list(Message.objects.filter(conversation=conversation, direction=Direction.OUTBOUND).order_by("id"))
    for message in queued:
        message_dispatch(message_id=message.pk)
        message.refresh_from_db()
        assert message.status == MessageStatus.SENT, message.error_text
    text, template = (meta_emulator.sent[m.provider_message_id] for m in queued)
    assert text["to"] == PHONE.lstrip("+") and text["text"]["body"] == "Oi Bia, já vamos te atender"
    assert template["template"]["name"] == "boas_vindas"
    assert template["template"]["components"][0]["parameters"][0]["text"] == "Bia Souza"
    # the same rule on the same event never sends twice
    from automations.services import rule_apply

    assert rule_apply(run.rule, RuleEvent.objects.get(pk=run.event_id)) is None
    assert Message.objects.filter(conversation=conversation, direction=Direction.OUTBOUND).count() == 2


def test_a_refused_send_is_logged_with_a_clear_error(world: dict[str, Any], settle: Any) -> None:
    Conversation.objects.filter(pk=world["conversation"].pk).update(last_inbound_at=None)  # the 24-hour window closed
    done = Tag.objects.create(name="depois")
    _rule(world, actions=[{"type": "reply", "text": "Oi"}, {"type": "tag_add", "tag_id": done.pk}])
    run = _tag_fires(world, settle)
    assert run.outcome == RunOutcome.PARTIAL
    assert run.actions_done[0]["ok"] is False and "24" in run.actions_done[0]["detail"]
    assert run.actions_done[1]["ok"] is True and world["contact"].tags.filter(pk=done.pk).exists()


def test_tags_card_assignment_cadence_and_handoffs(world: dict[str, Any], settle: Any, in_tenant_a: Tenant) -> None:
    agent = make_member(in_tenant_a, "rule-agent@alpha.test", Role.AGENT)
    board = board_create(name="Regras")
    stages = list(board.stages.order_by("rank"))
    cadence = cadence_save(
        name="Nutrição",
        channel=Channel.objects.get(pk=world["channels"]["sms"]),
        respect_quiet_hours=False,
        steps=[{"delay_minutes": 60, "kind": "text", "body": "Oi"}],
    )
    new_tag = Tag.objects.create(name="novo")
    _rule(
        world,
        actions=[
            {"type": "tag_add", "tag_id": new_tag.pk},
            {"type": "tag_remove", "tag_id": world["vip"].pk},
            {"type": "card_move", "stage_id": stages[1].pk},
            {"type": "assign", "user_id": agent.pk},
            {"type": "cadence_enroll", "cadence_id": cadence.pk},
            {"type": "hand_to_person", "reason": "lead quente"},
        ],
    )
    run = _tag_fires(world, settle)
    assert run.outcome == RunOutcome.DONE, run.actions_done
    contact, conversation = world["contact"], world["conversation"]
    assert set(contact.tags.values_list("name", flat=True)) == {"novo", "gatilho"}
    card = Card.objects.get(board=board, contact=contact)
    assert card.stage_id == stages[1].pk and CardMove.objects.get(card=card).actor_kind == "automation"
    conversation.refresh_from_db()
    assert conversation.assignee_id == agent.pk
    assert Enrollment.objects.filter(cadence=cadence, contact=contact, status="active").exists()
    state = ConversationBot.objects.get(conversation=conversation)
    assert state.mode == BotMode.HUMAN and state.handoff_reason == "lead quente"
    # a second rule hands it back to the assistant, and moves the existing card on
    _rule(world, actions=[{"type": "hand_to_assistant"}, {"type": "card_move", "stage_id": stages[2].pk}])
    contacts_tag_again = Contact.objects.filter(pk=contact.pk)
    Contact.tags.through.objects.filter(contact=contact, tag=world["trigger"]).delete()
    settle(lambda: contacts_tag(contacts=contacts_tag_again, tag=world["trigger"]))
    state.refresh_from_db()
    card.refresh_from_db()
    assert state.mode == BotMode.BOT and card.stage_id == stages[2].pk


def test_round_robin_with_nobody_available_says_so(world: dict[str, Any], settle: Any) -> None:
    from accounts.models import User
    from inbox.models import AgentState

    for user in User.objects.filter(memberships__tenant__schema_name=connection.schema_name):
        AgentState.objects.update_or_create(user=user, defaults={"available": False})
    _rule(world, actions=[{"type": "assign_round_robin"}])
    run = _tag_fires(world, settle)
    assert run.outcome == RunOutcome.FAILED and run.actions_done[0]["detail"] == gettext(
        "Nobody is available to take the conversation."
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def test_webhook_call_is_delivered_signed_to_that_endpoint(
    world: dict[str, Any], settle: Any, receiver: Receiver
) -> None:
    endpoint, _secret = endpoint_create(url=receiver.url, events=["lead.won"])
    _rule(world, actions=[{"type": "webhook_call", "endpoint_id": endpoint.pk}])
    run = _tag_fires(world, settle)
    assert run.outcome == RunOutcome.DONE
    assert webhook_runner.deliver_batch() == 1
    (got,) = receiver.requests
    body = json.loads(got.body)
    assert body["type"] == "automation.rule" and body["data"]["contact_id"] == world["contact"].pk
    assert got.headers["webhook-signature"].startswith("v1,")


# --- the loop guard --------------------------------------------------------------------------------------


def test_a_chain_that_would_trigger_itself_is_stopped_and_logged(world: dict[str, Any], settle: Any) -> None:
    a, b = world["trigger"], Tag.objects.create(name="ping")
    ping = rule_save(
        name="a->b",
        trigger=Trigger.TAG_ADDED,
        trigger_config={"tag_id": a.pk},
        actions=[{"type": "tag_remove", "tag_id": a.pk}, {"type": "tag_add", "tag_id": b.pk}],
    )
    pong = rule_save(
        name="b->a",
        trigger=Trigger.TAG_ADDED,
        trigger_config={"tag_id": b.pk},
        actions=[{"type": "tag_remove", "tag_id": b.pk}, {"type": "tag_add", "tag_id": a.pk}],
    )
    runs = settle(lambda: contacts_tag(contacts=Contact.objects.filter(pk=world["contact"].pk), tag=a), rounds=10)
    assert [(r.rule_id, r.outcome, r.depth) for r in runs] == [
        (ping.pk, RunOutcome.DONE, 0),
        (pong.pk, RunOutcome.DONE, 1),
        (ping.pk, RunOutcome.STOPPED_LOOP, 2),
    ]
    assert runs[-1].error == gettext("This rule is already in the chain of rules that caused the event.")
    assert RuleEvent.objects.filter(status="pending").count() == 0


def test_depth_and_rate_guards(world: dict[str, Any], settle: Any) -> None:
    rule = _rule(world)
    contact = world["contact"]
    deep = rule_event_record(
        kind="tag_added",
        payload={"contact_id": contact.pk, "tag_id": world["trigger"].pk},
        cause={"depth": MAX_DEPTH, "rules": []},
    )
    assert deep is not None
    rule_events_process()
    assert RuleRun.objects.get(event=deep).outcome == RunOutcome.STOPPED_DEPTH
    rule.max_runs_per_hour = 2
    rule.save()
    for _ in range(3):
        rule_event_record(kind="tag_added", payload={"contact_id": contact.pk, "tag_id": world["trigger"].pk})
    rule_events_process()
    outcomes = list(RuleRun.objects.exclude(event=deep).order_by("id").values_list("outcome", flat=True))
    assert outcomes == [RunOutcome.DONE, RunOutcome.DONE, RunOutcome.STOPPED_RATE]


# --- the dry run -------------------------------------------------------------------------------------------


def test_dry_run_shows_what_would_happen_and_changes_nothing(world: dict[str, Any]) -> None:
    cadence = cadence_save(
        name="Seca",
        channel=Channel.objects.get(pk=world["channels"]["sms"]),
        respect_quiet_hours=False,
        steps=[{"delay_minutes": 0, "kind": "text", "body": "Oi"}],
    )
    rule = _rule(
        world,
        conditions=[{"kind": "tag", "tag_id": world["vip"].pk, "has": True}],
        actions=[
            {"type": "reply", "text": "Oi"},
            {"type": "cadence_enroll", "cadence_id": cadence.pk},
            {"type": "assign_round_robin"},
        ],
    )
    counts = (Message.objects.count(), Enrollment.objects.count(), RuleRun.objects.count(), RuleEvent.objects.count())
    result = rule_dry_run(
        rule=rule,
        payload=sample_payload(kind="tag_added", contact=world["contact"], extra={"tag_id": world["trigger"].pk}),
    )
    assert result.fits and result.matched and len(result.actions) == 3 and "Seca" in result.actions[1]
    other = rule_dry_run(
        rule=rule, payload=sample_payload(kind="tag_added", contact=world["contact"], extra={"tag_id": world["vip"].pk})
    )
    assert not other.fits and not other.matched and other.actions == []
    assert (
        Message.objects.count(),
        Enrollment.objects.count(),
        RuleRun.objects.count(),
        RuleEvent.objects.count(),
    ) == counts
    world["conversation"].refresh_from_db()
    assert world["conversation"].assignee_id is None
