"""A contact known only by a WhatsApp user id (no phone) is never dialled: the member is told why."""

from __future__ import annotations

import pytest

from accounts.models import User
from crm.services import contact_resolve
from emulators.retell import RetellEmulator
from tenants.models import Tenant
from tests.conftest import tenant_client
from voice.models import Call, VoiceAgent

pytestmark = pytest.mark.django_db


def test_a_contact_without_phone_is_not_called_and_the_reason_is_shown(
    agent: VoiceAgent, tenant_a: Tenant, owner_a: User, retell_emulator: RetellEmulator
) -> None:
    contact = contact_resolve(scope="412300000000009", bsuid="BR.77001234567", username="so.whatsapp")
    assert contact is not None and contact.phone is None
    calls_before = len(retell_emulator.calls)
    response = tenant_client(tenant_a, owner_a, lang="en").post(
        "/calls/start/", {"contact": contact.pk, "agent": agent.pk}, follow=True
    )
    assert "This contact has no phone number to call." in response.content.decode()
    assert not Call.objects.filter(contact=contact).exists()
    assert len(retell_emulator.calls) == calls_before  # Retell was never asked to dial
