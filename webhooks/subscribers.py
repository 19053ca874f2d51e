"""Domain events -> outgoing webhook deliveries. The announcing apps never import this."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import schema_context

from core import events
from webhooks.services import event_publish, events_publish, subscriptions_changed


def _publisher(public_name: str, *, keep: Any = None) -> events.Handler:
    def handle(schema_name: str, payload: dict[str, Any]) -> None:
        if keep is not None and not keep(payload):
            return
        with schema_context(schema_name):
            event_publish(public_name, payload)

    handle.__qualname__ = f"webhooks.publish[{public_name}]"
    return handle


def _publisher_many(public_name: str) -> events.BatchHandler:
    def handle(schema_name: str, payloads: list[dict[str, Any]]) -> None:
        with schema_context(schema_name):
            events_publish(public_name, payloads)

    handle.__qualname__ = f"webhooks.publish_many[{public_name}]"
    return handle


def _inbound(payload: dict[str, Any]) -> bool:
    return payload.get("direction") == "in"  # outbound and internal notes never go out as "received"


def _plan_changed(schema_name: str, payload: dict[str, Any]) -> None:
    with schema_context(schema_name):
        subscriptions_changed()  # the plan may have turned outgoing webhooks on or off


def connect() -> None:
    events.subscribe(events.PLAN_CHANGED, _plan_changed)
    events.subscribe(events.MESSAGE_CREATED, _publisher("message.received", keep=_inbound))
    events.subscribe_many(events.MESSAGE_STATUS, _publisher_many("message.status"))
    events.subscribe(
        events.CONVERSATION_UPDATED, _publisher("conversation.assigned", keep=lambda p: "assignee_id" in p)
    )
    events.subscribe(
        events.CONVERSATION_UPDATED, _publisher("conversation.status_changed", keep=lambda p: "status" in p)
    )
    events.subscribe(events.CONTACT_OPTED_OUT, _publisher("contact.opted_out"))
    events.subscribe(events.CONTACT_OPTED_IN, _publisher("contact.opted_in"))
    events.subscribe(events.LEAD_STAGE_ENTERED, _publisher("lead.stage_changed"))
    events.subscribe(events.LEAD_WON, _publisher("lead.won"))
    events.subscribe(events.LEAD_LOST, _publisher("lead.lost"))
    events.subscribe(events.CAMPAIGN_FINISHED, _publisher("campaign.finished"))
    events.subscribe(events.CALL_ENDED, _publisher("call.ended"))
