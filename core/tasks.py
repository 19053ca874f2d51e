from __future__ import annotations

from django.db import connection

from config.celery import app


@app.task(name="core.worker_probe")
def worker_probe() -> dict[str, str]:
    """Answers which schema the worker ran this task in: a diagnostic of tenant routing."""
    tenant = getattr(connection, "tenant", None)
    return {"schema": getattr(connection, "schema_name", "public"), "tenant": getattr(tenant, "slug", "")}
