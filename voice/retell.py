"""The one client of Retell AI's REST API (agents, LLMs, phone calls) and the check of its webhook signature.

A thin layer over a pooled httpx client whose base URL comes from settings (an emulator in tests and
the demo). Errors map to three kinds: retryable (429, 5xx, no connection), permanent (other 4xx) and
unknown (the request went out but no answer came back: the call may or may not exist).
The API key is sent as a bearer token and never appears in an exception message or a log line."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from django.conf import settings

from core.http import pooled_client

SIGNATURE_WINDOW_MS = 5 * 60 * 1000
SIGNATURE_FORMAT = re.compile(r"^v=(\d+),d=([0-9a-fA-F]+)$")

RETRYABLE, PERMANENT, UNKNOWN = "retryable", "permanent", "unknown"


class RetellError(Exception):
    """An error answer from Retell, or no answer at all; `kind` says whether a retry may help."""

    def __init__(self, status: int, message: str, kind: str, *, timed_out: bool = False) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message, self.kind = status, message, kind
        self.timed_out = timed_out  # no answer within the time we allowed (the request may have been acted on)

    @property
    def retryable(self) -> bool:
        return self.kind == RETRYABLE


@dataclass(frozen=True)
class LlmSpec:
    general_prompt: str
    begin_message: str | None = None  # None: Retell generates one; "": the agent waits for the caller
    model: str = "gpt-4o-mini"


@dataclass(frozen=True)
class Llm:
    llm_id: str
    version: int
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentSpec:
    llm_id: str
    voice_id: str
    agent_name: str
    language: str
    webhook_url: str
    voicemail_message: str = ""  # "": hang up on a voicemail; else leave this message
    analysis_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Agent:
    agent_id: str
    version: int
    is_published: bool = False
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any], agent_id: str = "") -> Agent:
        return cls(
            agent_id=str(data.get("agent_id", agent_id)),
            version=int(data.get("version") or 0),
            is_published=bool(data.get("is_published")),
            raw=data,
        )


@dataclass(frozen=True)
class PhoneNumber:
    phone_number: str
    inbound_agent_id: str
    outbound_agent_id: str
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PhoneNumber:
        return cls(
            phone_number=str(data.get("phone_number", "")),
            inbound_agent_id=str(data.get("inbound_agent_id") or ""),
            outbound_agent_id=str(data.get("outbound_agent_id") or ""),
            raw=data,
        )


@dataclass(frozen=True)
class PhoneCall:
    """The fields of Retell's call object that we act on; `raw` keeps the rest."""

    call_id: str
    call_status: str
    direction: str
    from_number: str
    to_number: str
    agent_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PhoneCall:
        return cls(
            call_id=str(data.get("call_id", "")),
            call_status=str(data.get("call_status", "")),
            direction=str(data.get("direction", "")),
            from_number=str(data.get("from_number", "")),
            to_number=str(data.get("to_number", "")),
            agent_id=str(data.get("agent_id", "")),
            metadata=dict(data.get("metadata") or {}),
            raw=data,
        )


def _segment(value: str) -> str:
    """An id as one path segment (ids come back from Retell and its tenant-signed webhooks)."""
    return quote(str(value), safe="")


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict):
        for key in ("error_message", "message", "detail", "error"):
            if body.get(key):
                return str(body[key])
    return response.reason_phrase


