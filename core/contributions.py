"""Places where an app to the right adds to a page of an app to the left, without being imported by it
(the contact page shows pipeline cards; the inbox side panel shows the lead card).

    contribute("contact.panel", fn)          # in AppConfig.ready(); fn(**kwargs) -> list of HTML strings
    collect("contact.panel", contact=c, request=request)  # in the page that owns the slot
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_slots: dict[str, list[Callable[..., list[Any]]]] = defaultdict(list)

CONTACT_PANEL = "contact.panel"  # -> HTML fragments about a contact
CONTACT_TIMELINE = "contact.timeline"  # -> {"when": datetime, "text": str, "detail": str}
CONTACT_FILTERS = "contacts.filters"  # -> HTML form controls for the contacts table's filter form
CONTACT_BULK = "contacts.bulk"  # -> BulkAction: more actions on the contacts table's selection
CONTACT_CONVERSATIONS = "contact.conversations"  # (contact, user, role) -> the conversations this member may open
CONTACT_MERGE_GUARD = "contact.merge_guard"  # (contacts, user, role) -> reasons this member may not merge them
CONVERSATION_PANEL = "conversation.panel"  # (conversation, request) -> HTML fragments for its side panel
MEDIA_GUARD = "media.guard"  # (path, user, role) -> reasons this member may not have this stored file


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


def collect(slot: str, **kwargs: Any) -> list[Any]:
    found: list[Any] = []
    for fn in _slots.get(slot, ()):
        found.extend(fn(**kwargs) or [])
    return found
