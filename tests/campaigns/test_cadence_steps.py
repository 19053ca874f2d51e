"""Cadences across channels: steps with their own channel, timing (a wait, or N business days later at a
time in the tenant's timezone) and conditions; stable step identities that survive edits; exits by
reason code; pause and resume; the AI call step through the contribution slots; per-step numbers."""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import User
from campaigns import cadences
from campaigns.cadences import (
    cadence_enroll,
    cadence_pause,
    cadence_resume,
    cadence_save,
    cadences_advance,
    cadences_enroll_inactive,
    enrollment_pause,
    enrollment_resume,
    step_run_at,
)
from campaigns.models import (
    Cadence,
    CadenceStep,
    Enrollment,
    EnrollmentStatus,
    ExitReason,
    QuietHours,
    StepRun,
    StepTiming,
)
from campaigns.selectors import cadence_exits, cadence_step_stats
from core import contributions
from core.contributions import CADENCE_CALL_AGENTS, CADENCE_CALL_PLACE
from crm.models import Contact
from crm.services import contact_get_or_create
from inbox.models import Channel, Conversation, Message
from kanban.services import board_create, card_create
from tenants.models import Tenant
from tests.conftest import tenant_client

pytestmark = pytest.mark.django_db
SP = zoneinfo.ZoneInfo("America/Sao_Paulo")


def _due(cadence: Cadence) -> None:
    Enrollment.objects.filter(cadence=cadence, status="active").update(
        next_run_at=timezone.now() - datetime.timedelta(seconds=1)
    )


def _open_whatsapp(channels: dict[str, int], contact: Contact) -> None:
    """An inbound message a minute ago on WhatsApp: the 24-hour window is open."""
    conversation, _created = Conversation.objects.get_or_create(contact=contact, channel_id=channels["whatsapp"])
    Conversation.objects.filter(pk=conversation.pk).update(
        last_inbound_at=timezone.now() - datetime.timedelta(minutes=1)
    )


def _sent(enrollment: Enrollment) -> list[tuple[str, int]]:
    return list(
        Message.objects.filter(idempotency_key__startswith=f"cadence:{enrollment.pk}:")
        .order_by("id")
        .values_list("body", "channel_id")
    )


def _contact(phone: str, **fields: Any) -> Contact:
    return contact_get_or_create(phone=phone, **fields)


def _one(contact: Contact) -> Any:
    return Contact.objects.filter(pk=contact.pk)


# --- timing ----------------------------------------------------------------------------------------


def test_business_day_timing_in_the_tenant_timezone() -> None:
    weekdays = frozenset(range(5))
    step = CadenceStep(timing=StepTiming.BUSINESS_DAY, business_days=2, at_time=datetime.time(10, 0))
    friday_evening = datetime.datetime(2026, 12, 4, 18, 0, tzinfo=SP)  # a Friday
    assert step_run_at(step, friday_evening, SP, weekdays) == datetime.datetime(2026, 12, 8, 10, 0, tzinfo=SP)
    step.business_days = 1  # "the next business day at 10:00"
    assert step_run_at(step, friday_evening, SP, weekdays) == datetime.datetime(2026, 12, 7, 10, 0, tzinfo=SP)
    monday_early = datetime.datetime(2026, 12, 7, 7, 0, tzinfo=SP)
    step.business_days = 0  # the next 10:00 on a business day: today's is still ahead
    assert step_run_at(step, monday_early, SP, weekdays) == datetime.datetime(2026, 12, 7, 10, 0, tzinfo=SP)
    # 01:00 UTC on Saturday is still Friday 22:00 in São Paulo: the next business day is Monday
    step.business_days = 1
    late_utc = datetime.datetime(2026, 12, 5, 1, 0, tzinfo=datetime.UTC)
    assert step_run_at(step, late_utc, SP, weekdays) == datetime.datetime(2026, 12, 7, 10, 0, tzinfo=SP)
    # a wait that lands on a Saturday, on a step that runs only on business days, moves to Monday
    wait = CadenceStep(timing=StepTiming.DELAY, delay_minutes=60 * 24, only_business_days=True)
    assert step_run_at(wait, friday_evening, SP, weekdays) == datetime.datetime(2026, 12, 7, 18, 0, tzinfo=SP)


# --- steps across channels, conditions ---------------------------------------------------------------


