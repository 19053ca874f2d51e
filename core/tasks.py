from __future__ import annotations

from typing import Any

from django.db import connection, transaction

from config.celery import app


@app.task(name="core.worker_probe")
def worker_probe() -> dict[str, str]:
    """Answers which schema the worker ran this task in: a diagnostic of tenant routing."""
    tenant = getattr(connection, "tenant", None)
    return {"schema": getattr(connection, "schema_name", "public"), "tenant": getattr(tenant, "slug", "")}


def send_on_commit(task: Any, *args: Any, queue: str) -> None:
    """Enqueue `task` after the transaction commits, in the schema that is active NOW (by then the
    connection may have moved to another tenant)."""
    schema = getattr(connection, "schema_name", "public")
    transaction.on_commit(lambda: task.apply_async(args=args, queue=queue, headers={"_schema_name": schema}))
