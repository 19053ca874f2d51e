"""Why a contact leaves a cadence on its own: a reply (when the cadence says so), an opt-out, a lead's
move (the goal stage, won or lost, any change when the cadence says so); and a reply that answers a
campaign, announced."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import schema_context

from campaigns.cadences import enrollments_reply, enrollments_stage_entered, enrollments_stop_on_opt_out
from campaigns.services import campaign_reply_note, recipients_replied
from core import events


def _message_created(schema_name: str, payload: dict[str, Any]) -> None:
    if payload.get("direction") != "in":
        return
    with schema_context(schema_name):
        enrollments_reply(contact_id=payload["contact_id"])
        campaign_reply_note(
            contact_id=payload["contact_id"], conversation_id=payload["conversation_id"], message_id=payload["id"]
        )
        recipients_replied(contact_id=payload["contact_id"])


def _opted_out(schema_name: str, payload: dict[str, Any]) -> None:
    with schema_context(schema_name):
        enrollments_stop_on_opt_out(contact_id=payload["contact_id"], medium=payload["medium"])


def _stage_entered(schema_name: str, payload: dict[str, Any]) -> None:
    if not payload.get("contact_id"):
        return
    from kanban.selectors import stage_kind

    with schema_context(schema_name):
        enrollments_stage_entered(
            contact_id=payload["contact_id"],
            stage_id=payload["stage_id"],
            from_stage_id=payload.get("from_stage_id"),
            stage_kind=stage_kind(payload["stage_id"]),
        )


def connect() -> None:
    from campaigns.services import campaign_channels_to_build, campaigns_build, quiet_opening_now, recipients_follow
    from inbox import dispatcher

    dispatcher.register(quiet_opening=quiet_opening_now, builder=campaigns_build, listener=recipients_follow)
    dispatcher.register_build_channels(campaign_channels_to_build)
    events.subscribe(events.MESSAGE_CREATED, _message_created)
    events.subscribe(events.CONTACT_OPTED_OUT, _opted_out)
    events.subscribe(events.LEAD_STAGE_ENTERED, _stage_entered)
