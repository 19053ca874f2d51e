"""Places where an app to the right adds to a page of an app to the left, without being imported by it
(the contact page shows pipeline cards; the inbox side panel shows the lead card).

    contribute("contact.panel", fn)          # in AppConfig.ready(); fn(**kwargs) -> list of HTML strings
    collect("contact.panel", contact=c, request=request)  # in the page that owns the slot
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_slots: dict[str, list[Callable[..., list[Any]]]] = defaultdict(list)

CONTACT_PANEL = "contact.panel"  # -> HTML fragments about a contact
# -> {"when": datetime, "text": str, "detail": str} and optionally "url" (the entry's page) and "body" with
# "body_label" (a longer text shown folded, e.g. a call's transcript)
CONTACT_TIMELINE = "contact.timeline"
CONTACT_FILTERS = "contacts.filters"  # -> HTML form controls for the contacts table's filter form
CONTACT_BULK = "contacts.bulk"  # -> BulkAction: more actions on the contacts table's selection
CONTACT_CONVERSATIONS = "contact.conversations"  # (contact, user, role) -> the conversations this member may open
CONTACT_MERGE_GUARD = "contact.merge_guard"  # (contacts, user, role) -> reasons this member may not merge them
CONVERSATION_PANEL = "conversation.panel"  # (conversation, request) -> HTML fragments for its side panel
CONVERSATION_COMPOSER = "conversation.composer"  # (conversation, request) -> HTML fragments under the composer
MEDIA_GUARD = "media.guard"  # (path, user, role) -> reasons this member may not have this stored file
CARD_PANEL = "card.panel"  # (card, request) -> HTML fragments for a lead card's page
BOARD_CARD_BADGES = "board.card_badges"  # (board, cards, request) -> (card id, HTML) pairs shown on the cards
CHANNEL_CONNECT = "channels.connect"  # (request) -> PageBlock: a way to connect a number, atop the channels page
RULE_WEBHOOK_ENDPOINTS = "rules.webhook_endpoints"  # () -> (id, label) of endpoints an automation rule may call
RULE_INBOUND_HOOKS = "rules.inbound_hooks"  # () -> (id, name) of inbound webhooks a rule may start from
CADENCE_CALL_AGENTS = "cadence.call_agents"  # () -> (id, label) of voice agents a cadence call step may use
# (contact_id, agent_id, idempotency_key, context) -> [call id]: queue one outbound call per key (a second
# contribution with the same key returns the first call's id and places nothing)
CADENCE_CALL_PLACE = "cadence.call_place"
# () -> [datetime | None]: when automated outreach held by the tenant's quiet hours may go again (None: now)
QUIET_HOURS_OPENING = "quiet_hours.opening"
RULE_WEBHOOK_CALL = "rules.webhook_call"  # (endpoint_id, event_type, data) -> [delivery id] queued for that endpoint


@dataclass(frozen=True)
class PageBlock:
    """HTML an app adds to another app's page, with what the page's headers must allow for it: more
    Content-Security-Policy sources (django-csp's update) and a Cross-Origin-Opener-Policy (a popup that
    talks back to its opener needs "same-origin-allow-popups")."""

    html: str
    csp: dict[str, list[str]] = field(default_factory=dict)
    opener_policy: str = ""


@dataclass(frozen=True)
class BulkAction:
    """An action on a selection of contacts: its form controls (named ``action`` = key on the button) and
        ``run(contacts=<queryset>, data=<POST>, user=<user>) -> str``, the text of the confirmation toast.
        ``run`` raises django's ValidationError with a message for the user when it cannot proceed. The page
    checks ``required`` (a role-table action) before it runs."""

    key: str
    controls: str
    run: Callable[..., str]
    required: str  # the core.roles.Action the member's role must allow


def contribute(slot: str, fn: Callable[..., list[Any]]) -> None:
    if fn not in _slots[slot]:
        _slots[slot].append(fn)


def withdraw(slot: str, fn: Callable[..., list[Any]]) -> None:
    """Undo a contribute (tests that stand in for an app)."""
    if fn in _slots.get(slot, []):
        _slots[slot].remove(fn)


def collect(slot: str, **kwargs: Any) -> list[Any]:
    found: list[Any] = []
    for fn in _slots.get(slot, ()):
        found.extend(fn(**kwargs) or [])
    return found
