"""The events an endpoint can subscribe to (the public names; internal domain events map onto them)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

EVENT_TYPES = {
    "message.received": _("A customer's message arrived"),
    "message.status": _("A message we sent was delivered, read or failed"),
    "conversation.assigned": _("A conversation was assigned"),
    "conversation.status_changed": _("A conversation was resolved or reopened"),
    "contact.opted_out": _("A contact opted out"),
    "contact.opted_in": _("A contact opted back in"),
    "lead.stage_changed": _("A lead card moved to another stage"),
    "lead.won": _("A lead was won"),
    "lead.lost": _("A lead was lost"),
    "campaign.finished": _("A campaign finished"),
    "call.ended": _("A voice call ended"),
}
TEST_EVENT = "webhook.test"
