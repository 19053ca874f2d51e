"""Every log line names the tenant and the request it belongs to."""

from __future__ import annotations

import contextvars
import logging

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from django.db import connection

        record.request_id = request_id_var.get()
        record.tenant = getattr(connection, "schema_name", "-")
        return True
