"""Beat tasks of the intake (public schema)."""

from __future__ import annotations

from config.celery import app
from intake.services import events_purge


@app.task(name="intake.events_purge")
def events_purge_task() -> int:
    """Beat: empty raw payloads past the retention period (ids stay to refuse replays)."""
    return events_purge()
