"""Outbound calls as rows placed by the voice queue: consent, quiet hours, retry on no answer, and a
cadence step's call (the contribution slots), with dynamic variables from the contact."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from campaigns.models import QuietHours
from core.contributions import CADENCE_CALL_AGENTS, CADENCE_CALL_PLACE, collect
from crm.models import ConsentStatus, Contact, Medium
from crm.services import consent_record
from emulators.retell import RetellEmulator
from tenants.models import Tenant
from tests.conftest import RETELL_KEY
from tests.voice.conftest import post_retell, retell_event
from voice.models import AgentStatus, Call, CallStatus, VoiceAgent, VoiceSettings
from voice.outbound import call_place, call_queue, calls_due_place
from voice.services import voice_agent_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_quiet_hours(in_tenant_a: Any) -> None:
    QuietHours.objects.update_or_create(pk=1, defaults={"enabled": False})


def contact(**extra: Any) -> Contact:
    return Contact.objects.create(phone=f"+55119872{uuid.uuid4().int % 100000:05d}", name="Carla Souza", **extra)


def test_a_contact_who_opted_out_is_never_called(agent: VoiceAgent, retell_quiet: RetellEmulator) -> None:
    person = contact()
    consent_record(contact=person, medium=Medium.VOICE, status=ConsentStatus.OPTED_OUT, source="asked")
    with pytest.raises(ValidationError) as refused:
        call_queue(contact=person, agent=agent)
    assert refused.value.code == "opted_out" and not Call.objects.filter(contact=person).exists()

    other = contact()
    call = call_queue(contact=other, agent=agent)
    consent_record(contact=other, medium=Medium.VOICE, status=ConsentStatus.OPTED_OUT, source="replied STOP")
    calls_before = len(retell_quiet.calls)
    assert call_place(call_id=call.pk) == "opted_out"  # withdrawn between queueing and placing
    call.refresh_from_db()
    assert (call.status, call.disconnection_reason) == (CallStatus.NOT_CONNECTED, "opted_out")
    assert len(retell_quiet.calls) == calls_before


def test_quiet_hours_hold_the_call_until_they_end(agent: VoiceAgent, retell_quiet: RetellEmulator) -> None:
    QuietHours.objects.filter(pk=1).update(
        enabled=True, start=datetime.time(0, 0), end=datetime.time(23, 59), quiet_sundays=False
    )
    call = call_queue(contact=contact(), agent=agent)
    calls_before = len(retell_quiet.calls)
    assert call_place(call_id=call.pk) == "quiet_hours"
    call.refresh_from_db()
    assert call.status == CallStatus.QUEUED and call.due_at is not None and call.due_at > timezone.now()
    assert len(retell_quiet.calls) == calls_before
    assert call_place(call_id=call.pk) == "not_due"  # not before the opening
    QuietHours.objects.filter(pk=1).update(enabled=False)
    Call.objects.filter(pk=call.pk).update(due_at=timezone.now())
    assert call_place(call_id=call.pk) == "placed"


def test_no_answer_is_retried_later_as_a_new_row(
    agent: VoiceAgent, voice_a: VoiceSettings, tenant_a: Tenant, retell_quiet: RetellEmulator, settings: Any
) -> None:
    settings.VOICE_RETRY_DELAY_S = 600
    call = call_queue(contact=contact(), agent=agent, idempotency_key=f"k-{uuid.uuid4().hex}")
    assert call_place(call_id=call.pk) == "placed"
    call.refresh_from_db()
    payload = retell_event(
        "call_ended", str(call.retell_call_id), disconnection_reason="dial_no_answer", call_status="not_connected"
    )
    assert post_retell(voice_a.webhook_route, payload, RETELL_KEY).status_code == 204
    assert post_retell(voice_a.webhook_route, payload, RETELL_KEY).status_code == 204  # a duplicate
    connection.set_tenant(tenant_a)
    call.refresh_from_db()
    assert (call.status, call.disconnection_reason) == (CallStatus.NOT_CONNECTED, "dial_no_answer")
    retry = Call.objects.get(retry_of=call)
    assert (retry.status, retry.attempt, retry.idempotency_key) == (
        CallStatus.QUEUED,
        2,
        f"{call.idempotency_key}#2",
    )
    assert retry.due_at is not None and retry.due_at > timezone.now() + datetime.timedelta(seconds=590)
    assert calls_due_place() == 0  # not due yet
    Call.objects.filter(pk=retry.pk).update(due_at=timezone.now())
    assert calls_due_place() == 1
    assert call_place(call_id=retry.pk) == "placed"


def test_a_cadence_step_call_is_queued_once_per_key(
    voice_a: VoiceSettings, retell_quiet: RetellEmulator, django_capture_on_commit_callbacks: Any
) -> None:
    caller = voice_agent_create(
        name="Cadência", prompt="Olá {{contact_first_name}}", voice_id="11labs-Adrian", from_number="+5511930000077",
        direction="outbound",
    )  # fmt: skip
    inbound_only = voice_agent_create(
        name="Só recebe", prompt="p", voice_id="11labs-Adrian", from_number="+5511930000078", direction="inbound"
    )
    draft = VoiceAgent.objects.create(name="Rascunho", prompt="p", status=AgentStatus.DRAFT)
    offered = dict(collect(CADENCE_CALL_AGENTS))
    assert caller.pk in offered and inbound_only.pk not in offered and draft.pk not in offered

    person = contact(custom_fields={"plano": "Ouro"})
    key = f"enrollment-7-step-2-{uuid.uuid4().hex[:6]}"
    with django_capture_on_commit_callbacks(execute=False) as queued:
        first = collect(
            CADENCE_CALL_PLACE, contact_id=person.pk, agent_id=caller.pk, idempotency_key=key, context={"step": 2}
        )
        again = collect(CADENCE_CALL_PLACE, contact_id=person.pk, agent_id=caller.pk, idempotency_key=key, context={})
    assert first == again and len(first) == 1
    assert Call.objects.filter(idempotency_key=key).count() == 1 and len(queued) == 1  # one placing task
    call = Call.objects.get(pk=first[0])
    assert call_place(call_id=call.pk) == "placed"
    call.refresh_from_db()
    variables = retell_quiet.calls[str(call.retell_call_id)]["retell_llm_dynamic_variables"]
    assert variables["contact_first_name"] == "Carla" and variables["custom_plano"] == "Ouro"
    assert variables["step"] == "2" and variables["contact_phone"] == person.phone
    with pytest.raises(ValidationError):
        collect(CADENCE_CALL_PLACE, contact_id=person.pk, agent_id=inbound_only.pk, idempotency_key=key + "x")


def test_retell_refuses_a_number_it_does_not_know_until_it_is_imported(
    agent: VoiceAgent, retell_script: RetellEmulator, retell_quiet: RetellEmulator
) -> None:
    from voice.models import VoiceNumber
    from voice.numbers import voice_number_retell_import
    from voice.services import voice_twilio_set

    retell_script.strict_numbers = True
    call = call_queue(contact=contact(), agent=agent)
    assert call_place(call_id=call.pk) == "error"
    call.refresh_from_db()
    assert call.status == CallStatus.ERROR and "import it first" in call.error_reason
    voice_twilio_set(account_sid="AC" + "c" * 32, auth_token="t", sip_termination_uri="alpha.pstn.twilio.com")
    voice_number_retell_import(number=VoiceNumber.objects.create(e164=agent.from_number))
    again = call_queue(contact=contact(), agent=agent)
    assert call_place(call_id=again.pk) == "placed"


def test_a_cadence_call_step_places_one_real_call_through_the_voice_app(
    voice_a: VoiceSettings, retell_quiet: RetellEmulator, channels: dict[str, int]
) -> None:
    """The two apps together, with no stand-in: a cadence whose second step is a call, ticked twice and
    then again after losing its place (a restarted worker), queues one call, placed at Retell once."""
    from campaigns.cadences import cadence_enroll, cadence_save, cadences_advance, call_agent_choices, steps_live
    from campaigns.models import Enrollment, EnrollmentStatus, StepRun
    from inbox.models import Channel

    caller = voice_agent_create(
        name="Cadência real", prompt="Olá {{contact_first_name}}", voice_id="11labs-Adrian",
        from_number="+5511930000079", direction="outbound",
    )  # fmt: skip
    assert (str(caller.pk), caller.name) in call_agent_choices()
    cadence = cadence_save(
        name=f"Ligação {uuid.uuid4().hex[:6]}",
        channel=Channel.objects.get(pk=channels["sms"]),
        respect_quiet_hours=False,
        steps=[{"body": "Oi! Vou te ligar em seguida."}, {"action": "call", "call_agent": str(caller.pk)}],
    )
    person = contact()
    cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=person.pk))
    assert cadences_advance() >= 1  # the message
    assert cadences_advance() >= 1  # the call
    enrollment = Enrollment.objects.get(cadence=cadence)
    call_step = steps_live(cadence)[1]
    Enrollment.objects.filter(pk=enrollment.pk).update(
        status=EnrollmentStatus.ACTIVE, next_step=call_step, next_run_at=timezone.now()
    )
    cadences_advance()
    (call,) = Call.objects.filter(contact=person)
    assert call.idempotency_key == f"cadence:{enrollment.pk}:{call_step.key}" and call.agent_id == caller.pk
    run = StepRun.objects.get(enrollment=enrollment, step=call_step)
    assert (run.status, run.call_id) == ("placed", str(call.pk))
    assert call_place(call_id=call.pk) == "placed"
    assert call_place(call_id=call.pk) != "placed"  # a second placing task does nothing
    assert sum(1 for c in retell_quiet.calls.values() if c.get("to_number") == person.phone) == 1
