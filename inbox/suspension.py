"""What a reactivated tenant had waiting goes on: held provider events are applied, queued messages sent."""

from __future__ import annotations

from typing import Any

from core import events


def _reactivated(schema_name: str, payload: dict[str, Any]) -> None:
    from inbox.ingest import ingest_release_held
    from inbox.tasks import messages_release
    from intake.services import drain_kick

    if ingest_release_held(tenant_id=payload["tenant_id"]):
        drain_kick()
    messages_release.apply_async(queue="dispatch", headers={"_schema_name": schema_name})


def connect() -> None:
    events.subscribe(events.TENANT_REACTIVATED, _reactivated)
