"""Thin Celery wrappers around the report services."""

from __future__ import annotations

from config.celery import app
from reports import services


@app.task(name="reports.tick")
def reports_tick() -> int:
    """Beat, every 15 minutes: each tenant's report whose local send time has come, once per period."""
    return services.reports_tick()


@app.task(name="reports.test_send")
def report_test_send() -> int:
    """The settings page's "send a test report now", in the task's tenant schema (from its headers)."""
    return len(services.report_send_test())
