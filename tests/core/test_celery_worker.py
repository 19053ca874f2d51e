from __future__ import annotations

from typing import Any

from django.db import connection

from core.tasks import worker_probe
from tenants.models import Tenant


def test_a_real_worker_runs_each_task_in_the_schema_that_enqueued_it(
    celery_worker: None, tenants: tuple[Tenant, Tenant], django_db_blocker: Any
) -> None:
    alpha, beta = tenants
    with django_db_blocker.unblock():
        connection.set_tenant(alpha)
        from_alpha = worker_probe.delay()
        connection.set_tenant(beta)
        from_beta = worker_probe.delay()
        connection.set_schema_to_public()
        from_public = worker_probe.delay()

    assert from_alpha.get(timeout=30) == {"schema": alpha.schema_name, "tenant": "alpha"}
    assert from_beta.get(timeout=30) == {"schema": beta.schema_name, "tenant": "beta"}
    assert from_public.get(timeout=30)["schema"] == "public"


def test_tasks_route_to_named_queues(celery_worker: None) -> None:
    from config.celery import app

    queues = {q.name for q in app.conf.task_queues}
    assert queues == {"default", "dispatch", "ingest", "ai", "voice", "hooks"}
    active = app.control.inspect(timeout=2).active_queues() or {}
    consumed = {q["name"] for worker_queues in active.values() for q in worker_queues}
    assert queues <= consumed


def test_a_task_sent_to_one_queue_reaches_only_that_queue() -> None:
    from config.celery import app

    routes = {q.name: q.routing_key for q in app.conf.task_queues}
    assert routes == {name: name for name in routes}  # distinct keys: no fan-out to every queue
