"""The model client (the `openai` package) against the OpenAI-compatible emulator over real HTTP:
structured output, tool calls, retries of retryable errors only, usage and cost per day, embeddings and
transcriptions."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from ai import client
from ai.client import AIError, ToolSpec
from ai.models import AISettings, AIUsageDay
from emulators.openai import OpenAIEmulator
from tests.conftest import OPENAI_KEY

pytestmark = pytest.mark.django_db

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"intent": {"type": "string", "enum": ["buy", "ask"]}, "score": {"type": "integer"}},
    "required": ["intent", "score"],
    "additionalProperties": False,
}


@pytest.fixture
def row(in_tenant_a: Any) -> AISettings:
    return AISettings.objects.create(api_key=OPENAI_KEY, chat_model="gpt-4o-mini")


def test_structured_output_is_sent_as_a_strict_json_schema_and_parsed(
    row: AISettings, openai_emulator: OpenAIEmulator
) -> None:
    openai_emulator.reply({"intent": "buy", "score": 87})
    result = client.chat(row=row, messages=[{"role": "user", "content": "quero comprar"}], json_schema=SCHEMA)
    assert result.json() == {"intent": "buy", "score": 87}
    (sent,) = openai_emulator.chat_requests()
    assert sent["json"]["response_format"]["type"] == "json_schema"
    assert sent["json"]["response_format"]["json_schema"]["strict"] is True
    assert sent["json"]["response_format"]["json_schema"]["schema"] == SCHEMA
    # With nothing scripted the emulator fills the schema itself (the first enum value, the minimum).
    assert client.chat(row=row, messages=[{"role": "user", "content": "oi"}], json_schema=SCHEMA).json() == {
        "intent": "buy",
        "score": 0,
    }


def test_a_schema_the_real_api_refuses_is_a_permanent_error(row: AISettings, openai_emulator: OpenAIEmulator) -> None:
    loose = {"type": "object", "properties": {"a": {"type": "string"}}}
    with pytest.raises(AIError) as caught:
        client.chat(row=row, messages=[{"role": "user", "content": "x"}], json_schema=loose)
    assert caught.value.status == 400 and not caught.value.retryable
    assert len(openai_emulator.chat_requests()) == 1  # a 400 is never retried


def test_tool_calls_come_back_with_their_arguments(row: AISettings, openai_emulator: OpenAIEmulator) -> None:
    spec = ToolSpec("tag_add", "Add a tag", {"type": "object", "properties": {"tag": {"type": "string"}}})
    openai_emulator.reply(tool_calls=[("tag_add", {"tag": "vip"})])
    result = client.chat(row=row, messages=[{"role": "user", "content": "sou vip"}], tools=[spec])
    assert result.finish_reason == "tool_calls" and result.content is None
    (call,) = result.tool_calls
    assert call.name == "tag_add" and call.parsed() == {"tag": "vip"} and call.id.startswith("call_")
    assert openai_emulator.chat_requests()[0]["offered_tools"] == ["tag_add"]


def test_a_429_and_a_500_are_retried_then_it_succeeds(row: AISettings, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.fail(429, 500)
    openai_emulator.reply("Olá!")
    result = client.chat(row=row, messages=[{"role": "user", "content": "oi"}])
    assert result.content == "Olá!"
    assert len(openai_emulator.chat_requests()) == 3  # 429, 500, then the answer


def test_retries_stop_at_the_limit_and_the_error_is_retryable(
    row: AISettings, openai_emulator: OpenAIEmulator, settings: Any
) -> None:
    openai_emulator.fail(503, 503, 503, 503)
    with pytest.raises(AIError) as caught:
        client.chat(row=row, messages=[{"role": "user", "content": "oi"}])
    assert caught.value.retryable and caught.value.status == 503
    assert len(openai_emulator.chat_requests()) == 1 + settings.AI_MAX_RETRIES


def test_a_wrong_key_is_permanent_and_not_retried(row: AISettings, openai_emulator: OpenAIEmulator) -> None:
    row.api_key = "sk-wrong"
    with pytest.raises(AIError) as caught:
        client.chat(row=row, messages=[{"role": "user", "content": "oi"}])
    assert caught.value.status == 401 and caught.value.code == "invalid_api_key" and not caught.value.retryable
    assert len(openai_emulator.chat_requests()) == 1


def test_usage_and_cost_are_added_up_per_day_and_model(
    row: AISettings, openai_emulator: OpenAIEmulator, tenant_b: Any
) -> None:
    first = client.chat(row=row, messages=[{"role": "user", "content": "um dois três"}])
    second = client.chat(row=row, messages=[{"role": "user", "content": "quatro"}])
    day = AIUsageDay.objects.get(model="gpt-4o-mini", kind="chat")
    assert day.requests == 2
    assert day.prompt_tokens == first.prompt_tokens + second.prompt_tokens > 0
    assert day.completion_tokens == first.completion_tokens + second.completion_tokens > 0
    expected = (Decimal(day.prompt_tokens) * Decimal("0.15") + Decimal(day.completion_tokens) * Decimal("0.60")) / 10**6
    assert day.cost_usd == expected.quantize(Decimal("0.000001"))
    # Usage lives in the tenant's own schema: the other tenant has none.
    connection.set_tenant(tenant_b)
    assert not AIUsageDay.objects.exists()


def test_embeddings_have_the_requested_dimension_and_are_deterministic(
    row: AISettings, openai_emulator: OpenAIEmulator
) -> None:
    vectors = client.embed(
        row=row, texts=["horário de funcionamento", "horário de funcionamento", "frete grátis"], dimensions=64
    )
    assert [len(v) for v in vectors] == [64, 64, 64]
    assert vectors[0] == pytest.approx(vectors[1])
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-5)
    assert vectors[0] != pytest.approx(vectors[2])
    assert AIUsageDay.objects.get(kind="embedding").prompt_tokens == 8


def test_a_voice_note_is_transcribed_from_a_multipart_upload(row: AISettings, openai_emulator: OpenAIEmulator) -> None:
    openai_emulator.transcripts.append("Queria saber se vocês entregam no sábado")
    text = client.transcribe(
        row=row, audio=b"OggS" + b"\0" * 9000, filename="nota.ogg", mime="audio/ogg", language="pt-BR"
    )
    assert text == "Queria saber se vocês entregam no sábado"
    (sent,) = [r for r in openai_emulator.requests if r["path"] == "/v1/audio/transcriptions"]
    assert sent["fields"]["model"] == "whisper-1" and sent["fields"]["language"] == "pt"
    assert sent["filename"] == "nota.ogg" and sent["bytes"] == 9004
    assert AIUsageDay.objects.get(kind="transcription").audio_seconds == 2
