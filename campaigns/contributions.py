"""What campaigns and cadences add to the contacts pages: timeline entries, a cadence panel and the
"start cadence" bulk action."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from campaigns.cadences import cadence_enroll
from campaigns.models import Cadence, EnrollmentStatus
from campaigns.selectors import cadences_active, enrollments_of_contact, recipients_of_contact
from core.contributions import (
    CONTACT_BULK,
    CONTACT_PANEL,
    CONTACT_TIMELINE,
    QUIET_HOURS_OPENING,
    BulkAction,
    contribute,
)
from core.roles import Action


def timeline(*, contact: Any, **kwargs: Any) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for recipient in recipients_of_contact(contact.pk)[:50]:
        campaign = recipient.campaign
        state = recipient.message.get_status_display() if recipient.message else recipient.get_status_display()
        entries.append(
            {
                "when": recipient.processed_at or campaign.started_at or campaign.created_at,
                "text": _("Campaign %(name)s") % {"name": campaign.name},
                "detail": " · ".join(filter(None, [_("campaign"), str(state), recipient.reason])),
            }
        )
    for enrollment in enrollments_of_contact(contact.pk)[:50]:
        name = enrollment.cadence.name
        entries.append(
            {
                "when": enrollment.started_at,
                "text": _("Started cadence %(name)s") % {"name": name},
                "detail": _("cadence"),
            }
        )
        if enrollment.finished_at:
            entries.append(
                {
                    "when": enrollment.finished_at,
                    "text": _("Cadence %(name)s: %(status)s")
                    % {"name": name, "status": enrollment.get_status_display().lower()},
                    "detail": " · ".join(
                        filter(
                            None,
                            [
                                _("cadence"),
                                _("%(count)s steps sent") % {"count": enrollment.steps_sent},
                                enrollment.reason,
                            ],
                        )
                    ),
                }
            )
    return entries


def cadence_panel(*, contact: Any, request: Any = None, **kwargs: Any) -> list[str]:
    enrollments = list(
        enrollments_of_contact(contact.pk).filter(status__in=[EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED])
    )
    cadences = list(cadences_active())
    if not enrollments and not cadences:
        return []
    context = {"contact": contact, "enrollments": enrollments, "cadences": cadences}
    return [render_to_string("campaigns/_contact_panel.html", context, request=request)]


def _start_cadence(*, contacts: Any, data: Any, user: Any) -> str:
    cadence = (
        Cadence.objects.filter(pk=data.get("cadence") or 0).first() if str(data.get("cadence")).isdigit() else None
    )
    if cadence is None:
        raise ValidationError(_("Choose a cadence."))
    count = cadence_enroll(cadence=cadence, contacts=contacts, enrolled_by=user)
    return _("%(count)s contacts started the cadence %(name)s.") % {"count": count, "name": cadence.name}


def _bulk_controls(**kwargs: Any) -> list[BulkAction]:
    cadences = list(cadences_active())
    if not cadences:
        return []
    controls = render_to_string("campaigns/_bulk_cadence.html", {"cadences": cadences})
    # A selection of the table (or all it matches) is an audience: managers, as for campaigns.
    return [
        BulkAction(key="cadence_start", controls=controls, run=_start_cadence, required=Action.CADENCE_ENROLL_AUDIENCE)
    ]


def quiet_opening(**kwargs: Any) -> list[Any]:
    """For other apps' automated outreach (AI calls): when quiet hours let it go again."""
    from campaigns.services import quiet_opening_now

    return [quiet_opening_now()]


def connect() -> None:
    contribute(QUIET_HOURS_OPENING, quiet_opening)
    contribute(CONTACT_TIMELINE, timeline)
    contribute(CONTACT_PANEL, cadence_panel)
    contribute(CONTACT_BULK, _bulk_controls)
