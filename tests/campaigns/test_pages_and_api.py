"""The campaign and cadence pages and their API, as a manager and as an agent."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from django.db import connection
from rest_framework.test import APIClient

from accounts.models import Role, User
from accounts.services import api_token_create
from campaigns.models import Cadence, Campaign, CampaignStatus, Enrollment, QuietHours
from crm.models import Tag
from crm.services import contact_get_or_create
from emulators.twilio import TwilioEmulator
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.dispatching import send_queued
from tests.support import make_member, wait_until


def test_manager_creates_launches_and_follows_a_campaign(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User, agent_a: User, channels: dict[str, int]
) -> None:
    tag = Tag.objects.create(name="vip")
    for i in range(3):
        contact_get_or_create(phone=f"+55119750{i:05d}", name=f"VIP {i}").tags.add(tag)
    manager = tenant_client(tenant_a, owner_a, lang="en")
    assert manager.get("/campaigns/").status_code == 200
    assert "New campaign" in manager.get("/campaigns/new/").content.decode()
    refused = manager.post("/campaigns/new/", {"name": "Sem texto", "channel": channels["sms"], "kind": "text"})
    assert refused.status_code == 400 and "Write the message." in refused.content.decode()
    created = manager.post(
        "/campaigns/new/",
        {
            "name": "VIP week",
            "channel": channels["sms"],
            "tags": tag.pk,
            "kind": "text",
            "body": "Oi {{first_name}}!",
            "respect_quiet_hours": "",
        },
    )
    campaign = Campaign.objects.get(name="VIP week")
    assert created.status_code == 302 and campaign.audience == {"tags": [tag.pk]}
    draft = manager.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "3 contacts match the audience now." in draft and "Launch" in draft
    agent = tenant_client(tenant_a, agent_a, lang="en")
    assert agent.post(f"/campaigns/{campaign.pk}/launch/").status_code == 403
    assert agent.get(f"/campaigns/{campaign.pk}/").status_code == 200
    manager.post(f"/campaigns/{campaign.pk}/launch/")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.RUNNING
    send_queued(campaign.channel_id)  # the dispatcher's runner, in this transaction
    progress = manager.get(f"/campaigns/{campaign.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'data-status="completed"' in progress and "3 of 3 handled" in progress
    listing = manager.get("/campaigns/").content.decode()
    assert "VIP week" in listing and "Completed" in listing
    # The contact's timeline shows the campaign.
    contact = tag.contacts.first()
    assert "Campaign VIP week" in manager.get(f"/contacts/{contact.pk}/").content.decode()  # type: ignore[union-attr]
    assert manager.get(f"/campaigns/{campaign.pk}/edit/").status_code == 302  # no edits once sending


def test_quiet_hours_page_is_for_managers(in_tenant_a: Any, tenant_a: Tenant, owner_a: User, agent_a: User) -> None:
    assert tenant_client(tenant_a, agent_a).get("/campaigns/quiet-hours/").status_code == 403
    manager = tenant_client(tenant_a, owner_a, lang="en")
    assert "America/Sao_Paulo" in manager.get("/campaigns/quiet-hours/").content.decode()
    manager.post("/campaigns/quiet-hours/", {"enabled": "on", "start": "20:00", "end": "09:30"})
    quiet = QuietHours.current()
    assert (quiet.start.hour, quiet.end.hour, quiet.end.minute, quiet.quiet_sundays) == (20, 9, 30, False)


def test_cadence_editor_saves_steps_in_order(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User, channels: dict[str, int]
) -> None:
    manager = tenant_client(tenant_a, owner_a, lang="en")
    assert "Add step" in manager.get("/cadences/new/").content.decode()
    form = {
        "name": "Pós-venda",
        "channel": channels["sms"],
        "is_active": "on",
        "stop_on_reply": "on",
        "step_delay": ["0", "2", "3"],
        "step_unit": ["minutes", "hours", "days"],
        "step_kind": ["text", "text", "text"],
        "step_body": ["Obrigado pela compra!", "Chegou tudo certo?", "Avalie a gente"],
        "step_template": ["", "", ""],
        "step_variables": ["", "", ""],
    }
    saved = manager.post("/cadences/new/", form)
    cadence = Cadence.objects.get(name="Pós-venda")
    assert saved.status_code == 302
    assert [(s.delay_minutes, s.body) for s in cadence.steps.all()] == [
        (0, "Obrigado pela compra!"),
        (120, "Chegou tudo certo?"),
        (4320, "Avalie a gente"),
    ]
    detail = manager.get(f"/cadences/{cadence.pk}/").content.decode()
    assert "after 2 hours" in detail and "after 3 days" in detail and "right away" in detail
    editor = manager.get(f"/cadences/{cadence.pk}/edit/").content.decode()
    assert '"unit": "days"' in editor and "Avalie a gente" in editor
    bad = manager.post(f"/cadences/{cadence.pk}/edit/", {**form, "step_body": ["", "x", "y"]})
    assert bad.status_code == 400 and "Step 1" in bad.content.decode()
    assert "Pós-venda" in manager.get("/cadences/").content.decode()


def test_campaign_and_cadence_api(
    app_server: str,
    celery_worker: Any,
    twilio_emulator: TwilioEmulator,
    tenants: Any,
    channels: dict[str, int],
    committed: Any,
) -> None:
    """Through the API with committed rows, as production: the launch's after-commit work reaches the
    real worker, and every recipient's SMS reaches the Twilio emulator once."""
    tenant_a = tenants[0]
    run = uuid.uuid4().hex[:6]
    owner = make_member(tenant_a, f"api-{run}@alpha.test", Role.OWNER)
    _token, secret = api_token_create(name="ci", user=owner, tenant=tenant_a)
    api = APIClient(HTTP_HOST=f"{tenant_a.slug}.localhost")
    api.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    connection.set_tenant(tenant_a)
    tag = Tag.objects.create(name=f"api-aud-{run}")
    ids, phones = [], []
    for i in range(2):
        phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
        contact = contact_get_or_create(phone=phone, name=f"API {i}")
        contact.tags.add(tag)
        ids.append(contact.pk)
        phones.append(phone)
    created = api.post(
        "/api/v1/campaigns/",
        {
            "name": f"API launch {run}",
            "channel": channels["sms"],
            "audience": {"tags": [tag.pk]},
            "kind": "text",
            "body": "Olá!",
            "respect_quiet_hours": False,
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    launched = api.post(f"/api/v1/campaigns/{pk}/launch/")
    assert launched.status_code == 200 and launched.json()["status"] == "running"
    assert api.post(f"/api/v1/campaigns/{pk}/launch/").status_code == 400
    assert api.delete(f"/api/v1/campaigns/{pk}/").status_code == 400

    def delivered() -> bool:
        stats = api.get(f"/api/v1/campaigns/{pk}/").json()["stats"]
        return bool(stats["total"] == 2 and stats["delivered"] == 2)

    wait_until(delivered, timeout=60, interval=0.5, what="both campaign SMS delivered")
    recipients = api.get(f"/api/v1/campaigns/{pk}/recipients/").json()["results"]
    assert {r["contact"] for r in recipients} == set(ids)
    assert all(r["message_status"] == "delivered" for r in recipients)
    received = Counter(m["to"] for m in list(twilio_emulator.sent.values()) if m["to"] in phones)
    assert received == dict.fromkeys(phones, 1)  # each contact once

    cadence = api.post(
        "/api/v1/cadences/",
        {
            "name": f"API cadence {run}",
            "channel": channels["sms"],
            "respect_quiet_hours": False,
            "steps": [{"delay_minutes": 0, "kind": "text", "body": "um"}, {"delay_minutes": 60, "body": "dois"}],
        },
        format="json",
    )
    assert cadence.status_code == 201, cadence.content
    cadence_id = cadence.json()["id"]
    assert [s["position"] for s in cadence.json()["steps"]] == [0, 1]
    renamed = api.patch(f"/api/v1/cadences/{cadence_id}/", {"name": "Renamed"}, format="json")
    assert renamed.status_code == 200 and len(renamed.json()["steps"]) == 2  # steps kept
    enrolled = api.post(f"/api/v1/cadences/{cadence_id}/enroll/", {"filter": {"tags": [tag.pk]}}, format="json")
    assert enrolled.status_code == 201 and enrolled.json() == {"enrolled": 2}
    assert api.post(f"/api/v1/cadences/{cadence_id}/enroll/", {}, format="json").status_code == 400

    def first_steps_sent() -> list[dict[str, Any]] | None:
        found = api.get(f"/api/v1/enrollments/?cadence={cadence_id}").json()["results"]
        return found if len(found) == 2 and all(e["steps_sent"] == 1 for e in found) else None

    listed = wait_until(first_steps_sent, timeout=30, interval=0.5, what="the first cadence step sent by the worker")
    wait_until(
        lambda: all(
            any(m["to"] == p and m["body"] == "um" for m in list(twilio_emulator.sent.values())) for p in phones
        ),
        timeout=20,
        what="the first step at Twilio",
    )
    stopped = api.post(f"/api/v1/enrollments/{listed[0]['id']}/stop/")
    assert stopped.json()["status"] == "stopped"
    assert stopped.json()["exit_reason"] == "manual"
    # Steps carry their key; an edit that reorders by key keeps every step's identity and each
    # enrolled contact's next step.
    steps = api.get(f"/api/v1/cadences/{cadence_id}/").json()["steps"]
    keys = [s["key"] for s in steps]
    reordered = api.patch(
        f"/api/v1/cadences/{cadence_id}/",
        {
            "steps": [
                {
                    **steps[1],
                    "timing": "business_day",
                    "business_days": 2,
                    "at_time": "10:00",
                    "channel": channels["sms"],
                },
                steps[0],
                {"action": "message", "body": "três", "only_if_no_reply": True},
            ]
        },
        format="json",
    )
    assert reordered.status_code == 200, reordered.content
    got = reordered.json()["steps"]
    assert [s["key"] for s in got[:2]] == [keys[1], keys[0]] and got[2]["key"] not in keys
    assert (got[0]["timing"], got[0]["business_days"], got[0]["at_time"]) == ("business_day", 2, "10:00:00")
    active = api.get(f"/api/v1/enrollments/?cadence={cadence_id}&status=active").json()["results"]
    assert [e["next_step"] for e in active] == [keys[1]]
    assert api.post(f"/api/v1/cadences/{cadence_id}/pause/").json()["is_active"] is False
    assert api.post(f"/api/v1/cadences/{cadence_id}/resume/").json()["is_active"] is True
    assert api.post(f"/api/v1/enrollments/{active[0]['id']}/pause/").json()["status"] == "paused"
    assert api.post(f"/api/v1/enrollments/{active[0]['id']}/resume/").json()["status"] == "active"
    stats = api.get(f"/api/v1/cadences/{cadence_id}/stats/").json()
    assert stats["exits"]["manual"] == 1 and stats["statuses"]["stopped"] == 1
    assert [s["key"] for s in stats["steps"]][:2] == [keys[1], keys[0]] and stats["steps"][1]["sent"] == 2
    by_reason = api.get(f"/api/v1/enrollments/?cadence={cadence_id}&exit_reason=manual").json()["results"]
    assert [e["id"] for e in by_reason] == [listed[0]["id"]]
    connection.set_tenant(tenant_a)
    assert Enrollment.objects.filter(cadence_id=cadence_id, status="active").count() == 1
    schema = api.get("/api/v1/schema/").content.decode()
    assert "/api/v1/campaigns/{id}/launch/" in schema and "/api/v1/cadences/{id}/enroll/" in schema
