"""The "done when" rule as production runs it: built in the editor page, committed; a tag added through
crm's service announces the event; the real worker (queue `hooks`) runs the rule: round-robin assignment
and cadence enrolment; the cadence's first step goes out to the Meta emulator through the dispatch queue."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import connection

from accounts.models import Role
from automations.models import Rule, RuleRun, RunOutcome
from automations.services import RUN_FLAG, rules_changed
from campaigns.models import Enrollment
from campaigns.services import cadence_save
from core.redis import redis_client
from crm.models import Contact, Tag
from crm.services import contacts_tag
from emulators.meta import MetaEmulator
from inbox.models import Channel, Conversation
from tests.conftest import tenant_client
from tests.messaging import open_conversation
from tests.support import make_member, wait_until


def test_tag_quente_runs_the_rule_on_the_worker_and_the_cadence_reaches_the_emulator(
    celery_worker: Any, meta_emulator: MetaEmulator, tenants: Any, channels: dict[str, int], committed: Any
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    run = uuid.uuid4().hex[:6]
    owner = make_member(alpha, f"rules-e2e-{run}@alpha.test", Role.OWNER)
    make_member(alpha, f"rules-e2e-agent-{run}@alpha.test", Role.AGENT)  # two people to take turns
    quente = Tag.objects.get_or_create(name="quente")[0]
    cadence = cadence_save(
        name=f"Quente {run}",
        channel=Channel.objects.get(pk=channels["whatsapp"]),
        respect_quiet_hours=False,
        steps=[{"delay_minutes": 0, "kind": "text", "body": "Oi {{first_name}}, vamos fechar?"}],
    )
    client = tenant_client(alpha, owner)
    spec = {"actions": [{"type": "assign_round_robin"}, {"type": "cadence_enroll", "cadence_id": str(cadence.pk)}]}
    saved = client.post(
        "/automations/new/",
        {
            "name": f"Lead quente {run}",
            "trigger": "tag_added",
            "tag_id": quente.pk,
            "spec": json.dumps(spec),
            "enabled": "on",
        },
    )
    assert saved.status_code == 302
    connection.set_tenant(alpha)
    rule = Rule.objects.get(name=f"Lead quente {run}")
    redis_client().delete(RUN_FLAG.format(alpha.schema_name))  # a runner flag some rolled-back test left
    phones = [f"+55119{uuid.uuid4().int % 10**8:08d}" for _ in range(2)]
    conversations = [open_conversation(channels["whatsapp"], phone) for phone in phones]
    Contact.objects.filter(phone__in=phones).update(name="Lia Quente")
    try:
        contacts_tag(contacts=Contact.objects.filter(phone__in=phones), tag=quente)  # committed: announced now

        def done() -> bool:
            connection.set_tenant(alpha)
            return (
                RuleRun.objects.filter(rule=rule).count() == 2
                and Enrollment.objects.filter(cadence=cadence, steps_sent=1).count() == 2
            )

        wait_until(done, timeout=60, interval=0.3, what="the rule and the cadence's first step on the worker")
        connection.set_tenant(alpha)
        assert set(RuleRun.objects.filter(rule=rule).values_list("outcome", flat=True)) == {RunOutcome.DONE}
        assignees = [Conversation.objects.get(pk=c.pk).assignee_id for c in conversations]
        assert all(assignees) and assignees[0] != assignees[1]  # round-robin: one each
        wanted = {p.lstrip("+") for p in phones}

        def sent_out() -> list[dict[str, Any]]:
            return [m for m in list(meta_emulator.sent.values()) if m.get("to") in wanted]

        wait_until(lambda: len(sent_out()) == 2, timeout=30, interval=0.3, what="both first steps at the Meta emulator")
        sent = sent_out()
        assert sorted(m["text"]["body"] for m in sent) == ["Oi Lia, vamos fechar?"] * 2
    finally:
        connection.set_tenant(alpha)
        rule.delete()  # committed: it must not run in the tests that follow
        rules_changed()
        connection.set_schema_to_public()
