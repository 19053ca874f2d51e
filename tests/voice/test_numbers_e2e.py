"""A number set up from the app, end to end through the `twilio` package and the emulators: search and buy
(Brazil first), webhooks set, imported into Retell, caller ID verified, and a test call that Twilio rings
into the real app server, until the preflight is all green."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import translation

from emulators.retell import RetellEmulator
from emulators.twilio import TwilioEmulator
from tenants.models import Tenant
from tests.conftest import RETELL_KEY, TWILIO_SID, TWILIO_TOKEN, tenant_client
from tests.support import make_member, wait_until
from voice.models import Call, CallDirection
from voice.numbers import (
    twilio_numbers_list,
    twilio_numbers_search,
    voice_number_buy,
    voice_number_caller_id_check,
    voice_number_caller_id_verify,
    voice_number_preflight,
    voice_number_retell_import,
    voice_number_test_call,
)
from voice.services import voice_agent_create, voice_api_key_set, voice_twilio_set, voice_webhook_urls


def greens(checks: list[Any]) -> dict[str, bool]:
    return {check.key: check.ok for check in checks}


def test_a_number_bought_in_the_app_passes_the_preflight(
    app_server: str,
    tenants: Any,
    committed: Any,
    twilio_emulator: TwilioEmulator,
    retell_emulator: RetellEmulator,
) -> None:
    from accounts.models import Role

    alpha: Tenant = tenants[0]
    connection.set_tenant(alpha)
    voice_api_key_set(api_key=RETELL_KEY)
    row = voice_twilio_set(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, sip_termination_uri="alpha.pstn.twilio.com")
    agent = voice_agent_create(
        name=f"Recepção {uuid.uuid4().hex[:6]}", prompt="Atenda.", voice_id="11labs-Adrian", direction="inbound"
    )
    found = twilio_numbers_search(country="BR", area_code="11")
    assert found and all(n.iso_country == "BR" and n.phone_number.startswith("+5511") for n in found)
    with translation.override("en"), pytest.raises(ValidationError) as taken:
        voice_number_buy(phone_number="+15005550000")  # not on sale
    assert "21422" in " ".join(taken.value.messages)

    number = voice_number_buy(phone_number=found[0].phone_number, agent=agent)
    urls = voice_webhook_urls(row=row)
    on_twilio = twilio_emulator.number_settings[number.e164]
    assert (on_twilio["voice_url"], on_twilio["status_callback"]) == (urls["twilio"], urls["twilio_status"])
    assert number.e164 in {n.phone_number for n in twilio_numbers_list()}
    assert greens(voice_number_preflight(number=number)) == {
        "agent": True,
        "webhooks": True,
        "retell": False,
        "answering": False,
    }

    voice_number_retell_import(number=number)
    assert retell_emulator.phone_numbers[number.e164]["inbound_agent_id"] == agent.retell_agent_id
    assert voice_number_caller_id_verify(number=number)  # the code Twilio's call asks for
    assert voice_number_caller_id_check(number=number).caller_id_verified_at is not None

    voice_number_test_call(number=number)  # Twilio rings the number's Voice URL: the app answers
    rung = Call.objects.filter(twilio_call_sid=number.last_test_call_sid)
    wait_until(lambda: rung.exclude(retell_call_id=None, fallback_cause="").exists(), timeout=20)  # answered
    checks = voice_number_preflight(number=number)
    assert all(check.ok for check in checks), [(c.key, c.label, c.fix) for c in checks]
    test_call = Call.objects.get(twilio_call_sid=number.last_test_call_sid)
    assert test_call.agent_id == agent.pk and test_call.retell_call_id in retell_emulator.calls

    connection.set_schema_to_public()
    manager = make_member(alpha, f"mgr-{uuid.uuid4().hex[:8]}@alpha.test", Role.ADMIN)
    client = tenant_client(alpha, manager, lang="en")
    page = client.get(f"/voice/numbers/{number.pk}/").content.decode()
    assert "Can this number take calls?" in page and 'data-ok="false"' not in page
    assert page.count('data-ok="true"') == 5 and 'data-testid="caller-id-verified"' in page
    listing = client.get("/voice/numbers/?search=1&country=BR").content.decode()
    assert number.e164 in listing and 'data-testid="available-row"' in listing
    api = client.get(f"/api/v1/voice-numbers/{number.pk}/preflight/")
    assert api.status_code == 200 and {c["key"] for c in api.json()} >= {"agent", "webhooks", "retell"}

    # A test call the webhook took but Retell has not answered yet is not called a success.
    connection.set_tenant(alpha)
    ringing_sid = f"CA{uuid.uuid4().hex}"
    Call.objects.create(
        twilio_call_sid=ringing_sid,
        direction=CallDirection.INBOUND,
        from_number="+5511999990000",
        to_number=number.e164,
    )
    number.last_test_call_sid = ringing_sid
    number.save(update_fields=["last_test_call_sid"])
    with translation.override("en"):
        pending = {c.key: c for c in voice_number_preflight(number=number)}
    assert pending["answering"].ok and not pending["test_call"].ok
    assert "still being put through" in pending["test_call"].label
