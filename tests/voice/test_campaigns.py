"""Voice campaigns through the real services, the Retell emulator and Retell's signed webhooks: never more
calls in progress than the limit, a no-answer, a busy line and a voicemail called again once after the
delay (and not before), every other contact called exactly once, a contact who refused calls skipped,
results per recipient."""

from __future__ import annotations

import datetime
import functools
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from campaigns.models import QuietHours
from crm.models import ConsentStatus, Contact, Medium, Tag
from crm.services import consent_record
from emulators.retell import RetellEmulator
from tenants.models import Tenant
from tests.conftest import RETELL_KEY
from tests.voice.conftest import post_retell, retell_event
from voice.campaigns import voice_campaign_launch, voice_campaign_pause, voice_campaign_save, voice_campaigns_due_fill
from voice.models import (
    FINAL_STATUSES,
    Call,
    CallStatus,
    VoiceAgent,
    VoiceCampaign,
    VoiceCampaignStatus,
    VoiceOutcome,
    VoiceRecipientStatus,
    VoiceSettings,
)
from voice.outbound import call_place

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_quiet_hours(in_tenant_a: Any) -> None:
    QuietHours.objects.update_or_create(pk=1, defaults={"enabled": False})


@pytest.fixture
def commit(django_capture_on_commit_callbacks: Any) -> Callable[[Callable[[], Any]], None]:
    """Do something, then what production does after its commit (events, fills), round after round;
    the `voice` queue's placing tasks are left out: the test runs their body (call_place) itself."""

    def run(action: Callable[[], Any]) -> None:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            action()
        pending = list(callbacks)
        while pending:
            callback = pending.pop(0)
            if "_place_on_commit" in getattr(callback, "__qualname__", ""):
                continue
            with django_capture_on_commit_callbacks(execute=False) as more:
                callback()
            pending.extend(more)

    return run


def new_contact(prefix: str, name: str) -> Contact:
    return Contact.objects.create(phone=f"{prefix}{uuid.uuid4().int % 10**4:04d}", name=name)


def in_progress(campaign: VoiceCampaign) -> int:
    return Call.objects.filter(voice_campaign=campaign).exclude(status__in=list(FINAL_STATUSES)).count()


