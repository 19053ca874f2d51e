"""Custom HTTP tools a tenant defines. The model's arguments are untrusted: they are checked against the
tool's JSON schema (jsonschema) before anything is sent; the URL goes through the outbound-URL guard when
the tool is saved and again at every call (no redirects are followed); the request is signed Standard
Webhooks style (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the tool's own secret, shown
once when made; it is bounded by the tool's timeout. The envelope names the conversation's own contact,
taken from the conversation, never from the arguments."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import jsonschema
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from ai.client import ToolSpec
from ai.models import HttpTool
from core import signing
from core.roles import Action, permission_check
from core.urlguard import FetchFailed, guarded_client, url_check

logger = logging.getLogger(__name__)

MAX_TIMEOUT_S = 30.0
RESULT_CHARS = 4000
USER_AGENT = "ControlPanel-AI-Tools/1.0"
DEFAULT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


def schema_check(schema: Any) -> dict[str, Any]:
    """A usable arguments schema: a valid JSON schema (Draft 2020-12) describing an object."""
    if schema in (None, "", {}):
        return dict(DEFAULT_SCHEMA)
    if not isinstance(schema, dict):
        raise ValidationError({"arguments_schema": _("The arguments schema must be a JSON object.")})
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValidationError(
            {"arguments_schema": _("This is not a valid JSON schema: %(error)s") % {"error": exc.message[:200]}}
        ) from exc
    if schema.get("type") != "object":
        raise ValidationError({"arguments_schema": _('The arguments schema must have "type": "object".')})
    return schema


def _url_checked(url: str) -> None:
    try:
        url_check(url)
    except FetchFailed as exc:
        raise ValidationError(
            {"url": _("This address cannot be reached: %(reason)s") % {"reason": exc.reason}}
        ) from exc


def http_tool_save(*, actor: Any, tool: HttpTool | None = None, **fields: Any) -> tuple[HttpTool, str]:
    """Create or update a custom HTTP tool (owners and admins). Returns the tool and, when it was just
    made, its signing secret: shown this once, stored encrypted, never shown again."""
    permission_check(actor, Action.ASSISTANT_MANAGE)
    tool = tool or HttpTool()
    for name in ("name", "description", "url", "arguments_schema", "timeout_s", "is_active"):
        if name in fields:
            setattr(tool, name, fields[name])
    tool.arguments_schema = schema_check(tool.arguments_schema)
    timeout = Decimal(str(tool.timeout_s or 0))
    if not Decimal("0.5") <= timeout <= Decimal(str(MAX_TIMEOUT_S)):
        raise ValidationError({"timeout_s": _("The timeout goes from 0.5 to 30 seconds.")})
    _url_checked(tool.url)
    secret = ""
    if not tool.secret:
        secret = tool.secret = signing.secret_new()
    tool.full_clean()
    tool.save()
    return tool, secret


def http_tool_secret_rotate(*, actor: Any, tool: HttpTool) -> str:
    """A new signing secret (the old one stops working at once); shown this once."""
    permission_check(actor, Action.ASSISTANT_MANAGE)
    with transaction.atomic():
        tool.secret = signing.secret_new()
        tool.save(update_fields=["secret", "updated_at"])
    return str(tool.secret)


def http_tool_delete(*, actor: Any, tool: HttpTool) -> None:
    permission_check(actor, Action.ASSISTANT_MANAGE)
    tool.delete()


def http_tool_spec(tool: HttpTool) -> ToolSpec:
    return ToolSpec(tool.function_name, tool.description, tool.arguments_schema or dict(DEFAULT_SCHEMA))


def arguments_problem(tool: HttpTool, arguments: Any) -> str:
    """Why these arguments do not fit the tool's schema ('' when they do)."""
    validator = jsonschema.Draft202012Validator(tool.arguments_schema or DEFAULT_SCHEMA)
    error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
    if error is None:
        return ""
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}"[:300] if where else error.message[:300]


@dataclass(frozen=True)
class Subject:
    """Whom the call is about: the conversation's own contact (None in a test call)."""

    conversation_id: int | None
    contact: dict[str, Any] | None
    assistant: str


def subject_of(conversation: Any, assistant_name: str) -> Subject:
    contact = conversation.contact
    return Subject(
        conversation_id=conversation.pk,
        contact={"id": contact.pk, "name": contact.name, "phone": contact.phone, "email": contact.email},
        assistant=assistant_name,
    )


def http_tool_call(*, tool: HttpTool, arguments: Any, subject: Subject) -> dict[str, Any]:
    """Send one call; the answer the model gets back (`ok`, `status`, `result` or `error`). Never raises
    for what the far end or the model did wrong: that is the model's to read."""
    if not tool.is_active:
        return {"ok": False, "error": "this tool is turned off"}
    problem = arguments_problem(tool, arguments)
    if problem:
        return {"ok": False, "error": f"the arguments do not match the tool's schema: {problem}"}
    envelope = {
        "tool": tool.name,
        "arguments": arguments,
        "conversation_id": subject.conversation_id,
        "contact": subject.contact,
        "assistant": subject.assistant,
    }
    body = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
    call_id = f"tool_{uuid.uuid4().hex}"
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": call_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature(str(tool.secret), call_id, timestamp, body),
    }
    started = time.monotonic()
    try:
        target = url_check(tool.url)
        response = guarded_client().post(
            target, content=body, headers=headers, timeout=min(float(tool.timeout_s), MAX_TIMEOUT_S)
        )
    except FetchFailed as exc:
        logger.warning("HTTP tool %s: refused (%s)", tool.pk, exc.reason)
        return {"ok": False, "error": f"the tool's address is refused: {exc.reason}"}
    except httpx.TimeoutException:
        return {"ok": False, "error": f"the tool did not answer within {tool.timeout_s} s"}
    except httpx.HTTPError as exc:
        logger.warning("HTTP tool %s: %s", tool.pk, type(exc).__name__)
        return {"ok": False, "error": f"the tool could not be reached ({type(exc).__name__})"}
    elapsed_ms = round((time.monotonic() - started) * 1000)
    text = response.text[:RESULT_CHARS]
    try:
        result: Any = json.loads(text) if text else None
    except json.JSONDecodeError:
        result = text
    if 300 <= response.status_code < 400:
        return {"ok": False, "status": response.status_code, "error": "the tool redirected; redirects are not followed"}
    if response.status_code >= 400:
        return {
            "ok": False,
            "status": response.status_code,
            "error": f"the tool answered {response.status_code}",
            "result": result,
        }
    return {"ok": True, "status": response.status_code, "ms": elapsed_ms, "result": result}


def http_tool_test(*, actor: Any, tool: HttpTool, arguments: Any) -> dict[str, Any]:
    """A test call from the UI or API: the same request, with no conversation or contact."""
    permission_check(actor, Action.ASSISTANT_MANAGE)
    return http_tool_call(tool=tool, arguments=arguments, subject=Subject(None, None, ""))
