"""Voice fixtures: Retell settings per tenant (keys the emulator accepts), agents synced to the emulator,
and Retell webhooks signed as Retell signs them."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection
from django.test import Client

from emulators.retell import RetellEmulator, sign
from tenants.models import Tenant
from tests.conftest import RETELL_KEY, TWILIO_SID, TWILIO_TOKEN
from voice.models import VoiceAgent, VoiceSettings
from voice.services import voice_agent_create, voice_api_key_set, voice_twilio_set

FIXTURES = Path(__file__).parent / "fixtures"
BETA_KEY = "key_beta_retell_test"
AGENT_NUMBER = "+5511930000001"


def fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text()))


def retell_event(event: str, call_id: str, **changes: Any) -> dict[str, Any]:
    """A webhook body built from the fixture: call_ended, or call_started / call_analyzed derived from it."""
    payload = copy.deepcopy(fixture("call_ended.json"))
    call = payload["call"]
    call["call_id"] = call_id
    if event == "call_started":
        for key in ("end_timestamp", "duration_ms", "disconnection_reason", "transcript", "transcript_object"):
            call.pop(key, None)
        call.pop("recording_url", None)
        call["call_status"] = "ongoing"
    if event == "call_analyzed":
        call["call_analysis"] = {
            "call_summary": "Cliente pediu retorno amanhã.",
            "user_sentiment": "Positive",
            "call_successful": True,
            "in_voicemail": False,
        }
    call.update(changes)
    payload["event"] = event
    return payload


def post_retell(route: str, payload: dict[str, Any] | bytes, key: str | None, *, at_ms: int | None = None) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {} if key is None else {"HTTP_X_RETELL_SIGNATURE": sign(body, key, at_ms)}
    return Client(HTTP_HOST="localhost").post(
        f"/webhooks/retell/{route}/", data=body, content_type="application/json", **headers
    )


@pytest.fixture
def voice_a(in_tenant_a: Tenant, retell_emulator: RetellEmulator) -> VoiceSettings:
    """Alpha's Retell settings with the test key and the Twilio voice account (the connection stays in alpha)."""
    voice_api_key_set(api_key=RETELL_KEY)
    return voice_twilio_set(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN)


@pytest.fixture
def retell_quiet(retell_emulator: RetellEmulator) -> Iterator[RetellEmulator]:
    """Calls made by tests whose data is rolled back must not call the live server back: it would make
    committed rows for them."""
    retell_emulator.send_webhooks = False
    yield retell_emulator
    retell_emulator.send_webhooks = True


@pytest.fixture
def retell_script(retell_emulator: RetellEmulator) -> Iterator[RetellEmulator]:
    """The emulator, with whatever a test scripted (errors, delays) cleared afterwards."""
    yield retell_emulator
    httpx.post(f"{retell_emulator.base_url}/_emulator/reset")
    retell_emulator.strict_numbers = False


@pytest.fixture
def agent(voice_a: VoiceSettings) -> VoiceAgent:
    return voice_agent_create(
        name="Ana (vendas)",
        prompt="Você é a Ana, da loja. Agende demonstrações.",
        begin_message="Olá! Aqui é a Ana.",
        voice_id="11labs-Adrian",
        language="pt-BR",
        from_number=AGENT_NUMBER,
    )


def in_schema(tenant: Tenant) -> None:
    connection.set_tenant(tenant)


def now_ms() -> int:
    return int(time.time() * 1000)
