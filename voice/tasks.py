"""Thin Celery wrappers on the `voice` queue: ids in (the tenant's schema rides in the headers), one
service call. Running one twice does nothing more (the call is claimed with a conditional UPDATE)."""

from __future__ import annotations

import logging

from django_tenants.utils import get_tenant_model, schema_context

from config.celery import app

logger = logging.getLogger(__name__)


@app.task(name="voice.call_place", acks_late=True)
def call_place(call_id: int) -> str:
    from voice.outbound import call_place as place

    return place(call_id=call_id)


@app.task(name="voice.calls_due")
def calls_due() -> int:
    """Beat: in every active tenant, queue the calls whose due time has come (retries, quiet hours) and
    start voice campaigns' next calls."""
    from voice.campaigns import voice_campaigns_due_fill
    from voice.outbound import calls_due_place

    total = 0
    tenants = get_tenant_model().objects.exclude(schema_name="public").filter(is_active=True)
    for schema in tenants.values_list("schema_name", flat=True):
        with schema_context(schema):
            total += calls_due_place()
            total += voice_campaigns_due_fill()  # retries whose delay has passed
    return total


@app.task(name="voice.agents_resync")
def agents_resync() -> int:
    """Beat: in every active tenant, sync again the agents Retell could not take (down, overloaded)."""
    from voice.services import voice_agents_resync_due

    total = 0
    tenants = get_tenant_model().objects.exclude(schema_name="public").filter(is_active=True)
    for schema in tenants.values_list("schema_name", flat=True):
        try:
            with schema_context(schema):
                total += voice_agents_resync_due()
        except Exception:
            logger.exception("voice agents resync failed for a tenant", extra={"schema": schema})
    return total
