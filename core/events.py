"""The event bus: an app announces what happened; other apps subscribe in their AppConfig.ready().

Handlers run after the surrounding transaction commits, each with the tenant schema and a small
payload. A failing handler is logged with the tenant and does not stop the others. Slow handlers hand
off to a Celery queue themselves.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], None]
_subscribers: dict[str, list[Handler]] = defaultdict(list)

MESSAGE_CREATED = "message.created"  # inbound or outbound, payload: message summary
MESSAGE_STATUS = "message.status"  # payload: id, status, error
# What the owner typed in the WhatsApp Business app (coexistence echo): shown live, never reacted to
# (kept apart from message.created so bots, rules and cadence exits cannot mistake it). Payload: summary.
MESSAGE_FROM_BUSINESS_APP = "message.business_app"
CONTACT_OPTED_OUT = "contact.opted_out"
CONTACT_OPTED_IN = "contact.opted_in"
TEMPLATE_STATUS = "template.status"
CONVERSATION_UPDATED = "conversation.updated"  # assignee or status changed
LEAD_STAGE_ENTERED = "lead.stage_entered"  # payload: card_id, board_id, stage_id, from_stage_id, actor_kind, reason
LEAD_STAGE_LEFT = "lead.stage_left"
LEAD_WON = "lead.won"
LEAD_LOST = "lead.lost"
CONTACT_ERASED = "contact.erased"  # personal data erased (LGPD); payload: contact_id
CALL_ENDED = "call.ended"  # payload: call_id, contact_id, direction, status, duration_ms
CAMPAIGN_FINISHED = "campaign.finished"  # payload: campaign_id
BOARD_CHANGED = "kanban.changed"  # anything on a board changed: viewers refresh; payload: board_id
TENANT_REACTIVATED = "tenant.reactivated"  # held sends and events go on; payload: tenant_id


def subscribe(event: str, handler: Handler) -> None:
    if handler not in _subscribers[event]:
        _subscribers[event].append(handler)


def announce(event: str, schema_name: str, payload: dict[str, Any]) -> None:
    """Deliver to every subscriber once the current transaction commits (now, outside one)."""

    def deliver() -> None:
        for handler in list(_subscribers.get(event, ())):
            try:
                handler(schema_name, payload)
            except Exception:
                logger.exception("event handler %s failed for %s in %s", handler.__qualname__, event, schema_name)

    transaction.on_commit(deliver)
