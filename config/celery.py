"""The Celery app. Tasks carry the tenant schema in their headers (tenant-schemas-celery): a task sent
while a tenant is active runs in that tenant's schema on the worker."""

from __future__ import annotations

import os

from kombu import Queue
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = CeleryApp("controlpanel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("default", "dispatch", "ingest", "ai", "voice", "hooks")]
app.autodiscover_tasks()