def test_a_campaign_keeps_to_its_limit_retries_a_no_answer_once_after_the_delay_and_skips_a_refusal(
    agent: VoiceAgent,
    voice_a: VoiceSettings,
    tenant_a: Tenant,
    retell_quiet: RetellEmulator,
    commit: Callable[[Callable[[], Any]], None],
) -> None:
    run = uuid.uuid4().hex[:6]
    tag = Tag.objects.create(name=f"ligar-{run}")
    people = [new_contact(f"+55119874{i}", f"P{i}") for i in range(6)]
    outsider = Contact.objects.create(phone="+5511987499999", name="Fora")
    for person in people:
        person.tags.add(tag)
    refused = people[5]
    consent_record(contact=refused, medium=Medium.VOICE, status=ConsentStatus.OPTED_OUT, source="asked")
    # what each contact's calls end as, in order (absent: answered)
    script = {people[1].pk: ["dial_no_answer", "user_hangup"], people[3].pk: ["dial_busy", "dial_busy"]}

    with pytest.raises(ValidationError):
        voice_campaign_save(name="x", agent=agent, max_concurrent=0)
    campaign = voice_campaign_save(
        name=f"Reativação {run}", agent=agent, audience={"tags": [tag.pk]}, max_concurrent=2, retries=1,
        retry_delay_minutes=30,
    )  # fmt: skip
    emulator_before = len(retell_quiet.calls)
    commit(lambda: voice_campaign_launch(campaign=campaign))
    assert campaign.recipients.count() == 6 and not campaign.recipients.filter(contact=outsider).exists()

    highest, ended = 0, 0

    def place_due() -> None:
        nonlocal highest
        for call in Call.objects.filter(voice_campaign=campaign, status=CallStatus.QUEUED):
            assert call_place(call_id=call.pk) == "placed"
        highest = max(highest, in_progress(campaign))

    def end_one() -> bool:
        nonlocal ended
        call = Call.objects.filter(voice_campaign=campaign, status=CallStatus.REGISTERED).order_by("pk").first()
        if call is None:
            return False
        reasons = script.get(call.contact_id) or []
        reason = reasons.pop(0) if reasons else "user_hangup"
        status = "ended" if reason == "user_hangup" else "not_connected"
        payload = retell_event("call_ended", str(call.retell_call_id), disconnection_reason=reason, call_status=status)
        commit(lambda: post_retell(voice_a.webhook_route, payload, RETELL_KEY))
        connection.set_tenant(tenant_a)
        ended += 1
        return True

    place_due()
    while end_one():
        place_due()
    assert highest == 2  # the limit was used, and never passed

    first = campaign.recipients.get(contact=people[1])
    assert (first.status, first.outcome, first.attempts) == (VoiceRecipientStatus.PENDING, VoiceOutcome.NO_ANSWER, 1)
    assert first.next_attempt_at is not None
    assert first.next_attempt_at > timezone.now() + datetime.timedelta(minutes=29)  # not before the delay
    commit(voice_campaigns_due_fill)
    assert Call.objects.filter(voice_campaign=campaign, contact=people[1]).count() == 1
    campaign.refresh_from_db()
    assert campaign.status == VoiceCampaignStatus.RUNNING

    campaign.recipients.filter(status=VoiceRecipientStatus.PENDING).update(next_attempt_at=timezone.now())  # delay over
    commit(voice_campaigns_due_fill)
    place_due()
    while end_one():
        place_due()
    assert highest == 2

    calls_per_contact = {p.pk: Call.objects.filter(voice_campaign=campaign, contact=p).count() for p in people}
    assert calls_per_contact == {
        people[0].pk: 1, people[1].pk: 2, people[2].pk: 1, people[3].pk: 2, people[4].pk: 1, refused.pk: 0,
    }  # fmt: skip
    assert len(retell_quiet.calls) - emulator_before == 7 == ended  # each placed at Retell once
    results = {r.contact_id: (r.status, r.outcome, r.attempts) for r in campaign.recipients.all()}
    assert results[people[1].pk] == (VoiceRecipientStatus.DONE, VoiceOutcome.ANSWERED, 2)
    assert results[people[3].pk] == (VoiceRecipientStatus.DONE, VoiceOutcome.BUSY, 2)  # retried once, then final
    assert results[people[0].pk] == (VoiceRecipientStatus.DONE, VoiceOutcome.ANSWERED, 1)
    assert results[refused.pk] == (VoiceRecipientStatus.SKIPPED, VoiceOutcome.OPTED_OUT, 0)
    # the campaign's own retries, not the single call's (no retry_of rows)
    assert not Call.objects.filter(voice_campaign=campaign, retry_of__isnull=False).exists()
    campaign.refresh_from_db()
    assert campaign.status == VoiceCampaignStatus.DONE and campaign.finished_at is not None


def test_a_paused_campaign_starts_no_call_and_a_voicemail_is_retried(
    agent: VoiceAgent,
    voice_a: VoiceSettings,
    tenant_a: Tenant,
    retell_quiet: RetellEmulator,
    commit: Callable[[Callable[[], Any]], None],
) -> None:
    tag = Tag.objects.create(name=f"pausa-{uuid.uuid4().hex[:6]}")
    people = [new_contact(f"+55119875{i}", f"Q{i}") for i in range(3)]
    for person in people:
        person.tags.add(tag)
    campaign = voice_campaign_save(name="Pausa", agent=agent, audience={"tags": [tag.pk]}, max_concurrent=1, retries=2)
    commit(lambda: voice_campaign_launch(campaign=campaign))
    call = Call.objects.get(voice_campaign=campaign)
    assert call_place(call_id=call.pk) == "placed"
    voice_campaign_pause(campaign=campaign)
    call.refresh_from_db()
    payload = retell_event("call_ended", str(call.retell_call_id), disconnection_reason="voicemail_reached")
    commit(lambda: post_retell(voice_a.webhook_route, payload, RETELL_KEY))
    connection.set_tenant(tenant_a)
    assert Call.objects.filter(voice_campaign=campaign).count() == 1  # paused: nothing new
    recipient = campaign.recipients.get(contact=call.contact)
    assert (recipient.status, recipient.outcome) == (VoiceRecipientStatus.PENDING, VoiceOutcome.VOICEMAIL)
    with pytest.raises(ValidationError):
        voice_campaign_launch(campaign=campaign)  # launched already


