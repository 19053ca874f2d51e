"""The event bus: an app announces what happened; other apps subscribe in their AppConfig.ready().

Handlers run after the surrounding transaction commits, each with the tenant schema and a small
payload. A failing handler is logged with the tenant and does not stop the others. Slow handlers hand
off to a Celery queue themselves.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], None]
# A handler of many payloads of one event at once (the dispatcher's and the ingest drain's batches): one
# query or round trip for the batch instead of one per payload. announce() hands it a list of one.
BatchHandler = Callable[[str, list[dict[str, Any]]], None]
_subscribers: dict[str, list[Handler]] = defaultdict(list)
_batch_subscribers: dict[str, list[BatchHandler]] = defaultdict(list)

MESSAGE_CREATED = "message.created"  # inbound or outbound, payload: message summary
MESSAGE_STATUS = "message.status"  # payload: id, status, error
# What the owner typed in the WhatsApp Business app (coexistence echo): shown live, never reacted to
# (kept apart from message.created so bots, rules and cadence exits cannot mistake it). Payload: summary.
MESSAGE_FROM_BUSINESS_APP = "message.business_app"
CONTACT_OPTED_OUT = "contact.opted_out"
CONTACT_OPTED_IN = "contact.opted_in"
TEMPLATE_STATUS = "template.status"
CONVERSATION_UPDATED = "conversation.updated"  # assignee or status changed
CONVERSATION_EVENT = "conversation.event"  # a timeline line (assigned, lead moved); payload: conversation_id, id, kind
LEAD_STAGE_ENTERED = "lead.stage_entered"  # payload: card_id, board_id, stage_id, from_stage_id, actor_kind, reason
LEAD_STAGE_LEFT = "lead.stage_left"
LEAD_WON = "lead.won"
LEAD_LOST = "lead.lost"
CONTACT_ERASED = "contact.erased"  # personal data erased (LGPD); payload: contact_id
CALL_ENDED = "call.ended"  # payload: call_id, contact_id, direction, status, duration_ms
CALL_ANALYZED = "call.analyzed"  # Retell's analysis arrived; payload: call_id, contact_id, sentiment, successful
CAMPAIGN_FINISHED = "campaign.finished"  # payload: campaign_id
BOARD_CHANGED = "kanban.changed"  # anything on a board changed: viewers refresh; payload: board_id
# The tenant's plan (or the plan it is on) changed: what caches a feature drops it; payload: tenant_id
PLAN_CHANGED = "tenant.plan_changed"
TENANT_REACTIVATED = "tenant.reactivated"  # held sends and events go on; payload: tenant_id
CONVERSATION_CREATED = "conversation.created"  # payload: conversation_id, contact_id, channel_id
CONTACT_TAGGED = "contact.tagged"  # a tag newly on a contact; payload: contact_id, tag_id, tag
CAMPAIGN_REPLIED = (
    "campaign.replied"  # a recipient answered; payload: campaign_id, contact_id, conversation_id, message_id
)
CADENCE_EXITED = (
    "cadence.exited"  # a contact left a cadence early; payload: enrollment_id, cadence_id, contact_id, reason
)
INBOUND_WEBHOOK_RECEIVED = "webhook.inbound"  # payload: hook_id, event_id, contact_id, values
# A cause that needs the tenant's attention (the alerts app keeps one open alert per kind and key and
# words it; announcers send ids and codes, never translated text). payload: kind, key, detail (dict)
ALERT_RAISED = "alert.raised"
ALERT_CLEARED = "alert.cleared"  # that cause is gone; payload: kind, key

# What caused the events announced now (an automation rule's run: {"depth": n, "rules": [ids]}). It is
# captured when an event is announced and is current again while its handlers run, so a rule that
# reacts to an event its own actions caused can see the chain (automations' loop guard).
_cause: ContextVar[dict[str, Any]] = ContextVar("event_cause", default={})  # noqa: B039 (never mutated)


@contextmanager
def caused_by(**cause: Any) -> Iterator[None]:
    """Events announced inside this block carry `cause` as their metadata."""
    token = _cause.set(dict(cause))
    try:
        yield
    finally:
        _cause.reset(token)


def cause_current() -> dict[str, Any]:
    """The metadata of the event being handled (or of what is running now): {} when nothing set it."""
    return dict(_cause.get())


def subscribe(event: str, handler: Handler) -> None:
    if handler not in _subscribers[event]:
        _subscribers[event].append(handler)


def subscribe_many(event: str, handler: BatchHandler) -> None:
    """Subscribe a handler that takes the payloads of a batch at once (see announce_many)."""
    if handler not in _batch_subscribers[event]:
        _batch_subscribers[event].append(handler)


def announce(event: str, schema_name: str, payload: dict[str, Any]) -> None:
    """Deliver to every subscriber once the current transaction commits (now, outside one), with the
    cause (metadata) current at the announcement."""
    announce_many(event, schema_name, [payload])


def announce_many(event: str, schema_name: str, payloads: list[dict[str, Any]]) -> None:
    """announce() for many payloads of one event (a batch of sends or statuses): batch handlers get them
    in one call, the others one by one, all once the current transaction commits."""
    if not payloads:
        return
    cause = _cause.get()

    def deliver() -> None:
        token = _cause.set(cause)
        try:
            for many in list(_batch_subscribers.get(event, ())):
                try:
                    many(schema_name, payloads)
                except Exception:
                    logger.exception("event handler %s failed for %s in %s", many.__qualname__, event, schema_name)
            for handler in list(_subscribers.get(event, ())):
                for payload in payloads:
                    try:
                        handler(schema_name, payload)
                    except Exception:
                        logger.exception(
                            "event handler %s failed for %s in %s", handler.__qualname__, event, schema_name
                        )
        finally:
            _cause.reset(token)

    transaction.on_commit(deliver)
