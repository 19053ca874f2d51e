"""A reactivated tenant's running campaigns and due cadence steps go on where they stopped."""

from __future__ import annotations

from typing import Any

from core import events


def _reactivated(schema_name: str, payload: dict[str, Any]) -> None:
    from campaigns.tasks import resume_after_suspension

    resume_after_suspension.apply_async(queue="dispatch", headers={"_schema_name": schema_name})


def connect() -> None:
    events.subscribe(events.TENANT_REACTIVATED, _reactivated)