def test_the_pages_create_launch_list_and_pause_a_campaign_in_portuguese(
    agent: VoiceAgent,
    voice_a: VoiceSettings,
    tenant_a: Tenant,
    retell_quiet: RetellEmulator,
    commit: Callable[[Callable[[], Any]], None],
) -> None:
    from accounts.models import Role
    from tests.conftest import tenant_client
    from tests.support import make_member

    tag = Tag.objects.create(name=f"pagina-{uuid.uuid4().hex[:6]}")
    people = [new_contact(f"+55119876{i}", f"Página {i}") for i in range(3)]
    for someone in people:
        someone.tags.add(tag)
    owner = make_member(tenant_a, f"vc-owner-{uuid.uuid4().hex[:6]}@alpha.test", Role.ADMIN)
    reader = make_member(tenant_a, f"vc-agent-{uuid.uuid4().hex[:6]}@alpha.test", Role.AGENT)
    client = tenant_client(tenant_a, owner, lang="pt-br")
    form = client.get("/voice/campaigns/new/").content.decode()
    assert "Nova campanha de voz" in form and f'value="{agent.pk}"' in form
    bad = client.post("/voice/campaigns/new/", {"name": "", "agent": agent.pk, "max_concurrent": 0, "retries": 1})
    assert bad.status_code == 400 and "Dê um nome à campanha." in bad.content.decode()
    saved = client.post(
        "/voice/campaigns/new/",
        {"name": "Reativar", "agent": agent.pk, "tags": [tag.pk], "max_concurrent": 1, "retries": 2,
         "retry_delay_minutes": 45},
    )  # fmt: skip
    assert saved.status_code == 302
    connection.set_tenant(tenant_a)
    campaign = VoiceCampaign.objects.get(name="Reativar")
    assert (campaign.audience, campaign.max_concurrent, campaign.retries) == ({"tags": [tag.pk]}, 1, 2)
    assert tenant_client(tenant_a, reader).post(f"/voice/campaigns/{campaign.pk}/launch/").status_code == 403
    commit(lambda: client.post(f"/voice/campaigns/{campaign.pk}/launch/"))
    connection.set_tenant(tenant_a)
    assert Call.objects.filter(voice_campaign=campaign).count() == 1  # one at once
    page = client.get(f"/voice/campaigns/{campaign.pk}/").content.decode()
    assert page.count('data-testid="voice-recipient-row"') == 3 and "Em andamento" in page
    assert "até 2 vezes, com 45 minutos de intervalo" in page and "Ligando" in page
    assert client.post(f"/voice/campaigns/{campaign.pk}/pause/").status_code == 302
    connection.set_tenant(tenant_a)
    campaign.refresh_from_db()
    assert campaign.status == VoiceCampaignStatus.PAUSED
    listing = client.get("/voice/campaigns/").content.decode()
    assert "Reativar" in listing and "Pausado" in listing