def test_steps_go_out_on_their_own_channels_and_conditions_skip_with_a_code(
    in_tenant_a: Any, channels: dict[str, int]
) -> None:
    board = board_create(name="Vendas cadência")
    first, second = list(board.stages.order_by("rank"))[:2]
    cadence = cadence_save(
        name="Multicanal",
        channel=Channel.objects.get(pk=channels["whatsapp"]),
        respect_quiet_hours=False,
        stop_on_reply=False,
        steps=[
            {"kind": "text", "body": "Oi pelo WhatsApp"},
            {"channel": channels["sms"], "kind": "text", "body": "Oi por SMS", "delay_minutes": 60},
            {"channel": channels["sms"], "body": "Só sem resposta", "only_if_no_reply": True},
            {"channel": channels["sms"], "body": "Só na etapa", "only_in_stage": first.pk},
        ],
    )
    quiet, moved = _contact("+5511975000001", name="Quieto"), _contact("+5511975000002", name="Respondeu")
    card_create(board=board, stage=first, title="q", contact=quiet)
    card_create(board=board, stage=second, title="m", contact=moved)
    for contact in (quiet, moved):
        _open_whatsapp(channels, contact)
    assert cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk__in=[quiet.pk, moved.pk])) == 2
    assert cadences_advance() == 2
    e_quiet = Enrollment.objects.get(cadence=cadence, contact=quiet)
    e_moved = Enrollment.objects.get(cadence=cadence, contact=moved)
    assert _sent(e_quiet) == [("Oi pelo WhatsApp", channels["whatsapp"])]
    assert cadences_advance() == 0  # the SMS step waits its hour
    # "moved" replies (on SMS) after enrolling: the no-reply step is skipped for it
    Conversation.objects.get_or_create(contact=moved, channel_id=channels["sms"])
    Conversation.objects.filter(contact=moved).update(last_inbound_at=timezone.now())
    for _round in range(3):
        _due(cadence)
        cadences_advance()
    assert [b for b, _c in _sent(e_quiet)] == ["Oi pelo WhatsApp", "Oi por SMS", "Só sem resposta", "Só na etapa"]
    assert _sent(e_quiet)[1][1] == channels["sms"]
    assert [b for b, _c in _sent(e_moved)] == ["Oi pelo WhatsApp", "Oi por SMS"]
    codes = dict(StepRun.objects.filter(enrollment=e_moved).values_list("step__position", "code"))
    assert codes == {0: "", 1: "", 2: "replied", 3: "not_in_stage"}
    e_quiet.refresh_from_db()
    assert e_quiet.status == EnrollmentStatus.COMPLETED and e_quiet.steps_sent == 4
    stats = cadence_step_stats(cadence)
    assert [row["sent"] for row in stats] == [2, 2, 1, 1]
    assert [row["skipped"] for row in stats] == [0, 0, 1, 1]
    assert stats[2]["problems"][0]["code"] == "replied"


def test_a_business_day_only_step_waits_for_a_business_day(in_tenant_a: Any, channels: dict[str, int]) -> None:
    quiet = QuietHours.current()
    today = timezone.now().astimezone(SP).weekday()
    quiet.business_days = [d for d in range(7) if d != today]  # today is not a business day
    quiet.save()
    cadence = cadence_save(
        name="Dias úteis",
        channel=Channel.objects.get(pk=channels["sms"]),
        respect_quiet_hours=False,
        steps=[{"body": "Só em dia útil", "only_business_days": True, "delay_minutes": 0}],
    )
    contact = _contact("+5511975000010")
    cadence_enroll(cadence=cadence, contacts=_one(contact))
    _due(cadence)
    assert cadences_advance() == 0
    enrollment = Enrollment.objects.get(cadence=cadence)
    assert enrollment.next_run_at is not None and enrollment.next_run_at.astimezone(SP).weekday() != today
    assert not StepRun.objects.filter(enrollment=enrollment).exists()


def test_steps_are_validated_per_step(in_tenant_a: Any, channels: dict[str, int]) -> None:
    sms = Channel.objects.get(pk=channels["sms"])
    with pytest.raises(ValidationError) as template_on_sms_step:
        cadence_save(
            name="t",
            channel=Channel.objects.get(pk=channels["whatsapp"]),
            steps=[{"body": "ok"}, {"channel": sms.pk, "kind": "template", "template_name": "x"}],
        )
    assert "2" in str(template_on_sms_step.value)
    with pytest.raises(ValidationError):  # no voice agent has this id: a call step cannot be saved
        cadence_save(name="c", channel=sms, steps=[{"action": "call", "call_agent": "999999"}])


# --- stable identities -----------------------------------------------------------------------------