class RetellClient:
    def __init__(self, api_key: str) -> None:
        self.http = pooled_client(settings.RETELL_API_BASE_URL)
        self.headers = {"Authorization": f"Bearer {api_key}"}

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        if self.headers["Authorization"] == "Bearer ":
            raise RetellError(0, "no API key", PERMANENT)
        extra: dict[str, Any] = {} if timeout is None else {"timeout": httpx.Timeout(timeout)}
        try:
            response = self.http.request(method, path, headers=self.headers, json=body, **extra)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            timed_out = isinstance(exc, httpx.TimeoutException)
            raise RetellError(0, f"connection failed: {type(exc).__name__}", RETRYABLE, timed_out=timed_out) from exc
        except httpx.TimeoutException as exc:
            raise RetellError(0, f"no answer in time: {type(exc).__name__}", UNKNOWN, timed_out=True) from exc
        except httpx.HTTPError as exc:
            raise RetellError(0, f"no answer: {type(exc).__name__}", UNKNOWN) from exc
        status = response.status_code
        if status >= 400:
            kind = RETRYABLE if status == 429 or status >= 500 else PERMANENT
            raise RetellError(status, _error_message(response), kind)
        if not response.content:
            return {}
        result: dict[str, Any] = response.json()
        return result

    def create_retell_llm(self, spec: LlmSpec) -> Llm:
        data = self._request("POST", "/create-retell-llm", llm_body(spec))
        return Llm(llm_id=str(data["llm_id"]), version=int(data.get("version") or 0), raw=data)

    def update_retell_llm(self, llm_id: str, spec: LlmSpec) -> Llm:
        data = self._request("PATCH", f"/update-retell-llm/{_segment(llm_id)}", llm_body(spec))
        return Llm(llm_id=str(data.get("llm_id", llm_id)), version=int(data.get("version") or 0), raw=data)

    def get_retell_llm(self, llm_id: str) -> Llm:
        data = self._request("GET", f"/get-retell-llm/{_segment(llm_id)}")
        return Llm(llm_id=str(data.get("llm_id", llm_id)), version=int(data.get("version") or 0), raw=data)

    def delete_retell_llm(self, llm_id: str) -> None:
        self._request("DELETE", f"/delete-retell-llm/{_segment(llm_id)}")

    def create_agent(self, spec: AgentSpec) -> Agent:
        return Agent.from_json(self._request("POST", "/create-agent", agent_body(spec)))

    def update_agent(self, agent_id: str, spec: AgentSpec) -> Agent:
        data = self._request("PATCH", f"/update-agent/{_segment(agent_id)}", agent_body(spec))
        return Agent.from_json(data, agent_id)

    def get_agent(self, agent_id: str) -> Agent:
        return Agent.from_json(self._request("GET", f"/get-agent/{_segment(agent_id)}"), agent_id)

    def publish_agent(self, agent_id: str) -> None:
        """Publish the agent's draft (Retell then opens the next draft version)."""
        self._request("POST", f"/publish-agent/{_segment(agent_id)}")

    def get_agent_versions(self, agent_id: str) -> list[Agent]:
        data: Any = self._request("GET", f"/get-agent-versions/{_segment(agent_id)}")
        return [Agent.from_json(item, agent_id) for item in (data if isinstance(data, list) else [])]

    def import_phone_number(
        self, *, phone_number: str, termination_uri: str, inbound_agent_id: str = "", outbound_agent_id: str = ""
    ) -> PhoneNumber:
        body: dict[str, Any] = {"phone_number": phone_number, "termination_uri": termination_uri}
        if inbound_agent_id:
            body["inbound_agent_id"] = inbound_agent_id
        if outbound_agent_id:
            body["outbound_agent_id"] = outbound_agent_id
        return PhoneNumber.from_json(self._request("POST", "/import-phone-number", body))

    def get_phone_number(self, phone_number: str) -> PhoneNumber:
        return PhoneNumber.from_json(self._request("GET", f"/get-phone-number/{_segment(phone_number)}"))

    def create_phone_call(
        self,
        *,
        from_number: str,
        to_number: str,
        agent_id: str,
        metadata: dict[str, Any],
        dynamic_variables: dict[str, str] | None = None,
    ) -> PhoneCall:
        body = {
            "from_number": from_number,
            "to_number": to_number,
            "override_agent_id": agent_id,
            "metadata": metadata,
            "retell_llm_dynamic_variables": dynamic_variables or {},
        }
        return PhoneCall.from_json(self._request("POST", "/v2/create-phone-call", body))

    def register_phone_call(
        self,
        *,
        agent_id: str,
        from_number: str,
        to_number: str,
        direction: str,
        metadata: dict[str, Any],
        agent_version: int | None = None,
        timeout: float | None = None,
    ) -> PhoneCall:
        body: dict[str, Any] = {
            "agent_id": agent_id,
            "from_number": from_number,
            "to_number": to_number,
            "direction": direction,
            "metadata": metadata,
        }
        if agent_version is not None:
            body["agent_version"] = agent_version
        return PhoneCall.from_json(self._request("POST", "/v2/register-phone-call", body, timeout=timeout))

    def get_call(self, call_id: str) -> PhoneCall:
        return PhoneCall.from_json(self._request("GET", f"/v2/get-call/{_segment(call_id)}"))


def llm_body(spec: LlmSpec) -> dict[str, Any]:
    return {
        "general_prompt": spec.general_prompt,
        "begin_message": spec.begin_message,
        "model": spec.model,
        "start_speaker": "agent",
        "general_tools": [{"type": "end_call", "name": "end_call", "description": "End the call when done."}],
    }


def agent_body(spec: AgentSpec) -> dict[str, Any]:
    return {
        "response_engine": {"type": "retell-llm", "llm_id": spec.llm_id},
        "voice_id": spec.voice_id,
        "agent_name": spec.agent_name,
        "language": spec.language,
        "webhook_url": spec.webhook_url,
        "enable_voicemail_detection": True,
        "voicemail_message": spec.voicemail_message,
        "post_call_analysis_data": [
            {"type": "string", "name": name, "description": name} for name in spec.analysis_fields
        ],
    }


def signature_compute(body: bytes, api_key: str, timestamp_ms: int) -> str:
    """Lowercase hex HMAC-SHA256 keyed with the API key over the raw body followed by the decimal timestamp."""
    return hmac.new(api_key.encode(), body + str(timestamp_ms).encode(), hashlib.sha256).hexdigest()


def signature_header(body: bytes, api_key: str, now_ms: int | None = None) -> str:
    """The `x-retell-signature` value Retell sends (used by the emulator and tests)."""
    timestamp = int(time.time() * 1000) if now_ms is None else now_ms
    return f"v={timestamp},d={signature_compute(body, api_key, timestamp)}"


def signature_valid(body: bytes, api_key: str, header: str, now_ms: int | None = None) -> bool:
    """Is `header` Retell's signature of this raw body, made within the last five minutes?"""
    if not api_key or not header:
        return False
    match = SIGNATURE_FORMAT.match(header.strip())
    if match is None:
        return False
    timestamp = int(match.group(1))
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now - timestamp) > SIGNATURE_WINDOW_MS:
        return False
    return hmac.compare_digest(signature_compute(body, api_key, timestamp), match.group(2).lower())
