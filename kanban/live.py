"""Board viewers get every change of their board live."""

from __future__ import annotations

from typing import Any

from core import events
from core.realtime import STAFF_TOPIC, push


def _board_changed(schema_name: str, payload: dict[str, Any]) -> None:
    push(schema_name, STAFF_TOPIC, events.BOARD_CHANGED, payload)


def connect() -> None:
    events.subscribe(events.BOARD_CHANGED, _board_changed)