def _editable(cadence: Cadence) -> list[dict[str, Any]]:
    return [
        {"key": str(s.key), "body": s.body, "channel": s.step_channel_id, "delay_minutes": s.delay_minutes}
        for s in cadences.steps_live(cadence)
    ]


def test_editing_a_cadence_never_shifts_or_skips_a_step_for_enrolled_contacts(
    in_tenant_a: Any, channels: dict[str, int]
) -> None:
    sms = Channel.objects.get(pk=channels["sms"])
    cadence = cadence_save(
        name="Editável",
        channel=sms,
        respect_quiet_hours=False,
        steps=[{"body": "A"}, {"body": "B", "delay_minutes": 60}, {"body": "C", "delay_minutes": 60}],
    )
    early = _contact("+5511975000020")
    cadence_enroll(cadence=cadence, contacts=_one(early))
    cadences_advance()  # A goes out; early waits for B
    enrollment = Enrollment.objects.get(cadence=cadence, contact=early)
    waiting_for = enrollment.next_step
    assert waiting_for is not None and waiting_for.body == "B"
    # Reorder (C before B) and insert X at the very start: the enrolled contact still waits for B.
    steps = _editable(cadence)
    a, b, c = steps
    cadence_save(cadence=cadence, steps=[{"body": "X"}, a, c, b])
    enrollment.refresh_from_db()
    assert enrollment.next_step_id == waiting_for.pk
    assert [s.body for s in cadences.steps_live(cadence)] == ["X", "A", "C", "B"]
    for _round in range(4):
        _due(cadence)
        cadences_advance()
    enrollment.refresh_from_db()
    # Every step once: B (waited for), then what it had not run in the new order (X, then C).
    assert [b for b, _c in _sent(enrollment)] == ["A", "B", "X", "C"]
    assert enrollment.status == EnrollmentStatus.COMPLETED and enrollment.steps_sent == 4
    keys = set(
        Message.objects.filter(idempotency_key__startswith=f"cadence:{enrollment.pk}:").values_list(
            "idempotency_key", flat=True
        )
    )
    assert keys == {f"cadence:{enrollment.pk}:{s.key}" for s in cadences.steps_live(cadence)}
    # A new contact goes through the new order.
    late = _contact("+5511975000021")
    cadence_enroll(cadence=cadence, contacts=_one(late))
    for _round in range(5):
        _due(cadence)
        cadences_advance()
    assert [b for b, _c in _sent(Enrollment.objects.get(cadence=cadence, contact=late))] == ["X", "A", "C", "B"]


def test_removing_the_step_a_contact_waits_for_moves_it_to_the_next_one(
    in_tenant_a: Any, channels: dict[str, int]
) -> None:
    cadence = cadence_save(
        name="Remoção",
        channel=Channel.objects.get(pk=channels["sms"]),
        respect_quiet_hours=False,
        steps=[{"body": "1"}, {"body": "2", "delay_minutes": 60}, {"body": "3", "delay_minutes": 60}],
    )
    contact = _contact("+5511975000030")
    cadence_enroll(cadence=cadence, contacts=_one(contact))
    cadences_advance()
    one, two, three = _editable(cadence)
    removed = CadenceStep.objects.get(key=two["key"])
    cadence_save(cadence=cadence, steps=[one, three])
    enrollment = Enrollment.objects.get(cadence=cadence)
    assert enrollment.next_step is not None and enrollment.next_step.body == "3"
    removed.refresh_from_db()
    assert removed.removed_at is not None and removed.runs.count() == 0  # kept, with its (empty) numbers
    _due(cadence)
    cadences_advance()
    enrollment.refresh_from_db()
    assert [b for b, _c in _sent(enrollment)] == ["1", "3"] and enrollment.status == EnrollmentStatus.COMPLETED


# --- exits -----------------------------------------------------------------------------------------


