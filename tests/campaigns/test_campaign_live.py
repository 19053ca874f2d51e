"""Live campaign progress as production pushes it: the real worker's runner sends to the Twilio emulator
and the browser's socket (the staff WebSocket of the real ASGI server) receives `campaign.progress`:
counts per state, the current rate and the ETA, ending with the completed campaign's numbers."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from django.db import connection

from accounts.models import Role
from campaigns.models import CampaignStatus
from campaigns.services import campaign_launch, campaign_save
from crm.models import Contact, Tag
from emulators.twilio import TwilioEmulator
from inbox.models import Channel
from tests.core.test_live_socket import _login_cookies, _open
from tests.support import make_member


def test_the_socket_shows_counts_rate_and_eta_while_the_worker_sends(
    app_server: str,
    celery_worker: Any,
    twilio_emulator: TwilioEmulator,
    tenants: Any,
    channels: dict[str, int],
    committed: Any,
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    run = uuid.uuid4().hex[:6]
    email = f"live-campaign-{run}@alpha.test"
    make_member(alpha, email, Role.AGENT)  # progress is for everyone who may see campaigns
    cookies = _login_cookies(app_server, alpha, email)
    tag = Tag.objects.create(name=f"live-{run}")
    base = uuid.uuid4().int % 10**5
    contacts = Contact.objects.bulk_create(
        Contact(phone=f"+5511982{(base * 100 + i) % 10**6:06d}", name=f"Live {i}") for i in range(40)
    )
    tag.contacts.add(*contacts)
    Channel.objects.filter(pk=channels["sms"]).update(rate_limit_per_s=10)  # about 4 s of sending
    try:
        campaign = campaign_save(
            name=f"Live {run}",
            channel=Channel.objects.get(pk=channels["sms"]),
            audience={"tags": [tag.pk]},
            body="Oi {{first_name}}",
            respect_quiet_hours=False,
            dedupe_hours=0,
        )
        events: list[dict[str, Any]] = []
        with _open(app_server, alpha, cookies) as sock:
            campaign_launch(campaign=campaign)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                message = json.loads(sock.recv(timeout=20))
                payload = message["payload"]
                if message["event"] != "campaign.progress" or payload.get("campaign_id") != campaign.pk:
                    continue
                events.append(payload)
                if payload["status"] == CampaignStatus.COMPLETED and payload["counts"]["sent"] == 40:
                    break
    finally:
        Channel.objects.filter(pk=channels["sms"]).update(rate_limit_per_s=80)
    assert events and events[-1]["status"] == "completed", events[-3:]
    assert events[-1]["counts"]["total"] == 40 and events[-1]["progress"] == 100
    sending = [e for e in events if e["status"] == "running" and e["counts"]["pending"] + e["counts"]["sending"]]
    assert len(sending) >= 2  # several updates while it ran (at most one a second each)
    assert any(e["rate_per_s"] > 0 and e["eta_s"] for e in sending), [
        (e["status"], e["counts"], e["rate_per_s"], e["eta_s"]) for e in events
    ]
    processed = [e["processed"] for e in events]
    assert processed == sorted(processed)  # the numbers only grow
    sent_here = [m for m in twilio_emulator.sent.values() if m["to"] in {c.phone for c in contacts}]
    assert len(sent_here) == 40
