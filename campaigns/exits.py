"""Why a contact leaves a cadence on its own: a reply (when the cadence says so) or an opt-out."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import schema_context

from campaigns.services import enrollments_stop_on_opt_out, enrollments_stop_on_reply
from core import events


def _message_created(schema_name: str, payload: dict[str, Any]) -> None:
    if payload.get("direction") != "in":
        return
    with schema_context(schema_name):
        enrollments_stop_on_reply(contact_id=payload["contact_id"])


def _opted_out(schema_name: str, payload: dict[str, Any]) -> None:
    with schema_context(schema_name):
        enrollments_stop_on_opt_out(contact_id=payload["contact_id"], medium=payload["medium"])


def connect() -> None:
    events.subscribe(events.MESSAGE_CREATED, _message_created)
    events.subscribe(events.CONTACT_OPTED_OUT, _opted_out)
