"""The automations issue's "done when", as a tenant does it and production runs it: a three-step cadence
built in the editor page (WhatsApp, then SMS two business days later at 10:00, then an AI call), a rule
built in the rule page (tag "quente" -> assign round-robin, enrol), two customers tagged. On the real
worker: the rule runs, the first step reaches Meta's emulator for both; one customer replies on WhatsApp
(a signed webhook into the app server) and leaves the cadence; for the other, once its two business days
have passed (its due time moved to now: the clock stands in), the beat tick sends the SMS to Twilio's
emulator and then places the call at Retell's, each once."""

from __future__ import annotations

import json
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.utils import timezone

from accounts.models import Role
from automations.models import Rule, RuleRun, RunOutcome
from automations.services import RUN_FLAG, rules_changed
from campaigns.models import Cadence, Enrollment, EnrollmentStatus, ExitReason
from campaigns.tasks import tick
from core.redis import redis_client
from crm.models import Contact, Tag
from crm.services import contacts_tag
from emulators.meta import MetaEmulator
from emulators.retell import RetellEmulator
from emulators.twilio import TwilioEmulator
from inbox.models import Conversation
from tests.conftest import RETELL_KEY, TWILIO_SID, TWILIO_TOKEN, WA_PNID, tenant_client
from tests.messaging import open_conversation
from tests.support import make_member, wait_until
from voice.models import Call
from voice.services import voice_agent_create, voice_api_key_set, voice_twilio_set


def _steps_form(whatsapp: int, sms: int, agent_id: int) -> dict[str, list[str]]:
    """The editor's repeated step fields, one column per field, one row per step."""
    rows = [
        {"step_action": "message", "step_channel": str(whatsapp), "step_timing": "delay", "step_delay": "0",
         "step_kind": "text", "step_body": "Oi {{first_name}}, posso te ajudar com o orçamento?"},
        {"step_action": "message", "step_channel": str(sms), "step_timing": "business_day", "step_bdays": "2",
         "step_at": "10:00", "step_kind": "text", "step_body": "{{first_name}}, seu orçamento ainda vale!"},
        {"step_action": "call", "step_agent": str(agent_id), "step_timing": "delay", "step_delay": "0",
         "step_kind": "text", "step_body": ""},
    ]  # fmt: skip
    names = {name for row in rows for name in row} | {"step_key", "step_unit"}
    return {name: [row.get(name, "minutes" if name == "step_unit" else "") for row in rows] for name in names}


