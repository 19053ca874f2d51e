"""Thin Celery wrappers: ids in, one service call."""

from __future__ import annotations

import logging

from django_tenants.utils import get_tenant_model, schema_context

from campaigns import cadences, services
from config.celery import app

logger = logging.getLogger(__name__)


@app.task(name="campaigns.run", bind=True, max_retries=None, acks_late=True)
def campaign_run(self, campaign_id: int) -> None:  # type: ignore[no-untyped-def]
    delay = services.campaign_run(campaign_id=campaign_id)
    if delay is not None:
        raise self.retry(countdown=delay)


@app.task(name="campaigns.cadence_tick")
def cadence_tick() -> int:
    """Run the due cadence steps of the current tenant (called on enrollment, and by the beat tick).
    Returns the steps handed on (messages queued, calls placed)."""
    total = 0
    while True:  # a backlog: keep going until it is worked off (each batch its own transaction)
        handed, claimed = cadences.cadences_advance_counted()
        total += handed
        if claimed < cadences.MAX_BATCH:
            return total


@app.task(name="campaigns.tick")
def tick() -> int:
    """Beat: in every active tenant, start the scheduled campaigns that are due, start the cadences for
    inactive contacts and run due cadence steps (a suspended tenant's wait until it is reactivated). One
    tenant's error is logged and the others go on."""
    total = 0
    tenants = get_tenant_model().objects.exclude(schema_name="public").filter(is_active=True)
    for schema in tenants.values_list("schema_name", flat=True):
        try:
            with schema_context(schema):
                total += services.campaigns_start_due()
                cadences.cadences_enroll_inactive()
                total += cadence_tick()
        except Exception:
            logger.exception("campaigns tick failed for a tenant", extra={"schema": schema})
    return total


@app.task(name="campaigns.resume_after_suspension")
def resume_after_suspension() -> int:
    """After a reactivation: running campaigns go on, due cadence steps are sent."""
    return services.campaigns_resume_running() + cadence_tick()