def test_a_busy_line_and_a_voicemail_as_retell_reports_them_are_called_again_after_the_delay(
    agent: VoiceAgent,
    voice_a: VoiceSettings,
    tenant_a: Tenant,
    retell_quiet: RetellEmulator,
    retell_script: RetellEmulator,
    commit: Callable[[Callable[[], Any]], None],
) -> None:
    """The Retell emulator ends each call as scripted for its number (a busy line: `not_connected` with
    `dial_busy` and nothing said; a voicemail: `ended` with `voicemail_reached`); the call_ended it would
    send reaches the signed webhook. Each is called again once the delay has passed, not a minute before."""
    import httpx
    import time_machine

    busy, voicemail = new_contact("+55119877", "Ocupado"), new_contact("+55119878", "Caixa")
    tag = Tag.objects.create(name=f"ocupado-{uuid.uuid4().hex[:6]}")
    for person in (busy, voicemail):
        person.tags.add(tag)
    for person, reason in ((busy, "dial_busy"), (voicemail, "voicemail_reached")):
        httpx.post(
            f"{retell_script.base_url}/_emulator/outcomes",
            json={"to_number": person.phone, "outcomes": [{"disconnection_reason": reason}]},
        ).raise_for_status()
    campaign = voice_campaign_save(
        name="Ocupado", agent=agent, audience={"tags": [tag.pk]}, max_concurrent=2, retries=1, retry_delay_minutes=30
    )
    commit(lambda: voice_campaign_launch(campaign=campaign))

    def place_and_end() -> list[Call]:
        """Place the queued calls at Retell, then deliver the call_ended Retell sends for each."""
        ended = []
        for call in Call.objects.filter(voice_campaign=campaign, status=CallStatus.QUEUED).order_by("pk"):
            assert call_place(call_id=call.pk) == "placed"
            call.refresh_from_db()
            remote = {k: v for k, v in retell_quiet.calls[str(call.retell_call_id)].items() if k != "call_analysis"}
            payload = {"event": "call_ended", "call": remote}
            commit(functools.partial(post_retell, voice_a.webhook_route, payload, RETELL_KEY))
            connection.set_tenant(tenant_a)
            call.refresh_from_db()
            ended.append(call)
        return ended

    first = {call.contact_id: call for call in place_and_end()}
    assert (first[busy.pk].status, first[busy.pk].disconnection_reason) == (CallStatus.NOT_CONNECTED, "dial_busy")
    assert first[busy.pk].duration_ms in (None, 0) and first[busy.pk].transcript == ""
    assert (first[voicemail.pk].status, first[voicemail.pk].disconnection_reason) == (
        CallStatus.ENDED,
        "voicemail_reached",
    )
    waiting = {r.contact_id: r for r in campaign.recipients.all()}
    assert (waiting[busy.pk].status, waiting[busy.pk].outcome) == (VoiceRecipientStatus.PENDING, VoiceOutcome.BUSY)
    assert (waiting[voicemail.pk].status, waiting[voicemail.pk].outcome) == (
        VoiceRecipientStatus.PENDING,
        VoiceOutcome.VOICEMAIL,
    )
    due = waiting[busy.pk].next_attempt_at
    assert due is not None and abs((due - timezone.now()).total_seconds() - 30 * 60) < 60

    with time_machine.travel(due - datetime.timedelta(minutes=1), tick=True):
        commit(voice_campaigns_due_fill)
    assert Call.objects.filter(voice_campaign=campaign).count() == 2  # a minute early: nobody called again

    with time_machine.travel(due + datetime.timedelta(seconds=5), tick=True):
        commit(voice_campaigns_due_fill)
        second = {call.contact_id: call for call in place_and_end()}
    assert set(second) == {busy.pk, voicemail.pk}
    assert all(
        call.status == CallStatus.ENDED and call.disconnection_reason == "user_hangup" for call in second.values()
    )
    results = {r.contact_id: (r.status, r.outcome, r.attempts) for r in campaign.recipients.all()}
    assert results == {
        busy.pk: (VoiceRecipientStatus.DONE, VoiceOutcome.ANSWERED, 2),
        voicemail.pk: (VoiceRecipientStatus.DONE, VoiceOutcome.ANSWERED, 2),
    }
    campaign.refresh_from_db()
    assert campaign.status == VoiceCampaignStatus.DONE

    from voice.selectors import voice_campaign_stats

    stats = voice_campaign_stats(campaign)
    assert (stats["calls"], stats["answered"], stats["calls_in_progress"]) == (4, 2, 0)
