"""A campaign as in production: launched from the API's service, batches run by a real Celery worker,
messages through the Graph API emulator, statuses back through signed webhooks to the real server."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from django.db import connection

from campaigns.models import Campaign, CampaignStatus, Enrollment
from campaigns.selectors import campaign_stats
from campaigns.services import cadence_enroll, cadence_save, campaign_launch, campaign_save
from crm.models import Contact, Tag
from crm.services import contact_get_or_create
from emulators.meta import MetaEmulator
from inbox.models import Channel
from tests.support import wait_until


def test_campaign_reaches_every_contact_once_and_comes_back_read(
    app_server: str,
    celery_worker: None,
    meta_emulator: MetaEmulator,
    tenants: Any,
    channels: dict[str, int],
    committed: Any,
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    run = uuid.uuid4().hex[:6]
    tag = Tag.objects.create(name=f"e2e-{run}")
    phones = [f"+55119{uuid.uuid4().int % 10**8:08d}" for _ in range(25)]
    for phone in phones:
        contact_get_or_create(phone=phone, name="Cliente E2E").tags.add(tag)
    Channel.objects.filter(pk=channels["whatsapp"]).update(rate_limit_per_s=10)  # 3 paced batches
    campaign = campaign_save(
        name=f"E2E {run}",
        channel=Channel.objects.get(pk=channels["whatsapp"]),
        audience={"tags": [tag.pk]},
        kind="template",
        template_name="promo_e2e",
        template_language="pt_BR",
        template_variables=["{{first_name}}"],
        respect_quiet_hours=False,
    )
    campaign_launch(campaign=campaign)

    def all_read() -> bool:
        connection.set_tenant(alpha)
        found = Campaign.objects.get(pk=campaign.pk)
        return found.status == CampaignStatus.COMPLETED and campaign_stats(found)["read"] == 25

    wait_until(all_read, timeout=60, interval=0.5)
    connection.set_tenant(alpha)
    wanted = {p.lstrip("+") for p in phones}
    received = Counter(m["to"] for m in list(meta_emulator.sent.values()) if m["to"] in wanted)
    assert set(received) == wanted and set(received.values()) == {1}  # everyone, once
    sample = next(m for m in meta_emulator.sent.values() if m["to"] in wanted)
    assert sample["type"] == "template" and sample["template"]["name"] == "promo_e2e"
    Channel.objects.filter(pk=channels["whatsapp"]).update(rate_limit_per_s=80)


def test_a_cadence_started_now_sends_its_first_step_without_waiting_for_beat(
    app_server: str,
    celery_worker: None,
    meta_emulator: MetaEmulator,
    tenants: Any,
    channels: dict[str, int],
    committed: Any,
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    contact = contact_get_or_create(phone=phone)
    cadence = cadence_save(
        name=f"E2E cadence {uuid.uuid4().hex[:6]}",
        channel=Channel.objects.get(pk=channels["whatsapp"]),
        respect_quiet_hours=False,
        steps=[{"kind": "template", "template_name": "hello", "template_language": "pt_BR"}],
    )
    cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contact.pk))

    def completed() -> bool:
        connection.set_tenant(alpha)
        return Enrollment.objects.get(cadence=cadence, contact=contact).status == "completed"

    wait_until(completed, timeout=30, interval=0.5, what="the enrollment to complete")
    wait_until(  # the step's message is written when the enrollment completes, and sent just after
        lambda: any(m["to"] == phone.lstrip("+") for m in list(meta_emulator.sent.values())),
        timeout=30,
        what="the first step at the Graph emulator",
    )
