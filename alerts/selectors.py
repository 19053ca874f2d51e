"""Reads of alerts: the list (open or closed, by kind), one alert worded for showing."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from alerts import kinds
from alerts.models import Alert

STATES = ("open", "resolved", "all")


def alerts_filtered(*, state: str = "open", kind: str = "") -> QuerySet[Alert]:
    found = Alert.objects.all()
    if state == "open":
        found = found.filter(resolved_at=None)
    elif state == "resolved":
        found = found.exclude(resolved_at=None)
    if kind:
        found = found.filter(kind=kind)
    return found


def bell_count() -> int:
    """Open alerts nobody dismissed: the number on the bell."""
    return Alert.objects.filter(resolved_at=None, dismissed_at=None).count()


def alert_kinds_known() -> list[tuple[str, str]]:
    """(kind, its title without details) for the filter."""
    return [(name, kinds.word(name, {}).title.replace("?", "…")) for name in kinds.KINDS]


@dataclass(frozen=True)
class AlertView:
    alert: Alert
    worded: kinds.Worded


def alerts_worded(alerts: list[Alert]) -> list[AlertView]:
    """Each alert with its words in the active language."""
    return [AlertView(alert, kinds.word(alert.kind, alert.detail)) for alert in alerts]
