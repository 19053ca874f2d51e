"""Drip cadences: steps on their waits, started in bulk from the contacts table, stopped by a reply or an
opt-out, never sending a step twice."""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import User
from campaigns.cadences import cadence_enroll, cadence_save, cadences_advance, enrollments_stop
from campaigns.models import Cadence, Enrollment, EnrollmentStatus, ExitReason
from crm.models import Contact
from crm.services import contact_get_or_create
from inbox.models import Channel, Message
from inbox.providers import InboundMessage
from inbox.services import inbound_apply
from tenants.models import Tenant
from tests.conftest import tenant_client

pytestmark = pytest.mark.django_db


def _cadence(channels: dict[str, int], name: str, **fields: Any) -> Cadence:
    return cadence_save(
        name=name,
        channel=Channel.objects.get(pk=channels["sms"]),
        respect_quiet_hours=False,
        steps=[
            {"delay_minutes": 0, "kind": "text", "body": "Oi {{first_name}}, tudo bem?"},
            {"delay_minutes": 1440, "kind": "text", "body": "Ainda tem interesse?"},
        ],
        **fields,
    )


def _messages(enrollment: Enrollment) -> list[str]:
    return list(
        Message.objects.filter(
            idempotency_key__startswith=f"cadence:{enrollment.pk}:"
        )  # cadence:<enrollment>:<step key>
        .order_by("id")
        .values_list("body", flat=True)
    )


def _make_due(cadence: Cadence) -> None:
    Enrollment.objects.filter(cadence=cadence, status="active").update(
        next_run_at=timezone.now() - datetime.timedelta(seconds=1)
    )


def test_steps_go_out_on_their_waits_then_the_enrollment_completes(in_tenant_a: Any, channels: dict[str, int]) -> None:
    cadence = _cadence(channels, "Boas-vindas")
    contact = contact_get_or_create(phone="+5511974000001", name="Bia Lima")
    assert cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contact.pk)) == 1
    assert cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contact.pk)) == 0  # already in it
    enrollment = Enrollment.objects.get(cadence=cadence, contact=contact)
    assert cadences_advance() >= 1
    assert _messages(enrollment) == ["Oi Bia, tudo bem?"]
    enrollment.refresh_from_db()
    wait = enrollment.next_run_at - timezone.now()  # type: ignore[operator]
    assert datetime.timedelta(hours=23) < wait <= datetime.timedelta(days=1)
    cadences_advance()
    assert len(_messages(enrollment)) == 1  # not due yet
    _make_due(cadence)
    cadences_advance()
    enrollment.refresh_from_db()
    assert _messages(enrollment) == ["Oi Bia, tudo bem?", "Ainda tem interesse?"]
    assert enrollment.status == EnrollmentStatus.COMPLETED and enrollment.steps_sent == 2
    # After completing, the contact may go through it again.
    assert cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contact.pk)) == 1


def test_a_step_replayed_after_a_crash_is_not_sent_twice(in_tenant_a: Any, channels: dict[str, int]) -> None:
    cadence = _cadence(channels, "Replay")
    contact = contact_get_or_create(phone="+5511974000002")
    cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contact.pk))
    cadences_advance()
    enrollment = Enrollment.objects.get(cadence=cadence, contact=contact)
    first = cadence.steps.order_by("position").first()
    Enrollment.objects.filter(pk=enrollment.pk).update(next_step=first, steps_sent=0)  # the update was lost
    _make_due(cadence)
    cadences_advance()
    assert len(_messages(enrollment)) == 1


def test_a_reply_stops_the_cadence_and_an_opt_out_stops_every_one(
    in_tenant_a: Any, channels: dict[str, int], django_capture_on_commit_callbacks: Any
) -> None:
    stops = _cadence(channels, "Para na resposta")
    keeps = _cadence(channels, "Segue mesmo com resposta", stop_on_reply=False)
    contact = contact_get_or_create(phone="+5511974000003")
    for cadence in (stops, keeps):
        cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contact.pk))
    cadences_advance()
    sms = Channel.objects.get(pk=channels["sms"])

    def inbound(text: str, sid: str) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            inbound_apply(
                channel=sms,
                event=InboundMessage(
                    from_phone=contact.phone, provider_message_id=sid, timestamp=timezone.now(), type="text", body=text
                ),
            )

    inbound("Oi, quero saber mais", "SMreply1")
    assert Enrollment.objects.get(cadence=stops, contact=contact).status == EnrollmentStatus.STOPPED
    assert Enrollment.objects.get(cadence=keeps, contact=contact).status == EnrollmentStatus.ACTIVE
    inbound("PARAR", "SMreply2")
    stopped = Enrollment.objects.get(cadence=keeps, contact=contact)
    assert stopped.status == EnrollmentStatus.STOPPED and stopped.exit_reason == ExitReason.OPTED_OUT
    assert Enrollment.objects.get(cadence=stops, contact=contact).exit_reason == ExitReason.REPLIED
    _make_due(keeps)
    assert cadences_advance() == 0


