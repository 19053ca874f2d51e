"""The one client of OpenAI-compatible APIs (chat with structured output and tools, embeddings, audio
transcription), through the `openai` package. Dataclasses in and out; errors map to retryable or
permanent. The SDK retries only what may succeed later (429, 408/409, 5xx, timeouts and connection
errors), honouring Retry-After, up to AI_MAX_RETRIES times; everything else fails at once. Usage is
recorded per tenant per day (ai.usage)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import openai
from django.conf import settings

from ai.models import AISettings, UsageKind

logger = logging.getLogger(__name__)


class AIError(Exception):
    def __init__(self, message: str, *, retryable: bool, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.code = code


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text as the model wrote it: untrusted

    def parsed(self) -> dict[str, Any]:
        try:
            value = json.loads(self.arguments or "{}")
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass
class ChatResult:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""

    def json(self) -> dict[str, Any]:
        """The structured answer (response_format json_schema); {} if the model wrote no valid object."""
        try:
            value = json.loads(self.content or "")
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


def _admit() -> None:
    """The tenant's plan: AI on, and tokens left this month (else a permanent AIError with the reason)."""
    from ai.usage import ai_refusal

    code, message = ai_refusal()
    if code:
        raise AIError(message, retryable=False, code=code)


def _client(row: AISettings) -> openai.OpenAI:
    _admit()
    return _pooled_client(row.api_key or "none", row.effective_base_url, settings.AI_TIMEOUT_S, settings.AI_MAX_RETRIES)


@lru_cache(maxsize=64)
def _pooled_client(api_key: str, base_url: str, timeout: float, max_retries: int) -> openai.OpenAI:
    """One client (and its connection pool) per server and key, per process: building one costs a TLS
    context and a new connection each time. A changed key or URL makes a new entry."""
    return openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)


def _translate(exc: Exception) -> AIError:
    if isinstance(exc, openai.APITimeoutError):
        return AIError("the AI server did not answer in time", retryable=True, code="timeout")
    if isinstance(exc, openai.APIConnectionError):
        return AIError("the AI server could not be reached", retryable=True, code="connection")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error", body) if isinstance(body, dict) else {}
        code = str((error or {}).get("code") or (error or {}).get("type") or "")
        message = str((error or {}).get("message") or exc.message)[:300]
        retryable = status in (408, 409, 429) or status >= 500
        if status == 429 and code == "insufficient_quota":
            retryable = False  # billing: waiting does not help
        return AIError(message, retryable=retryable, status=status, code=code)
    return AIError(str(exc)[:300], retryable=False)


def chat(
    *,
    row: AISettings,
    messages: list[dict[str, Any]],
    model: str = "",
    temperature: float | None = None,
    max_tokens: int | None = None,
    tools: list[ToolSpec] | None = None,
    json_schema: dict[str, Any] | None = None,
    schema_name: str = "answer",
) -> ChatResult:
    """One chat completion. `json_schema` asks for structured output (strict); `tools` offers functions."""
    from ai.usage import usage_record

    model = model or row.chat_model
    params: dict[str, Any] = {"model": model, "messages": messages}
    if temperature is not None:
        params["temperature"] = temperature
    if max_tokens:
        params["max_tokens"] = max_tokens
    if tools:
        params["tools"] = [t.wire() for t in tools]
    if json_schema is not None:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "schema": json_schema, "strict": True},
        }
    try:
        completion = _client(row).chat.completions.create(**params)
    except openai.OpenAIError as exc:
        raise _translate(exc) from exc
    choice = completion.choices[0]
    calls = [
        ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "")
        for c in (choice.message.tool_calls or [])
        if getattr(c, "function", None) is not None
    ]
    usage = completion.usage
    result = ChatResult(
        content=choice.message.content,
        tool_calls=calls,
        finish_reason=str(choice.finish_reason or ""),
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        model=completion.model or model,
    )
    usage_record(
        row=row,
        model=model,
        kind=UsageKind.CHAT,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
    )
    return result


def embed(*, row: AISettings, texts: list[str], model: str = "", dimensions: int | None = None) -> list[list[float]]:
    """Embedding vectors, in the order of `texts`."""
    from ai.usage import usage_record

    model = model or row.embedding_model
    params: dict[str, Any] = {"model": model, "input": texts}
    if dimensions or row.embedding_dimensions:
        params["dimensions"] = dimensions or row.embedding_dimensions
    try:
        response = _client(row).embeddings.create(**params)
    except openai.OpenAIError as exc:
        raise _translate(exc) from exc
    vectors = [list(item.embedding) for item in sorted(response.data, key=lambda d: d.index)]
    tokens = int(getattr(response.usage, "prompt_tokens", 0) or 0)
    usage_record(row=row, model=model, kind=UsageKind.EMBEDDING, prompt_tokens=tokens, completion_tokens=0)
    return vectors


def transcribe(*, row: AISettings, audio: bytes, filename: str, mime: str, language: str = "", model: str = "") -> str:
    """The text of a voice note (audio/transcriptions, multipart)."""
    from ai.usage import usage_record

    model = model or row.transcription_model
    params: dict[str, Any] = {"model": model, "file": (filename or "audio.ogg", audio, mime or "audio/ogg")}
    if language:
        params["language"] = language.split("-")[0]
    try:
        response = _client(row).audio.transcriptions.create(**params)
    except openai.OpenAIError as exc:
        raise _translate(exc) from exc
    usage = getattr(response, "usage", None)
    usage_record(
        row=row,
        model=model,
        kind=UsageKind.TRANSCRIPTION,
        prompt_tokens=int(getattr(usage, "input_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "output_tokens", 0) or 0),
        audio_seconds=float(getattr(usage, "seconds", 0) or 0),
    )
    return str(response.text or "")