def test_a_three_step_cadence_and_a_rule_built_in_the_ui_reach_the_emulators_and_stop_on_a_reply(
    app_server: str,
    celery_worker: Any,
    meta_emulator: MetaEmulator,
    twilio_emulator: TwilioEmulator,
    retell_emulator: RetellEmulator,
    tenants: Any,
    channels: dict[str, int],
    committed: Any,
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    run = uuid.uuid4().hex[:6]
    owner = make_member(alpha, f"done-when-{run}@alpha.test", Role.OWNER)
    make_member(alpha, f"done-when-agent-{run}@alpha.test", Role.AGENT)  # two people to take turns
    voice_api_key_set(api_key=RETELL_KEY)
    voice_twilio_set(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN)
    caller = voice_agent_create(
        name=f"Follow-up {run}", prompt="Você liga para confirmar o orçamento.", voice_id="11labs-Adrian",
        from_number="+5511930000091", direction="outbound",
    )  # fmt: skip
    quente = Tag.objects.get_or_create(name="quente")[0]
    connection.set_schema_to_public()

    client = tenant_client(alpha, owner)
    form = {"name": f"Orçamento {run}", "channel": str(channels["whatsapp"]), "is_active": "on", "stop_on_reply": "on"}
    saved = client.post("/cadences/new/", {**form, **_steps_form(channels["whatsapp"], channels["sms"], caller.pk)})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    connection.set_tenant(alpha)
    cadence = Cadence.objects.get(name=f"Orçamento {run}")
    spec = {"actions": [{"type": "assign_round_robin"}, {"type": "cadence_enroll", "cadence_id": str(cadence.pk)}]}
    connection.set_schema_to_public()
    rule_page = client.post(
        "/automations/new/",
        {
            "name": f"Quente {run}",
            "trigger": "tag_added",
            "tag_id": quente.pk,
            "spec": json.dumps(spec),
            "enabled": "on",
        },
    )
    assert rule_page.status_code == 302
    connection.set_tenant(alpha)
    rule = Rule.objects.get(name=f"Quente {run}")
    redis_client().delete(RUN_FLAG.format(alpha.schema_name))  # a runner flag some rolled-back test left
    stays, replies = (f"+55119{uuid.uuid4().int % 10**8:08d}" for _ in range(2))
    conversations = [open_conversation(channels["whatsapp"], phone) for phone in (stays, replies)]
    Contact.objects.filter(phone__in=[stays, replies]).update(name="Rui Quente")
    try:
        contacts_tag(contacts=Contact.objects.filter(phone__in=[stays, replies]), tag=quente)  # committed

        def first_steps() -> bool:
            connection.set_tenant(alpha)
            return Enrollment.objects.filter(cadence=cadence, steps_sent=1).count() == 2

        wait_until(first_steps, timeout=60, interval=0.3, what="the rule and the cadence's first step on the worker")
        assert set(RuleRun.objects.filter(rule=rule).values_list("outcome", flat=True)) == {RunOutcome.DONE}
        assignees = {Conversation.objects.get(pk=c.pk).assignee_id for c in conversations}
        assert None not in assignees and len(assignees) == 2  # round-robin: one each

        def whatsapp_to(phone: str) -> list[str]:
            return [m["text"]["body"] for m in list(meta_emulator.sent.values()) if m.get("to") == phone.lstrip("+")]

        wait_until(lambda: whatsapp_to(stays) and whatsapp_to(replies), timeout=30, what="both first steps at Meta")
        assert whatsapp_to(stays) == whatsapp_to(replies) == ["Oi Rui, posso te ajudar com o orçamento?"]

        # The SMS waits for the second business day after, at 10:00 in the tenant's time zone.
        waiting = Enrollment.objects.get(cadence=cadence, contact__phone=stays)
        assert waiting.next_run_at is not None
        local = waiting.next_run_at.astimezone(ZoneInfo(alpha.timezone))
        today = timezone.now().astimezone(ZoneInfo(alpha.timezone)).date()
        assert (local.hour, local.minute) == (10, 0) and local.weekday() < 5 and (local.date() - today).days >= 2

        meta_emulator.inject_inbound(phone_number_id=WA_PNID, from_phone=replies, text="Oi! Já resolvi, obrigado")

        def left() -> bool:
            connection.set_tenant(alpha)
            return Enrollment.objects.filter(
                cadence=cadence, contact__phone=replies, status=EnrollmentStatus.STOPPED
            ).exists()

        wait_until(left, timeout=30, what="the reply to end that customer's cadence")
        assert Enrollment.objects.get(cadence=cadence, contact__phone=replies).exit_reason == ExitReason.REPLIED

        Enrollment.objects.filter(cadence=cadence).update(next_run_at=timezone.now())  # two business days pass
        tick.delay()  # what beat sends every minute

        def sms_to(phone: str) -> list[str]:
            return [m.get("body", "") for m in list(twilio_emulator.sent.values()) if m.get("to") == phone]

        wait_until(lambda: sms_to(stays), timeout=30, what="the SMS step at Twilio")
        assert sms_to(stays) == ["Rui, seu orçamento ainda vale!"]

        def calls_to(phone: str) -> list[dict[str, Any]]:
            return [c for c in list(retell_emulator.calls.values()) if c.get("to_number") == phone]

        def called() -> bool:
            tick.delay()  # the call step is due right after the SMS: the next tick places it
            return bool(calls_to(stays))

        wait_until(called, timeout=45, interval=1.0, what="the call step at Retell")
        connection.set_tenant(alpha)
        call = Call.objects.get(contact__phone=stays)
        assert call.agent_id == caller.pk and call.idempotency_key.startswith(f"cadence:{waiting.pk}:")
        tick.delay()
        wait_until(
            lambda: Enrollment.objects.filter(pk=waiting.pk, status=EnrollmentStatus.COMPLETED).exists(),
            timeout=30,
            what="the cadence to complete",
        )
        assert len(calls_to(stays)) == 1 and len(sms_to(stays)) == 1 and len(whatsapp_to(stays)) == 1
        assert not sms_to(replies) and not calls_to(replies)  # the one who replied got nothing more
    finally:
        connection.set_tenant(alpha)
        rule.delete()  # committed: it must not run in the tests that follow
        rules_changed()
        Cadence.objects.filter(pk=cadence.pk).update(is_active=False)
        connection.set_schema_to_public()
