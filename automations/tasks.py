"""Thin Celery wrapper for the rule runner (queue `hooks`, beside the webhook deliveries)."""

from __future__ import annotations

from django.db import connection

from automations import services
from config.celery import app


@app.task(name="automations.run", acks_late=True)
def run() -> int:
    """Runs in the tenant schema of its headers: that tenant's pending rule events."""
    return services.run(str(getattr(connection, "schema_name", "public")))
