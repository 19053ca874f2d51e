"""Thin Celery wrappers for the delivery runner (queue `hooks`)."""

from __future__ import annotations

from config.celery import app
from webhooks import delivery


@app.task(name="webhooks.deliver", acks_late=True)
def deliver() -> int:
    """Runs in the tenant schema of its headers: that tenant's due deliveries."""
    return delivery.run(delivery.current_schema())


@app.task(name="webhooks.due_sweep")
def due_sweep() -> int:
    return delivery.due_sweep()