def test_exits_are_recorded_as_codes_counted_and_shown(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User, channels: dict[str, int], django_capture_on_commit_callbacks: Any
) -> None:
    from kanban.services import card_move

    board = board_create(name="Saídas")
    stages = list(board.stages.order_by("rank"))
    won = next(s for s in stages if s.kind == "won")
    lost = next(s for s in stages if s.kind == "lost")
    open_stages = [s for s in stages if s.kind == "open"]
    goal, other = open_stages[-1], open_stages[1]
    cadence = cadence_save(
        name="Saídas por motivo",
        channel=Channel.objects.get(pk=channels["sms"]),
        respect_quiet_hours=False,
        exit_on_stage_change=True,
        goal_stage=goal,
        steps=[{"body": "Oi"}, {"body": "De novo", "delay_minutes": 600}],
    )
    people = {name: _contact(f"+551197500004{i}", name=name) for i, name in enumerate(["won", "lost", "goal", "move"])}
    cards = {name: card_create(board=board, stage=open_stages[0], title=name, contact=c) for name, c in people.items()}
    cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk__in=[c.pk for c in people.values()]))
    cadences_advance()
    with django_capture_on_commit_callbacks(execute=True):
        card_move(card_id=cards["won"].pk, to_stage_id=won.pk)
        card_move(card_id=cards["lost"].pk, to_stage_id=lost.pk)
        card_move(card_id=cards["goal"].pk, to_stage_id=goal.pk)
        card_move(card_id=cards["move"].pk, to_stage_id=other.pk)
    reasons = dict(Enrollment.objects.filter(cadence=cadence).values_list("contact__name", "exit_reason"))
    assert reasons == {
        "won": ExitReason.WON,
        "lost": ExitReason.LOST,
        "goal": ExitReason.GOAL_REACHED,
        "move": ExitReason.STAGE_CHANGED,
    }
    counts = {x["reason"]: x["count"] for x in cadence_exits(cadence)}
    assert counts["won"] == counts["lost"] == counts["goal_reached"] == counts["stage_changed"] == 1
    assert counts["replied"] == 0
    first_step = cadence_step_stats(cadence)[0]
    assert {x["reason"]: x["count"] for x in first_step["exits"]} == {
        "won": 1,
        "lost": 1,
        "goal_reached": 1,
        "stage_changed": 1,
    }
    page = tenant_client(tenant_a, owner_a, lang="en").get(f"/cadences/{cadence.pk}/").content.decode()
    assert 'data-reason="goal_reached"' in page and "Goal stage reached" in page
    live = tenant_client(tenant_a, owner_a, lang="en").get(f"/cadences/{cadence.pk}/live/").content.decode()
    assert 'data-testid="step-stats"' in live and 'hx-trigger="every 5s"' in live


# --- pause and resume ------------------------------------------------------------------------------


def test_pausing_a_cadence_holds_it_and_resuming_spreads_the_overdue(
    in_tenant_a: Any, channels: dict[str, int]
) -> None:
    cadence = cadence_save(
        name="Pausa",
        channel=Channel.objects.get(pk=channels["sms"]),
        respect_quiet_hours=False,
        steps=[{"body": "Oi", "delay_minutes": 5}],
    )
    contacts = [_contact(f"+55119750001{i:02d}") for i in range(40)]
    cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk__in=[c.pk for c in contacts]))
    with pytest.raises(Exception):  # noqa: B017, PT011 (PermissionDenied: an agent may not pause a cadence)
        cadence_pause(cadence=cadence, actor="agent")
    assert cadence_pause(cadence=cadence, actor="admin") and not cadence.is_active
    _due(cadence)
    assert cadences_advance() == 0  # paused: nothing runs
    now = timezone.now()
    assert cadence_resume(cadence=cadence, actor="owner", now=now) == 40
    times = sorted(Enrollment.objects.filter(cadence=cadence).values_list("next_run_at", flat=True))  # type: ignore[type-var]
    assert times[0] == now and times[-1] > now + datetime.timedelta(seconds=3)  # spread, 10 a second
    assert len(set(times)) == 40
    assert cadences_advance() == 1  # only the first is due right now


def test_pausing_one_enrollment(in_tenant_a: Any, channels: dict[str, int]) -> None:
    cadence = cadence_save(
        name="Pausa individual",
        channel=Channel.objects.get(pk=channels["sms"]),
        respect_quiet_hours=False,
        steps=[{"body": "Oi"}],
    )
    contact = _contact("+5511975000200")
    cadence_enroll(cadence=cadence, contacts=_one(contact))
    enrollment = Enrollment.objects.get(cadence=cadence)
    assert enrollment_pause(enrollment=enrollment, actor="agent")
    assert cadences_advance() == 0
    assert cadence_enroll(cadence=cadence, contacts=_one(contact)) == 0  # a paused one still counts as in it
    assert enrollment_resume(enrollment=enrollment, actor="agent")
    assert cadences_advance() == 1


# --- triggers --------------------------------------------------------------------------------------


