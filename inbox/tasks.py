"""Thin Celery wrappers: ids in, one service call, retries where the service asks for them."""

from __future__ import annotations

import logging
from datetime import timedelta

from django_tenants.utils import get_tenant_model, schema_context

from config.celery import app
from inbox import ingest, services
from inbox.models import Message
from inbox.providers import ErrorKind, ProviderError, provider_for
from intake.services import drain_kick

logger = logging.getLogger(__name__)


@app.task(name="inbox.dispatch", bind=True, max_retries=None, acks_late=True)
def dispatch_message(self, message_id: int) -> None:  # type: ignore[no-untyped-def]
    delay = services.message_dispatch(message_id=message_id)
    if delay is not None:
        raise self.retry(countdown=delay)


@app.task(name="inbox.dispatch_run", acks_late=False)
def dispatch_run(channel_id: int) -> int:
    """A dispatcher runner for one channel (inbox.dispatcher.Runner): serves until nothing is due, then
    leaves; hands over to a fresh task when its time is up and work is left. Returns the messages sent."""
    from inbox.dispatcher import Runner, rekick_after

    runner = Runner(channel_id)
    stats = runner.run()
    rekick_after(runner)  # work due, or a kick that came while it was leaving: a fresh runner
    return stats.sent


@app.task(name="inbox.dispatch_ensure")
def dispatch_ensure() -> int:
    """Beat: in every active tenant, recover dead runners' work and start runners where work is due."""
    from inbox.dispatcher import ensure

    total = 0
    for schema in (
        get_tenant_model()
        .objects.exclude(schema_name="public")
        .filter(is_active=True)
        .values_list("schema_name", flat=True)
    ):
        with schema_context(schema):
            total += ensure()
    return total


@app.task(name="inbox.messages_release")
def messages_release() -> int:
    """After a reactivation: the tenant's queued messages go out."""
    return services.messages_release()


@app.task(name="inbox.ingest_drain", acks_late=True)
def ingest_drain() -> int:
    return ingest.ingest_drain()


@app.task(name="inbox.ingest_sweep")
def ingest_sweep() -> None:
    """Beat: wake a drain for events deferred or left behind."""
    if ingest.pending_count():
        drain_kick()


@app.task(name="inbox.media_fetch", bind=True, max_retries=5, acks_late=True)
def media_fetch(self, message_id: int) -> None:  # type: ignore[no-untyped-def]
    try:
        services.media_store(message_id=message_id)
    except ProviderError as exc:
        if exc.kind == ErrorKind.PERMANENT:  # refused by the URL guard, gone, too large: never comes back
            logger.warning("media of message %s not fetched: %s", message_id, exc.code)
            return
        raise self.retry(exc=exc, countdown=10 * (self.request.retries + 1)) from exc
    except Exception as exc:
        raise self.retry(exc=exc, countdown=10 * (self.request.retries + 1)) from exc


@app.task(name="inbox.mark_read")
def mark_read(message_id: int) -> None:
    message = Message.objects.select_related("channel").get(pk=message_id)
    if message.provider_message_id:
        provider_for(message.channel).mark_read(message.provider_message_id)


@app.task(name="inbox.sending_sweep")
def sending_sweep(stuck_after_s: float | None = None) -> int:
    """Beat: in every tenant, sends stuck in 'sending' become 'unknown' (never blindly retried)."""
    older_than = timedelta(seconds=stuck_after_s) if stuck_after_s is not None else None
    total = 0
    for schema in get_tenant_model().objects.exclude(schema_name="public").values_list("schema_name", flat=True):
        with schema_context(schema):
            total += services.sending_sweep(older_than=older_than)
    return total
