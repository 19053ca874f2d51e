"""Thin Celery wrappers around the usage services."""

from __future__ import annotations

from config.celery import app
from tenants import usage


@app.task(name="tenants.usage_alerts_refresh_all")
def usage_alerts_refresh_all() -> int:
    """Beat, daily: every tenant's usage alerts in line with its use and limits (a new month clears them)."""
    return usage.usage_alerts_refresh_all()
