"""LGPD erase reaches past the contact row: the raw provider payloads that mention the person (on this
tenant's routes), and the voice app's transcripts and recording links (through `contact.erased`)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection

from accounts.models import AuditAction, AuditEntry, User
from crm.models import Contact
from inbox.ingest import drain_batch
from intake.models import WebhookEvent
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.messaging import inbound, meta_envelope, meta_messages_value, post_meta, status, store_meta
from voice.models import Call, CallDirection, CallStatus

pytestmark = pytest.mark.django_db

PHONE = "+5511970000402"


def _wamid() -> str:
    return f"wamid.{uuid.uuid4().hex}"


def test_erase_removes_raw_payloads_transcripts_and_recordings(
    tenant_a: Tenant, owner_a: User, channels: dict[str, int], django_capture_on_commit_callbacks: Any
) -> None:
    theirs, someone_else = _wamid(), _wamid()
    body = meta_envelope(meta_messages_value(messages=[inbound("text", theirs, sender=PHONE[1:])], sender=PHONE[1:]))
    assert post_meta(body).status_code == 200
    other = inbound("text", someone_else, sender="5511970000999")
    post_meta(meta_envelope(meta_messages_value(messages=[other], sender="5511970000999")))
    # a status addressed to the old 8-digit WhatsApp id of the same mobile
    old_style = _wamid()
    post_meta(meta_envelope(meta_messages_value(statuses=[status("read", old_style, recipient="551170000402")])))
    drain_batch()
    connection.set_tenant(tenant_a)
    contact = Contact.objects.get(phone=PHONE)
    call = Call.objects.create(
        contact=contact,
        direction=CallDirection.INBOUND,
        from_number=PHONE,
        to_number="+5511930000001",
        status=CallStatus.ENDED,
        transcript="Agent: Olá\nUser: meu CPF é 123",
        transcript_object=[{"role": "user", "content": "meu CPF é 123"}],
        recording_url="https://retell.example/recordings/abc.wav",
        summary="Cliente passou o CPF",
    )
    connection.set_schema_to_public()

    with django_capture_on_commit_callbacks(execute=True):
        response = tenant_client(tenant_a, owner_a).post(f"/contacts/{contact.pk}/erase/")
    assert response.status_code == 302

    erased = WebhookEvent.objects.get(provider="meta", event_id=f"msg:{theirs}")
    assert erased.payload == {} and erased.outcome == "erased"
    assert WebhookEvent.objects.get(event_id=f"st:{old_style}:read").payload == {}
    assert WebhookEvent.objects.get(event_id=f"msg:{someone_else}").payload != {}  # not theirs: kept
    connection.set_tenant(tenant_a)
    call.refresh_from_db()
    assert (call.transcript, call.transcript_object, call.recording_url, call.summary, call.from_number) == (
        "",
        [],
        "",
        "",
        "",
    )
    assert call.to_number == "+5511930000001"  # the business's own number is not personal data
    connection.set_schema_to_public()
    entry = AuditEntry.objects.get(action=AuditAction.ERASE, tenant=tenant_a)
    assert entry.actor == owner_a and PHONE[1:] not in entry.target_label + str(entry.metadata)

    # the provider redelivers the erased message: the id still refuses it, nothing is stored again
    # (store_meta: the erasure is not committed, so the redelivery runs on the test's connection)
    assert store_meta(body) == 0
    assert WebhookEvent.objects.filter(provider="meta", event_id=f"msg:{theirs}").count() == 1
    assert WebhookEvent.objects.get(provider="meta", event_id=f"msg:{theirs}").payload == {}
