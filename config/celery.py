"""The Celery app. Tasks carry the tenant schema in their headers (tenant-schemas-celery): a task sent
while a tenant is active runs in that tenant's schema on the worker."""

from __future__ import annotations

import os

from kombu import Exchange, Queue
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

QUEUES = ("default", "dispatch", "ingest", "ai", "voice", "hooks")

app = CeleryApp("controlpanel")
app.config_from_object("django.conf:settings", namespace="CELERY")
# One direct exchange, one routing key per queue: a task sent to "dispatch" lands in "dispatch" only.
_exchange = Exchange("tasks", type="direct")
app.conf.task_queues = [Queue(name, _exchange, routing_key=name) for name in QUEUES]
app.conf.task_default_exchange = "tasks"
app.conf.task_default_routing_key = "default"
app.autodiscover_tasks()
