"""Domain events -> rule events. The announcing apps never import this; the cause each event carries
(core.events.cause_current) goes along, for the loop guard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django_tenants.utils import schema_context

from automations.models import Trigger
from automations.services import rule_event_record
from core import events


def _feeder(kind: str, *, keep: Callable[[dict[str, Any]], bool] | None = None) -> events.Handler:
    def handle(schema_name: str, payload: dict[str, Any]) -> None:
        if keep is not None and not keep(payload):
            return
        with schema_context(schema_name):
            rule_event_record(kind=kind, payload=payload, cause=events.cause_current())

    handle.__qualname__ = f"automations.feed[{kind}]"
    return handle


def connect() -> None:
    feeds: list[tuple[str, str, Callable[[dict[str, Any]], bool] | None]] = [
        # inbound only: our own sends, notes and the owner's app echoes never start a rule
        (events.MESSAGE_CREATED, Trigger.MESSAGE_RECEIVED, lambda p: p.get("direction") == "in"),
        (events.CONVERSATION_CREATED, Trigger.CONVERSATION_CREATED, None),
        (events.CONVERSATION_UPDATED, Trigger.CONVERSATION_RESOLVED, lambda p: p.get("status") == "resolved"),
        (events.CONTACT_TAGGED, Trigger.TAG_ADDED, None),
        (events.LEAD_STAGE_ENTERED, Trigger.STAGE_ENTERED, None),
        (events.LEAD_STAGE_LEFT, Trigger.STAGE_LEFT, None),
        (events.LEAD_WON, Trigger.LEAD_WON, None),
        (events.LEAD_LOST, Trigger.LEAD_LOST, None),
        (events.CAMPAIGN_REPLIED, Trigger.CAMPAIGN_REPLIED, None),
        (events.CALL_ENDED, Trigger.CALL_ENDED, None),
        (events.INBOUND_WEBHOOK_RECEIVED, Trigger.INBOUND_WEBHOOK, None),
    ]
    for event, kind, keep in feeds:
        events.subscribe(event, _feeder(kind.value, keep=keep))  # type: ignore[attr-defined]
