"""The Retell client against the emulator over real HTTP, the signature check, and agent sync."""

from __future__ import annotations

import httpx
import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from emulators.retell import RetellEmulator, sign
from tests.conftest import RETELL_KEY
from tests.voice.conftest import AGENT_NUMBER, now_ms
from voice.models import VoiceAgent, VoiceSettings
from voice.retell import PERMANENT, RETRYABLE, LlmSpec, RetellClient, RetellError, signature_valid
from voice.services import voice_agent_create, voice_agent_update

pytestmark = pytest.mark.django_db

BODY = b'{"event":"call_started","call":{"call_id":"call_1"}}'


def test_signature_good_bad_stale_missing() -> None:
    now = now_ms()
    good = sign(BODY, RETELL_KEY, now)
    assert signature_valid(BODY, RETELL_KEY, good, now_ms=now)
    assert signature_valid(BODY, RETELL_KEY, good, now_ms=now + 299_000)  # inside the 5-minute window
    assert not signature_valid(BODY, RETELL_KEY, good, now_ms=now + 301_000)  # stale
    assert not signature_valid(BODY, RETELL_KEY, sign(BODY, RETELL_KEY, now - 400_000), now_ms=now)
    assert not signature_valid(BODY, "another-key", good, now_ms=now)  # bad key
    assert not signature_valid(BODY + b" ", RETELL_KEY, good, now_ms=now)  # body changed after signing
    assert not signature_valid(BODY, RETELL_KEY, "", now_ms=now)  # missing
    assert not signature_valid(BODY, "", good, now_ms=now)  # no key configured
    assert not signature_valid(BODY, RETELL_KEY, f"v={now},d=zz", now_ms=now)  # malformed
    assert not signature_valid(BODY, RETELL_KEY, good.replace("v=", "t="), now_ms=now)


def test_client_errors_are_classified(retell_emulator: RetellEmulator) -> None:
    with pytest.raises(RetellError) as unknown_agent:
        RetellClient(RETELL_KEY).update_agent("agent_missing", _spec())
    assert (unknown_agent.value.status, unknown_agent.value.kind) == (404, PERMANENT)
    httpx.post(f"{retell_emulator.base_url}/_emulator/errors", json={"status": 429})
    with pytest.raises(RetellError) as limited:
        RetellClient(RETELL_KEY).create_retell_llm(LlmSpec(general_prompt="x"))
    assert (limited.value.status, limited.value.kind, limited.value.retryable) == (429, RETRYABLE, True)
    httpx.post(f"{retell_emulator.base_url}/_emulator/errors", json={"status": 500})
    with pytest.raises(RetellError) as broken:
        RetellClient(RETELL_KEY).get_call("call_x")
    assert broken.value.kind == RETRYABLE
    retell_emulator.api_keys = {RETELL_KEY}
    try:
        with pytest.raises(RetellError) as bad_key:
            RetellClient("key_not_known").get_call("call_x")
    finally:
        retell_emulator.api_keys = None
    assert (bad_key.value.status, bad_key.value.kind) == (401, PERMANENT)
    assert "key_not_known" not in str(bad_key.value)
    with pytest.raises(RetellError) as no_key:
        RetellClient("").get_call("call_x")
    assert no_key.value.kind == PERMANENT


def _spec() -> object:
    from voice.retell import AgentSpec

    return AgentSpec(llm_id="llm_x", voice_id="v", agent_name="n", language="pt-BR", webhook_url="http://x/")


def test_agent_sync_creates_then_updates_llm_and_agent(voice_a: VoiceSettings, retell_emulator: RetellEmulator) -> None:
    agent = voice_agent_create(
        name="Bia", prompt="Seja gentil.", begin_message="Oi!", voice_id="11labs-Adrian", from_number=AGENT_NUMBER
    )
    assert agent.pk and agent.retell_agent_id.startswith("agent_") and agent.retell_llm_id.startswith("llm_")
    remote_agent = retell_emulator.agents[agent.retell_agent_id]
    remote_llm = retell_emulator.llms[agent.retell_llm_id]
    assert remote_agent["response_engine"] == {"type": "retell-llm", "llm_id": agent.retell_llm_id}
    assert remote_agent["webhook_url"].endswith(f"/webhooks/retell/{voice_a.webhook_route}/")
    assert (remote_agent["language"], remote_agent["agent_name"]) == ("pt-BR", "Bia")
    assert (remote_llm["general_prompt"], remote_llm["begin_message"]) == ("Seja gentil.", "Oi!")

    agents_before, llms_before = len(retell_emulator.agents), len(retell_emulator.llms)
    voice_agent_update(agent=agent, prompt="Seja breve.", name="Bia 2")
    assert (len(retell_emulator.agents), len(retell_emulator.llms)) == (agents_before, llms_before)  # updated
    assert retell_emulator.llms[agent.retell_llm_id]["general_prompt"] == "Seja breve."
    assert retell_emulator.agents[agent.retell_agent_id]["agent_name"] == "Bia 2"


def test_agent_is_not_saved_when_retell_refuses_or_no_key(in_tenant_a: object, retell_emulator: RetellEmulator) -> None:
    from voice.services import voice_api_key_set

    voice_api_key_set(api_key="")
    with translation.override("en"), pytest.raises(ValidationError) as no_key:
        voice_agent_create(name="X", prompt="p", voice_id="v")
    assert "API key" in " ".join(no_key.value.messages)
    voice_api_key_set(api_key="wrong-key-123")
    retell_emulator.api_keys = {RETELL_KEY}
    try:
        with pytest.raises(ValidationError) as refused:
            voice_agent_create(name="X", prompt="p", voice_id="v")
    finally:
        retell_emulator.api_keys = None
    assert "wrong-key-123" not in " ".join(refused.value.messages)
    assert not VoiceAgent.objects.filter(name="X").exists()
