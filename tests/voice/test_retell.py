"""The Retell client against the emulator over real HTTP, the signature check, and agent sync."""

from __future__ import annotations

import httpx
import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from emulators.retell import RetellEmulator, sign
from tests.conftest import RETELL_KEY
from tests.voice.conftest import AGENT_NUMBER, now_ms
from voice.models import AgentStatus, VoiceSettings
from voice.retell import PERMANENT, RETRYABLE, LlmSpec, RetellClient, RetellError, signature_valid
from voice.services import voice_agent_create, voice_agent_drift, voice_agent_sync, voice_agent_update

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


def test_an_agent_retell_refuses_is_kept_with_the_reason(in_tenant_a: object, retell_emulator: RetellEmulator) -> None:
    from voice.services import voice_agent_sync, voice_api_key_set

    voice_api_key_set(api_key="")
    with translation.override("en"):
        no_key = voice_agent_create(name="X", prompt="p", voice_id="v")
    assert (no_key.status, no_key.retell_agent_id) == (AgentStatus.ERROR, "")
    assert "API key" in no_key.status_reason
    voice_api_key_set(api_key="wrong-key-123")
    retell_emulator.api_keys = {RETELL_KEY}
    try:
        refused = voice_agent_create(name="Y", prompt="p", voice_id="v")
    finally:
        retell_emulator.api_keys = None
    assert refused.status == AgentStatus.ERROR and "wrong-key-123" not in refused.status_reason
    voice_api_key_set(api_key=RETELL_KEY)
    assert voice_agent_sync(agent=refused).status == AgentStatus.PUBLISHED  # a sync later retries


def test_a_failed_agent_step_leaves_no_orphaned_llm(voice_a: VoiceSettings, retell_script: RetellEmulator) -> None:
    llms_before = len(retell_script.llms)
    httpx.post(f"{retell_script.base_url}/_emulator/errors", json={"status": 500, "path": "create-agent"})
    with translation.override("en"):
        agent = voice_agent_create(name="Cai", prompt="p", voice_id="11labs-Adrian")
    assert (agent.status, agent.retell_llm_id, agent.retell_agent_id) == (AgentStatus.ERROR, "", "")
    assert "unavailable" in agent.status_reason
    assert len(retell_script.llms) == llms_before  # the LLM made before the failure was deleted again
    # the agent step fails and so does the clean-up: the LLM id is kept, and the next sync reuses it
    httpx.post(f"{retell_script.base_url}/_emulator/errors", json={"status": 500, "path": "create-agent"})
    httpx.post(f"{retell_script.base_url}/_emulator/errors", json={"status": 500, "path": "delete-retell-llm"})
    with pytest.raises(ValidationError):
        voice_agent_sync(agent=agent)
    agent.refresh_from_db()
    kept = agent.retell_llm_id
    assert kept in retell_script.llms and agent.status == AgentStatus.ERROR
    voice_agent_sync(agent=agent)
    assert agent.retell_llm_id == kept and len(retell_script.llms) == llms_before + 1
    assert agent.status == AgentStatus.PUBLISHED and retell_script.agents[agent.retell_agent_id]["version"] == 1


def test_drift_is_found_when_retell_was_edited_elsewhere(voice_a: VoiceSettings, retell_script: RetellEmulator) -> None:
    agent = voice_agent_create(name="Duda", prompt="Seja breve.", voice_id="11labs-Adrian", llm_model="gpt-4o")
    assert voice_agent_drift(agent=agent) == []
    retell_script.llms[agent.retell_llm_id]["general_prompt"] = "Editado no painel da Retell"
    retell_script.agents[agent.retell_agent_id]["voice_id"] = "11labs-Other"
    drift = {d.field: (d.ours, d.remote) for d in voice_agent_drift(agent=agent)}
    assert drift == {
        "general_prompt": ("Seja breve.", "Editado no painel da Retell"),
        "voice_id": ("11labs-Adrian", "11labs-Other"),
    }
    voice_agent_sync(agent=agent)
    assert voice_agent_drift(agent=agent) == []
    assert retell_script.llms[agent.retell_llm_id]["model"] == "gpt-4o"


def test_an_agent_retell_could_not_take_is_synced_again_by_beat_backing_off(
    voice_a: VoiceSettings, retell_script: RetellEmulator
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from voice.models import VoiceAgent
    from voice.services import SYNC_RETRY_FIRST_S, voice_agents_resync_due

    httpx.post(f"{retell_script.base_url}/_emulator/errors", json={"status": 503, "path": "create-agent", "count": 9})
    agent = voice_agent_create(name="Volta", prompt="p", voice_id="11labs-Adrian")
    first_retry = agent.sync_retry_at
    assert agent.status == AgentStatus.ERROR and agent.sync_attempts == 1 and first_retry is not None
    assert abs((first_retry - timezone.now()).total_seconds() - SYNC_RETRY_FIRST_S) < 5
    assert voice_agents_resync_due() == 0  # not due yet: nothing is asked of Retell
    VoiceAgent.objects.filter(pk=agent.pk).update(sync_retry_at=timezone.now())
    assert voice_agents_resync_due() == 0  # Retell still down: the next try waits twice as long
    agent.refresh_from_db()
    assert agent.sync_attempts == 2 and agent.sync_retry_at is not None
    assert agent.sync_retry_at - timezone.now() > timedelta(seconds=2 * SYNC_RETRY_FIRST_S - 5)

    httpx.post(f"{retell_script.base_url}/_emulator/reset")  # Retell is back
    VoiceAgent.objects.filter(pk=agent.pk).update(sync_retry_at=timezone.now())
    assert voice_agents_resync_due() == 1
    agent.refresh_from_db()
    assert (agent.status, agent.sync_attempts, agent.sync_retry_at) == (AgentStatus.PUBLISHED, 0, None)
    assert retell_script.agents[agent.retell_agent_id]["published_version"] == agent.published_version


def test_an_agent_retell_refused_waits_for_a_person(voice_a: VoiceSettings, retell_script: RetellEmulator) -> None:
    from voice.services import voice_agents_resync_due

    httpx.post(f"{retell_script.base_url}/_emulator/errors", json={"status": 422, "path": "create-agent"})
    agent = voice_agent_create(name="Recusado", prompt="p", voice_id="11labs-Adrian")
    assert agent.status == AgentStatus.ERROR and agent.sync_retry_at is None and agent.sync_attempts == 0
    assert voice_agents_resync_due() == 0
