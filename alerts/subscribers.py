"""Events -> alerts. Any app announces alert.raised / alert.cleared (core.events) with codes and ids;
template.status is read here too (a rejected template is an alert, an approved one clears it). The
announcing apps never import this."""

from __future__ import annotations

import logging
from typing import Any

from django_tenants.utils import schema_context

from alerts import kinds
from alerts.services import alert_clear, alert_raise
from core import events

logger = logging.getLogger(__name__)


def _cause(payload: dict[str, Any]) -> tuple[str, str] | None:
    kind, key = payload.get("kind"), payload.get("key")
    if not isinstance(kind, str) or not kind or not isinstance(key, str | int) or str(key) == "":
        logger.warning("alert event without kind and key: %r", sorted(payload))
        return None
    return kind, str(key)


def on_raised(schema_name: str, payload: dict[str, Any]) -> None:
    cause = _cause(payload)
    if cause is None:
        return
    detail = payload.get("detail")
    with schema_context(schema_name):
        alert_raise(kind=cause[0], key=cause[1], detail=detail if isinstance(detail, dict) else {})


def on_cleared(schema_name: str, payload: dict[str, Any]) -> None:
    cause = _cause(payload)
    if cause is None:
        return
    with schema_context(schema_name):
        alert_clear(kind=cause[0], key=cause[1])


def on_template_status(schema_name: str, payload: dict[str, Any]) -> None:
    template_id, status = str(payload.get("template_id") or ""), str(payload.get("status") or "")
    if not template_id:
        return
    with schema_context(schema_name):
        if status == "REJECTED":
            detail = {
                "template_id": template_id,
                "name": str(payload.get("name") or ""),
                "reason": str(payload.get("reason") or "") or "-",
                "channel_id": payload.get("channel_id") or "",
            }
            alert_raise(kind=kinds.TEMPLATE_REJECTED, key=template_id, detail=detail)
        elif status == "APPROVED":
            alert_clear(kind=kinds.TEMPLATE_REJECTED, key=template_id)


def connect() -> None:
    events.subscribe(events.ALERT_RAISED, on_raised)
    events.subscribe(events.ALERT_CLEARED, on_cleared)
    events.subscribe(events.TEMPLATE_STATUS, on_template_status)
