"""The rule editor, its test run and the run log as pages (managers edit, agents read), and the same
over the API (DRF, OpenAPI-documented, cursor-paginated runs)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from accounts.models import Role
from accounts.services import api_token_create
from automations.models import Rule, RuleEvent, RuleRun, RunOutcome
from automations.services import rule_save
from campaigns.models import Enrollment
from campaigns.services import cadence_save
from crm.models import Contact, Tag
from inbox.models import Channel, Message
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.messaging import open_conversation
from tests.support import make_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(in_tenant_a: Tenant, channels: dict[str, int]) -> dict[str, Any]:
    quente = Tag.objects.create(name="quente")
    cadence = cadence_save(
        name="Follow-up",
        channel=Channel.objects.get(pk=channels["whatsapp"]),
        respect_quiet_hours=False,
        steps=[{"delay_minutes": 60, "kind": "text", "body": "Oi"}],
    )
    conversation = open_conversation(channels["whatsapp"], "+5511976502000")
    return {"tenant": in_tenant_a, "quente": quente, "cadence": cadence, "contact": conversation.contact}


def _api(tenant: Tenant, role: str) -> Client:
    user = make_member(tenant, f"rules-api-{role}@alpha.test", role)
    _token, raw = api_token_create(user=user, tenant=tenant, name="rules")
    return Client(HTTP_HOST=f"{tenant.slug}.localhost", HTTP_AUTHORIZATION=f"Token {raw}")


def test_a_manager_builds_the_quente_rule_in_the_editor_and_test_runs_it(shop: dict[str, Any]) -> None:
    owner = make_member(shop["tenant"], "rules-page-owner@alpha.test", Role.ADMIN)
    client = tenant_client(shop["tenant"], owner)
    editor = client.get("/automations/new/")
    assert editor.status_code == 200 and "rule-options" in editor.content.decode()
    spec = {
        "conditions": [{"kind": "tag", "has": "false", "tag_id": str(shop["quente"].pk)}],
        "actions": [{"type": "assign_round_robin"}, {"type": "cadence_enroll", "cadence_id": str(shop["cadence"].pk)}],
    }
    saved = client.post(
        "/automations/new/",
        {
            "name": "Lead quente",
            "trigger": "tag_added",
            "tag_id": shop["quente"].pk,
            "match": "all",
            "spec": json.dumps(spec),
            "enabled": "on",
            "max_runs_per_hour": "3",
        },
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    rule = Rule.objects.get()
    assert rule.trigger_config == {"tag_id": shop["quente"].pk} and rule.max_runs_per_hour == 3
    assert rule.conditions == [{"kind": "tag", "tag_id": shop["quente"].pk, "has": False}]
    assert [a["type"] for a in rule.actions] == ["assign_round_robin", "cadence_enroll"]
    page = client.get(f"/automations/{rule.pk}/").content.decode()
    assert "dry-run-form" in page and "Lead quente" in page
    counts = (Message.objects.count(), Enrollment.objects.count(), RuleRun.objects.count(), RuleEvent.objects.count())
    tested = client.post(f"/automations/{rule.pk}/test/", {"contact": shop["contact"].pk}, HTTP_HX_REQUEST="true")
    body = tested.content.decode()
    assert tested.status_code == 200 and 'data-testid="dry-action"' in body and "Follow-up" in body
    assert (
        Message.objects.count(),
        Enrollment.objects.count(),
        RuleRun.objects.count(),
        RuleEvent.objects.count(),
    ) == counts
    assert client.post(f"/automations/{rule.pk}/test/", {"contact": ""}).status_code == 400
    # a mistake gets the editor back with what to fix, and changes nothing
    bad = client.post(
        f"/automations/{rule.pk}/",
        {
            "name": "x",
            "trigger": "tag_added",
            "tag_id": "",
            "spec": json.dumps({"actions": [{"type": "cadence_enroll"}]}),
        },
    )
    assert bad.status_code == 400 and "rule-errors" in bad.content.decode()
    rule.refresh_from_db()
    assert rule.name == "Lead quente"
    assert client.post(f"/automations/{rule.pk}/toggle/", {"enabled": "0"}).status_code == 302
    rule.refresh_from_db()
    assert rule.enabled is False


def test_agents_read_rules_and_runs_but_change_nothing(shop: dict[str, Any]) -> None:
    rule = rule_save(
        name="R",
        trigger="tag_added",
        trigger_config={"tag_id": shop["quente"].pk},
        actions=[{"type": "assign_round_robin"}],
    )
    RuleRun.objects.create(rule=rule, kind="tag_added", outcome=RunOutcome.STOPPED_LOOP, error="loop here")
    agent = tenant_client(shop["tenant"], make_member(shop["tenant"], "rules-agent@alpha.test", Role.AGENT))
    listing = agent.get("/automations/").content.decode()
    assert "rule-row" in listing and "rule-new" not in listing and "rule-toggle" not in listing
    detail = agent.get(f"/automations/{rule.pk}/").content.decode()
    assert "disabled" in detail and "rule-save" not in detail and "dry-run-form" not in detail
    runs = agent.get("/automations/runs/").content.decode()
    assert "loop here" in runs and "run-row" in runs
    for url, data in [
        (f"/automations/{rule.pk}/", {"name": "hacked"}),
        (f"/automations/{rule.pk}/test/", {"contact": shop["contact"].pk}),
        (f"/automations/{rule.pk}/toggle/", {"enabled": "0"}),
        (f"/automations/{rule.pk}/delete/", {}),
    ]:
        assert agent.post(url, data).status_code == 403, url
    assert agent.get("/automations/new/").status_code == 403
    rule.refresh_from_db()
    assert rule.name == "R" and rule.enabled


def test_the_api_creates_tests_and_lists_rules_and_runs(shop: dict[str, Any]) -> None:
    client = _api(shop["tenant"], Role.ADMIN)
    body = {
        "name": "Lead quente",
        "trigger": "tag_added",
        "trigger_config": {"tag_id": shop["quente"].pk},
        "actions": [{"type": "assign_round_robin"}, {"type": "cadence_enroll", "cadence_id": shop["cadence"].pk}],
    }
    created = client.post("/api/v1/rules/", body, content_type="application/json")
    assert created.status_code == 201, created.content
    rule_id = created.json()["id"]
    refused = client.post(
        "/api/v1/rules/",
        {**body, "actions": [{"type": "cadence_enroll", "cadence_id": 999999}]},
        content_type="application/json",
    )
    assert refused.status_code == 400 and list(refused.json()["errors"]) == ["actions"]
    patched = client.patch(f"/api/v1/rules/{rule_id}/", {"enabled": False}, content_type="application/json")
    assert patched.status_code == 200 and patched.json()["enabled"] is False and len(patched.json()["actions"]) == 2
    dry = client.post(
        f"/api/v1/rules/{rule_id}/test/",
        {"contact_id": shop["contact"].pk, "event": {"tag_id": shop["quente"].pk}},
        content_type="application/json",
    )
    assert dry.status_code == 200 and dry.json()["matched"] is True and len(dry.json()["actions"]) == 2
    assert len(dry.json()["notes"]) == 1  # the rule is disabled: real events do not run it
    rule = Rule.objects.get(pk=rule_id)
    for n in range(3):
        RuleRun.objects.create(
            rule=rule, kind="tag_added", outcome=RunOutcome.DONE, contact_id=shop["contact"].pk, error=str(n)
        )
    first = client.get(f"/api/v1/rule-runs/?rule={rule_id}&outcome=done").json()
    assert [r["error"] for r in first["results"]] == ["2", "1", "0"] and "next" in first
    agent = _api(shop["tenant"], Role.AGENT)
    assert agent.get("/api/v1/rules/").status_code == 200
    assert agent.post("/api/v1/rules/", body, content_type="application/json").status_code == 403
    assert (
        agent.post(
            f"/api/v1/rules/{rule_id}/test/", {"contact_id": shop["contact"].pk}, content_type="application/json"
        ).status_code
        == 403
    )
    schema = client.get("/api/v1/schema/?format=json").json()
    assert "/api/v1/rules/" in schema["paths"] and "/api/v1/rule-runs/" in schema["paths"]
    assert "/api/v1/rules/{id}/test/" in schema["paths"]
    assert Contact.objects.filter(pk=shop["contact"].pk).exists()
