from __future__ import annotations

from config.celery import app
from crm.imports import import_run


@app.task(name="crm.contact_import_run", acks_late=True)
def contact_import_run(import_id: int) -> int:
    return import_run(import_id=import_id).processed_rows