def test_opted_out_contact_stops_at_the_next_step_and_paused_cadence_waits(
    in_tenant_a: Any, channels: dict[str, int]
) -> None:
    from crm.services import consent_record

    cadence = _cadence(channels, "Pausável")
    contact = contact_get_or_create(phone="+5511974000004")
    cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contact.pk))
    Cadence.objects.filter(pk=cadence.pk).update(is_active=False)
    assert cadences_advance() == 0
    cadence.refresh_from_db()
    with pytest.raises(ValidationError):
        cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contact.pk))
    Cadence.objects.filter(pk=cadence.pk).update(is_active=True)
    consent_record(contact=contact, medium="sms", status="opted_out", source="test")
    cadences_advance()
    enrollment = Enrollment.objects.get(cadence=cadence, contact=contact)
    assert enrollment.status == EnrollmentStatus.STOPPED and enrollment.steps_sent == 0
    assert enrollment.exit_reason == ExitReason.OPTED_OUT


def test_cadence_needs_valid_steps(in_tenant_a: Any, channels: dict[str, int]) -> None:
    sms = Channel.objects.get(pk=channels["sms"])
    with pytest.raises(ValidationError) as no_steps:
        cadence_save(name="vazia", channel=sms, steps=[])
    assert "steps" in no_steps.value.message_dict
    with pytest.raises(ValidationError) as template_on_sms:
        cadence_save(name="t", channel=sms, steps=[{"kind": "template", "template_name": "x"}])
    assert "Step 1" in str(template_on_sms.value) or "Passo 1" in str(template_on_sms.value)


def test_bulk_start_cadence_on_all_matching_and_the_contact_page(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User, agent_a: User, channels: dict[str, int]
) -> None:
    cadence = _cadence(channels, "Reativação")
    for i in range(4):
        contact_get_or_create(phone=f"+55119741{i:05d}", name=f"Reativar {i}")
    other = contact_get_or_create(phone="+5511974199999", name="Fica fora")
    # Starting a cadence for a whole selection is an audience, a manager's (core.roles); one contact is an agent's.
    manager = tenant_client(tenant_a, owner_a, lang="en")
    client = tenant_client(tenant_a, agent_a, lang="en")
    assert 'value="cadence_start"' not in client.get("/contacts/").content.decode()
    table = manager.get("/contacts/").content.decode()
    assert 'value="cadence_start"' in table and "Reativação" in table
    done = manager.post(
        "/contacts/bulk/",
        {"action": "cadence_start", "cadence": cadence.pk, "scope": "all", "filter": urlencode({"q": "Reativar"})},
        follow=True,
    )
    assert "4 contacts started the cadence" in done.content.decode()
    assert Enrollment.objects.filter(cadence=cadence).count() == 4
    refused = manager.post(
        "/contacts/bulk/", {"action": "cadence_start", "cadence": "", "ids": [other.pk]}, follow=True
    )
    assert "Choose a cadence" in refused.content.decode()
    # The contact page: the panel starts and stops it; the timeline tells the story.
    page = client.get(f"/contacts/{other.pk}/").content.decode()
    assert 'data-testid="cadence-panel"' in page and "Not in any cadence" in page
    client.post(f"/contacts/{other.pk}/cadence/", {"cadence": cadence.pk, "next": f"/contacts/{other.pk}/"})
    enrollment = Enrollment.objects.get(cadence=cadence, contact=other)
    cadences_advance()
    page = client.get(f"/contacts/{other.pk}/").content.decode()
    assert "Started cadence Reativação" in page and "Oi Fica, tudo bem?" in page
    client.post(f"/cadences/enrollments/{enrollment.pk}/stop/", {"next": f"/contacts/{other.pk}/"})
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.STOPPED and enrollment.exit_reason == ExitReason.MANUAL
    assert agent_a.get_short_name() in enrollment.exit_detail
    page = client.get(f"/contacts/{other.pk}/").content.decode()
    assert "Cadence Reativação: stopped" in page
    assert enrollments_stop(enrollments=Enrollment.objects.filter(pk=enrollment.pk), reason="again") == 0
