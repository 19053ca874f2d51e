"""A voice campaign as production runs it: launched from its page, calls placed by the real worker on the
`voice` queue at the Retell emulator, whose signed webhooks reach the app server; each CALL_ENDED starts
the next call. Sampled all along, the campaign never has more calls in progress than its limit."""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.db import connection

from accounts.models import Role
from campaigns.models import QuietHours
from crm.models import Contact, Tag
from emulators.retell import RetellEmulator
from tenants.models import Tenant
from tests.conftest import RETELL_KEY, tenant_client
from tests.support import make_member
from voice.campaigns import voice_campaign_save
from voice.models import FINAL_STATUSES, Call, VoiceCampaign, VoiceCampaignStatus, VoiceOutcome
from voice.services import voice_agent_create, voice_api_key_set


def test_a_campaign_on_the_worker_calls_everyone_once_never_more_than_two_at_once(
    app_server: str, tenants: Any, retell_emulator: RetellEmulator, committed: Any, celery_worker: Any
) -> None:
    alpha: Tenant = tenants[0]
    connection.set_tenant(alpha)
    run = uuid.uuid4().hex[:6]
    QuietHours.objects.update_or_create(pk=1, defaults={"enabled": False})
    voice_api_key_set(api_key=RETELL_KEY)
    agent = voice_agent_create(
        name=f"Campanha {run}", prompt="Ligue.", voice_id="11labs-Adrian", from_number="+5511930000091",
        direction="outbound",
    )  # fmt: skip
    tag = Tag.objects.create(name=f"campanha-{run}")
    people = [
        Contact.objects.create(phone=f"+55119877{i}{uuid.uuid4().int % 10**4:04d}", name=f"C{i}") for i in range(6)
    ]
    for someone in people:
        someone.tags.add(tag)
    campaign = voice_campaign_save(name=f"E2E {run}", agent=agent, audience={"tags": [tag.pk]}, max_concurrent=2)
    owner = make_member(alpha, f"vc-e2e-{run}@alpha.test", Role.OWNER)
    assert tenant_client(alpha, owner).post(f"/voice/campaigns/{campaign.pk}/launch/").status_code == 302

    connection.set_tenant(alpha)
    highest, deadline = 0, time.monotonic() + 90
    while time.monotonic() < deadline:
        calls = Call.objects.filter(voice_campaign_id=campaign.pk)
        highest = max(highest, calls.exclude(status__in=list(FINAL_STATUSES)).count())
        campaign.refresh_from_db()
        if campaign.status == VoiceCampaignStatus.DONE:
            break
        time.sleep(0.02)
    assert campaign.status == VoiceCampaignStatus.DONE, list(campaign.recipients.values("status", "outcome"))
    assert highest == 2  # the limit was reached and never passed
    phones = {str(p.phone) for p in people}
    at_retell = [c for c in list(retell_emulator.calls.values()) if c.get("to_number") in phones]
    assert sorted(str(c["to_number"]) for c in at_retell) == sorted(phones)  # each contact called exactly once
    outcomes = set(campaign.recipients.values_list("outcome", flat=True))
    assert outcomes == {VoiceOutcome.ANSWERED}
    assert VoiceCampaign.objects.get(pk=campaign.pk).finished_at is not None