def test_inactive_contacts_are_enrolled_once(in_tenant_a: Any, channels: dict[str, int]) -> None:
    cadence = cadence_save(
        name="Reativar inativos",
        channel=Channel.objects.get(pk=channels["sms"]),
        respect_quiet_hours=False,
        enroll_inactive_days=30,
        steps=[{"body": "Sentimos sua falta"}],
    )
    old, recent = _contact("+5511975000300"), _contact("+5511975000301")
    for contact, days in ((old, 45), (recent, 3)):
        conversation, _c = Conversation.objects.get_or_create(contact=contact, channel_id=channels["sms"])
        Conversation.objects.filter(pk=conversation.pk).update(
            last_message_at=timezone.now() - datetime.timedelta(days=days)
        )
    assert cadences_enroll_inactive() == 1
    assert list(Enrollment.objects.filter(cadence=cadence).values_list("contact_id", flat=True)) == [old.pk]
    Enrollment.objects.filter(cadence=cadence).update(status=EnrollmentStatus.COMPLETED)
    assert cadences_enroll_inactive() == 0  # not again until the contact is active and then inactive again


# --- the call step ---------------------------------------------------------------------------------


@pytest.fixture
def voice_contributor() -> Iterator[list[dict[str, Any]]]:
    """A small stand-in for the voice app: one agent, and a call placed once per idempotency key."""
    placed: list[dict[str, Any]] = []
    calls: dict[str, str] = {}

    def agents(**kwargs: Any) -> list[tuple[str, str]]:
        return [("7", "Sol (voz)")]

    def place(**kwargs: Any) -> list[str]:
        placed.append(kwargs)
        key = kwargs["idempotency_key"]
        calls.setdefault(key, f"call-{len(calls) + 1}")
        return [calls[key]]

    # the stand-in takes the slots over (the real voice app contributes to them too), then gives them back
    saved = {slot: list(contributions._slots[slot]) for slot in (CADENCE_CALL_AGENTS, CADENCE_CALL_PLACE)}
    contributions._slots[CADENCE_CALL_AGENTS] = [agents]
    contributions._slots[CADENCE_CALL_PLACE] = [place]
    try:
        yield placed
    finally:
        contributions._slots.update(saved)


def test_a_call_step_is_placed_exactly_once(
    in_tenant_a: Any, channels: dict[str, int], voice_contributor: list[dict[str, Any]]
) -> None:
    assert cadences.call_agent_choices() == [("7", "Sol (voz)")]
    cadence = cadence_save(
        name="Com ligação",
        channel=Channel.objects.get(pk=channels["sms"]),
        respect_quiet_hours=False,
        steps=[{"body": "Vou te ligar"}, {"action": "call", "call_agent": "7"}],
    )
    contact = _contact("+5511975000400")
    cadence_enroll(cadence=cadence, contacts=_one(contact))
    assert cadences_advance() == 1  # the message
    assert cadences_advance() == 1  # the call (no wait)
    enrollment = Enrollment.objects.get(cadence=cadence)
    call_step = cadences.steps_live(cadence)[1]
    # the pointer is lost (a restarted worker): the call is not placed again
    Enrollment.objects.filter(pk=enrollment.pk).update(
        status=EnrollmentStatus.ACTIVE, next_step=call_step, next_run_at=timezone.now()
    )
    assert cadences_advance() == 0
    assert len(voice_contributor) == 1
    (call,) = voice_contributor
    assert call["idempotency_key"] == f"cadence:{enrollment.pk}:{call_step.key}"
    assert call["contact_id"] == contact.pk and call["agent_id"] == "7"
    assert call["context"]["cadence_id"] == cadence.pk
    run = StepRun.objects.get(enrollment=enrollment, step=call_step)
    assert (run.status, run.call_id) == ("placed", "call-1")


def test_a_call_step_with_no_voice_app_fails_with_a_code(
    in_tenant_a: Any, channels: dict[str, int], voice_contributor: list[dict[str, Any]]
) -> None:
    cadence = cadence_save(
        name="Sem voz",
        channel=Channel.objects.get(pk=channels["sms"]),
        respect_quiet_hours=False,
        steps=[{"action": "call", "call_agent": "7"}, {"body": "Depois da ligação"}],
    )
    contributions.withdraw(CADENCE_CALL_PLACE, contributions._slots[CADENCE_CALL_PLACE][-1])
    contact = _contact("+5511975000500")
    cadence_enroll(cadence=cadence, contacts=_one(contact))
    assert cadences_advance() == 0
    run = StepRun.objects.get(enrollment__cadence=cadence)
    assert (run.status, run.code) == ("failed", "voice_unavailable")
    assert cadences_advance() == 1  # the cadence goes on with the next step
    assert (
        cadence_step_stats(cadence)[0]["problems"]
        == [{"code": "voice_unavailable", "label": "No voice agent can place the call", "count": 1}]
        or cadence_step_stats(cadence)[0]["failed"] == 1
    )
