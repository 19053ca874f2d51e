"""Thin Celery wrappers around the rollup services."""

from __future__ import annotations

from django_tenants.utils import get_tenant_model, schema_context

from analytics import services
from config.celery import app


@app.task(name="analytics.rollups_refresh", acks_late=True)
def rollups_refresh() -> dict[str, int]:
    """The hours the events noted, rebuilt in the task's tenant schema (from its headers)."""
    return services.rollups_refresh()


@app.task(name="analytics.rollups_recent_all")
def rollups_recent_all() -> int:
    """Beat: every tenant's last two hours again, in case an event was lost (a worker killed mid-refresh)."""
    done = 0
    for schema in get_tenant_model().objects.exclude(schema_name="public").values_list("schema_name", flat=True):
        with schema_context(schema):
            services.rollups_recent()
            done += 1
    return done
