"""Outgoing webhooks as production runs them: committed rows, the real worker on the `hooks` queue, the
beat's sweep waking a retry, a loopback receiver verifying the signatures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from standardwebhooks.webhooks import Webhook

from tests.support import wait_until
from tests.webhooks.receiver import Receiver
from webhooks import delivery as runner
from webhooks.models import Delivery, DeliveryStatus
from webhooks.services import endpoint_create, event_publish


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def test_the_worker_delivers_and_the_beat_sweep_wakes_the_retry(
    celery_worker: Any, tenants: Any, committed: Any, receiver: Receiver
) -> None:
    """Production's path: the event commits, a runner task on the `hooks` queue (the real worker) sends it,
    the 503 is retried when the beat's sweep finds the tenant due, with the same webhook id."""
    receiver.answer = lambda n, r: (503, {}, b"busy") if n == 1 else (200, {}, b"ok")
    alpha = tenants[0]
    connection.set_tenant(alpha)
    endpoint, secret = endpoint_create(url=receiver.url, events=["lead.won"], description="e2e")
    try:
        event_publish("lead.won", {"card_id": 42})
        wait_until(lambda: len(receiver.requests) == 1, timeout=30, what="the first attempt from the worker")
        delivery = Delivery.objects.get(endpoint=endpoint)
        wait_until(lambda: Delivery.objects.get(pk=delivery.pk).attempts == 1, timeout=30, what="attempt recorded")
        due = Delivery.objects.get(pk=delivery.pk).next_attempt_at
        assert due is not None
        wait_until(lambda: runner.due_sweep() > 0 or len(receiver.requests) > 1, timeout=30, what="the tenant due")
        wait_until(lambda: len(receiver.requests) == 2, timeout=30, what="the retry from the worker")
        first, second = receiver.requests
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        assert dict(Webhook(secret).verify(second.body, second.headers))["data"] == {"card_id": 42}
        wait_until(
            lambda: Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED, timeout=30, what="success"
        )
    finally:
        connection.set_tenant(alpha)
        endpoint.delete()
