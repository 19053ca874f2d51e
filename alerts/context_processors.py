from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from alerts.selectors import bell_count
from core.roles import Action, role_allows


def bell(request: HttpRequest) -> dict[str, Any]:
    """The open-alert count on the bell of the top bar, for members who may see alerts."""
    membership = getattr(request, "membership", None)
    tenant = getattr(request, "tenant", None)
    if membership is None or tenant is None or tenant.schema_name == "public":
        return {}
    if not role_allows(membership, Action.ALERT_VIEW):
        return {}
    return {"alerts_open": bell_count()}
