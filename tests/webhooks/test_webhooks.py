"""Outgoing webhooks: signed per Standard Webhooks (checked with the reference package), retried on the
documented schedule with a frozen clock, 410 disables, 429/5xx hold the endpoint back, rotation signs
with both secrets, replay keeps the webhook id, domain events become deliveries, pages and API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.test import Client
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from accounts.models import Role
from inbox.ingest import drain_batch
from inbox.services import note_add
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.messaging import inbound, meta_envelope, meta_messages_value, open_conversation, post_meta
from tests.support import make_member
from tests.webhooks.receiver import Received, Receiver
from webhooks import delivery as runner
from webhooks.models import Delivery, DeliveryStatus, Endpoint
from webhooks.services import (
    delivery_replay,
    endpoint_create,
    endpoint_rotate_secret,
    endpoint_update,
    event_publish,
    send_test_event,
)

pytestmark = pytest.mark.django_db
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def _verify(secret: str, got: Received) -> dict[str, Any]:
    return dict(Webhook(secret).verify(got.body, got.headers))


def test_a_delivery_is_signed_as_standard_webhooks_defines(in_tenant_a: Tenant, receiver: Receiver) -> None:
    endpoint, secret = endpoint_create(url=receiver.url, events=["lead.won"], headers={"X-Api-Key": "k-123"})
    from django.db import connection

    with connection.cursor() as cursor:  # stored encrypted: neither the secret nor a header value in clear
        cursor.execute("SELECT secrets || headers FROM webhooks_endpoint WHERE id = %s", [endpoint.pk])
        raw = cursor.fetchone()[0]
    assert secret.startswith("whsec_") and secret not in raw and "k-123" not in raw
    assert event_publish("lead.won", {"card_id": 7}) == 1
    assert event_publish("lead.lost", {"card_id": 7}) == 0  # not subscribed
    assert runner.deliver_batch() == 1
    (got,) = receiver.requests
    body = _verify(secret, got)
    assert body["type"] == "lead.won" and body["data"] == {"card_id": 7}
    assert got.headers["webhook-id"].startswith("msg_") and got.headers["x-api-key"] == "k-123"
    assert got.headers["content-type"] == "application/json"
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY").verify(got.body, got.headers)
    tampered = dict(got.headers, **{"webhook-timestamp": str(int(got.headers["webhook-timestamp"]) - 1)})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(got.body, tampered)
    sent = Delivery.objects.get()
    assert (sent.status, sent.attempts, sent.last_status_code) == (DeliveryStatus.SUCCEEDED, 1, 200)
    assert sent.attempt_log.get().response_body == "ok"


def test_retries_follow_the_schedule_with_the_same_id_until_it_succeeds(
    in_tenant_a: Tenant, receiver: Receiver
) -> None:
    receiver.answer = lambda n, r: (500, {}, b"down") if n <= 4 else (200, {}, b"ok")
    endpoint, secret = endpoint_create(url=receiver.url, events=["lead.won"])
    with time_machine.travel(START, tick=False) as clock:
        event_publish("lead.won", {"card_id": 1})
        waits = []
        for _ in range(5):
            assert runner.deliver_batch() == 1
            delivery = Delivery.objects.get()
            if delivery.status == DeliveryStatus.SUCCEEDED:
                break
            assert runner.deliver_batch() == 0  # not due yet: nothing goes early
            wait = (delivery.next_attempt_at - datetime.now(UTC)).total_seconds()
            waits.append(wait)
            clock.shift(timedelta(seconds=wait))
        for expected, wait in zip((5, 300, 1800, 7200), waits, strict=True):
            assert expected * 0.8 <= wait <= expected * 1.2  # about the schedule, with jitter
        ids = {r.headers["webhook-id"] for r in receiver.requests}
        assert len(receiver.requests) == 5 and len(ids) == 1
        assert [_verify(secret, r)["type"] for r in receiver.requests[-1:]] == ["lead.won"]
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 5)
    assert [a.status_code for a in delivery.attempt_log.order_by("number")] == [500, 500, 500, 500, 200]
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None and endpoint.enabled


def test_after_every_attempt_it_is_failed_and_the_endpoint_is_disabled_after_days(
    in_tenant_a: Tenant, receiver: Receiver
) -> None:
    receiver.answer = lambda n, r: (400, {}, b"bad")
    endpoint, _secret = endpoint_create(url=receiver.url, events=["lead.won"])
    with time_machine.travel(START, tick=False) as clock:
        event_publish("lead.won", {"card_id": 1})
        for _ in range(10):
            assert runner.deliver_batch() == 1
            due = Delivery.objects.get().next_attempt_at
            if due:
                clock.shift(due - datetime.now(UTC))
        delivery = Delivery.objects.get()
        assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 10)
        assert runner.deliver_batch() == 0 and runner.next_due_at() is None
        endpoint.refresh_from_db()
        assert endpoint.enabled and endpoint.failing_since == START  # about three days of retries so far
        clock.move_to(START + runner.DISABLE_AFTER - timedelta(hours=1))  # the retries' jitter set aside
        event_publish("lead.won", {"card_id": 2})
        assert runner.deliver_batch() == 1  # fails again, not yet five days after the first failure
        endpoint.refresh_from_db()
        assert endpoint.enabled
        clock.move_to(START + runner.DISABLE_AFTER + timedelta(hours=1))
        event_publish("lead.won", {"card_id": 3})
        assert runner.deliver_batch() == 2  # card 2's retry and card 3 fail, five days after the first failure
        endpoint.refresh_from_db()
        assert not endpoint.enabled and "failing since" in endpoint.disabled_reason
        event_publish("lead.won", {"card_id": 4})  # a disabled endpoint gets nothing new
        assert Delivery.objects.count() == 3
        endpoint_update(endpoint, enabled=True)  # switched back on: a fresh start
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is None and endpoint.disabled_reason == ""


def test_410_disables_the_endpoint_and_429_holds_it_back(in_tenant_a: Tenant, receiver: Receiver) -> None:
    receiver.answer = lambda n, r: (429, {"Retry-After": "120"}, b"slow down") if n == 1 else (410, {}, b"gone")
    endpoint, _secret = endpoint_create(url=receiver.url, events=["lead.won"])
    with time_machine.travel(START, tick=False) as clock:
        event_publish("lead.won", {"card_id": 1})
        event_publish("lead.won", {"card_id": 2})
        runner.deliver_batch(limit=1)
        endpoint.refresh_from_db()
        assert endpoint.slow_until == START + timedelta(seconds=120)
        clock.shift(timedelta(seconds=60))
        assert runner.deliver_batch() == 0  # the other delivery waits for the endpoint too
        assert runner.next_due_at() == START + timedelta(seconds=120)
        clock.shift(timedelta(seconds=61))
        assert runner.deliver_batch() == 2  # both due once the hold ends: the receiver says 410 Gone
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason == "answered 410 Gone"
    assert Delivery.objects.filter(status=DeliveryStatus.FAILED).count() == 2
    assert runner.next_due_at() is None


def test_a_5xx_among_successes_retries_only_itself_a_batch_of_failures_holds_the_endpoint(
    in_tenant_a: Tenant, receiver: Receiver
) -> None:
    def answer(_n: int, got: Received) -> tuple[int, dict[str, str], bytes]:
        card = json.loads(got.body)["data"]["card_id"]
        return (500, {}, b"oops") if card % 2 or failing_all else (200, {}, b"ok")

    failing_all = False
    receiver.answer = answer
    endpoint, _secret = endpoint_create(url=receiver.url, events=["lead.won"])
    with time_machine.travel(START, tick=False) as clock:
        for card in range(6):
            event_publish("lead.won", {"card_id": card})
        assert runner.deliver_batch() == 6  # half answered 500
        endpoint.refresh_from_db()
        assert endpoint.slow_until is None  # not held back: it takes the others
        event_publish("lead.won", {"card_id": 10})
        assert runner.deliver_batch() == 1  # a new event goes at once
        failing_all = True
        clock.shift(timedelta(seconds=10))  # the three retries are due: the endpoint fails all of them
        assert runner.deliver_batch() == 3
        endpoint.refresh_from_db()
        assert endpoint.slow_until is not None and endpoint.slow_until > START + timedelta(seconds=10)
        event_publish("lead.won", {"card_id": 12})
        assert runner.deliver_batch() == 0  # held back with the rest
    assert Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 4


def test_a_rotated_secret_signs_alongside_the_old_one_during_the_overlap(
    in_tenant_a: Tenant, receiver: Receiver
) -> None:
    endpoint, old = endpoint_create(url=receiver.url, events=["lead.won"])
    with time_machine.travel(START, tick=False) as clock:
        new = endpoint_rotate_secret(endpoint)
        event_publish("lead.won", {"card_id": 1})
        runner.deliver_batch()
        got = receiver.requests[-1]
        assert len(got.headers["webhook-signature"].split(" ")) == 2
        assert _verify(old, got) == _verify(new, got)
        clock.shift(timedelta(hours=25))
        event_publish("lead.won", {"card_id": 2})
        runner.deliver_batch()
        late = receiver.requests[-1]
        assert len(late.headers["webhook-signature"].split(" ")) == 1
        _verify(new, late)
        with pytest.raises(WebhookVerificationError):
            _verify(old, late)


def test_replay_and_test_event_keep_ids_and_reach_the_receiver(in_tenant_a: Tenant, receiver: Receiver) -> None:
    endpoint, secret = endpoint_create(url=receiver.url, events=["lead.won"])
    event_publish("lead.won", {"card_id": 1})
    runner.deliver_batch()
    delivery_replay(Delivery.objects.get())
    runner.deliver_batch()
    first, again = receiver.requests
    assert first.headers["webhook-id"] == again.headers["webhook-id"] and first.body == again.body
    test = send_test_event(endpoint)
    runner.deliver_batch()
    assert _verify(secret, receiver.requests[-1])["type"] == "webhook.test"
    test.refresh_from_db()
    assert test.status == DeliveryStatus.SUCCEEDED


def test_a_url_that_is_not_public_is_refused(in_tenant_a: Tenant, settings: Any) -> None:
    settings.OUTBOUND_URL_ALLOW_LOOPBACK = False
    for url in ("http://127.0.0.1:9/x", "http://10.0.0.5/x", "http://169.254.169.254/latest/meta-data", "ftp://x.org/"):
        with pytest.raises(ValidationError):
            endpoint_create(url=url, events=["lead.won"])
    with pytest.raises(ValidationError):
        endpoint_create(url="https://93.184.215.14/in", events=["no.such.event"])
    with pytest.raises(ValidationError):
        endpoint_create(url="https://93.184.215.14/in", events=["lead.won"], headers={"webhook-id": "x"})
    assert not Endpoint.objects.exists()


def test_domain_events_become_deliveries_and_notes_never_go_out(
    in_tenant_a: Tenant, channels: dict[str, int], receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    endpoint_create(url=receiver.url, events=["message.received"])
    with django_capture_on_commit_callbacks(execute=True):
        body = meta_envelope(meta_messages_value(messages=[inbound("text", "wamid.hook.1")]))
        assert post_meta(body).status_code == 200
        drain_batch()
        from django.db import connection

        connection.set_tenant(in_tenant_a)
        conversation = open_conversation(channels["whatsapp"])
        note_add(conversation=conversation, body="interno", author=None)
    (delivery,) = Delivery.objects.all()
    assert delivery.event_type == "message.received" and delivery.payload["data"]["direction"] == "in"
    assert runner.deliver_batch() == 1
    assert json.loads(receiver.requests[0].body)["data"]["body"] == delivery.payload["data"]["body"]


def test_pages_show_the_secret_once_and_agents_are_refused(in_tenant_a: Tenant, receiver: Receiver) -> None:
    owner = make_member(in_tenant_a, "hooks-page-owner@alpha.test", Role.OWNER)
    client = tenant_client(in_tenant_a, owner)
    created = client.post(
        "/settings/webhooks/",
        {"url": receiver.url, "events": ["lead.won", "message.received"], "headers": "X-Token: abc", "enabled": "on"},
    )
    assert created.status_code == 201
    endpoint = Endpoint.objects.get()
    secret = endpoint.secrets["current"]
    assert secret in created.content.decode()
    detail = client.get(f"/settings/webhooks/{endpoint.pk}/").content.decode()
    assert secret not in detail and "abc" not in detail and "X-Token" in detail
    assert client.post(f"/settings/webhooks/{endpoint.pk}/test/").status_code == 302
    runner.deliver_batch()
    assert "webhook.test" in client.get(f"/settings/webhooks/{endpoint.pk}/").content.decode()
    rotated = client.post(f"/settings/webhooks/{endpoint.pk}/rotate/")
    endpoint.refresh_from_db()
    assert endpoint.secrets["current"] in rotated.content.decode() and endpoint.secrets["current"] != secret
    agent = tenant_client(in_tenant_a, make_member(in_tenant_a, "hooks-agent@alpha.test", Role.AGENT))
    assert agent.get("/settings/webhooks/").status_code == 403


def test_the_api_answers_the_secret_only_on_create_and_rotate(in_tenant_a: Tenant, receiver: Receiver) -> None:
    from accounts.services import api_token_create

    owner = make_member(in_tenant_a, "hooks-api-owner@alpha.test", Role.OWNER)
    _token, raw = api_token_create(user=owner, tenant=in_tenant_a, name="hooks")
    api = Client(HTTP_HOST=f"{in_tenant_a.slug}.localhost", HTTP_AUTHORIZATION=f"Token {raw}")
    created = api.post(
        "/api/v1/webhook-endpoints/",
        {"url": receiver.url, "events": ["lead.won"], "headers": {"X-Token": "abc"}},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["secret"].startswith("whsec_") and data["header_names"] == ["X-Token"] and "headers" not in data
    listed = api.get("/api/v1/webhook-endpoints/").content.decode()
    assert data["secret"] not in listed and "abc" not in listed
    bad = api.post(
        "/api/v1/webhook-endpoints/", {"url": "ftp://nope/", "events": ["lead.won"]}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert api.post(f"/api/v1/webhook-endpoints/{data['id']}/test/").status_code == 202
    runner.deliver_batch()
    deliveries = api.get(f"/api/v1/webhook-deliveries/?endpoint={data['id']}").json()
    rows = deliveries.get("results", deliveries)
    assert rows[0]["status"] == "succeeded" and rows[0]["attempt_log"][0]["status_code"] == 200
    replayed = api.post(f"/api/v1/webhook-deliveries/{rows[0]['id']}/replay/")
    assert replayed.status_code == 202 and replayed.json()["status"] == "pending"
    rotated = api.post(f"/api/v1/webhook-endpoints/{data['id']}/rotate-secret/").json()
    assert rotated["secret"] != data["secret"]


def test_a_failing_endpoint_raises_one_alert_and_clears_it_when_it_delivers_again(
    in_tenant_a: Tenant, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    from alerts.models import Alert

    answers = {"ok": False}
    receiver.answer = lambda n, r: (200, {}, b"ok") if answers["ok"] else (503, {}, b"down")
    endpoint, _secret = endpoint_create(url=receiver.url, events=["lead.won"])
    open_ = Alert.objects.filter(kind="webhook.failing", key=str(endpoint.pk), resolved_at=None)

    def deliver() -> None:
        with django_capture_on_commit_callbacks(execute=True):  # the alert events go after the commit
            assert runner.deliver_batch() == 1

    with time_machine.travel(START, tick=False) as clock:
        event_publish("lead.won", {"card_id": 1})
        deliver()
        assert not open_.exists()  # one failure is not yet news: it is retried in seconds
        for _ in range(4):  # 5 s, 5 min, 30 min, 2 h later: failing for more than an hour now
            clock.shift(Delivery.objects.get().next_attempt_at - datetime.now(UTC))
            deliver()
        alert = open_.get()
        assert alert.detail == {"endpoint_id": endpoint.pk, "url": receiver.url, "status": "503"}
        answers["ok"] = True
        clock.shift(Delivery.objects.get().next_attempt_at - datetime.now(UTC))
        deliver()
    alert.refresh_from_db()
    assert alert.resolution == "cleared" and Alert.objects.filter(kind="webhook.failing").count() == 1


def test_a_disabled_endpoint_raises_its_alert_and_switching_it_on_clears_it(
    in_tenant_a: Tenant, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    from alerts.models import Alert

    receiver.answer = lambda n, r: (410, {}, b"gone")
    endpoint, _secret = endpoint_create(url=receiver.url, events=["lead.won"])
    with django_capture_on_commit_callbacks(execute=True):
        event_publish("lead.won", {"card_id": 1})
        assert runner.deliver_batch() == 1
    alert = Alert.objects.get(kind="webhook.disabled", key=str(endpoint.pk), resolved_at=None)
    assert alert.detail["reason"] == "answered 410 Gone"
    endpoint.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        endpoint_update(endpoint, enabled=True)
    alert.refresh_from_db()
    assert alert.resolution == "cleared"


def test_an_address_that_turned_private_is_refused_at_connect_with_nothing_sent(
    in_tenant_a: Tenant, receiver: Receiver, settings: Any
) -> None:
    """Saved while allowed, its host now leads somewhere that is not public (DNS rebinding, here the
    loopback setting turned off): the guard's network backend refuses the connection, the attempt says why."""
    endpoint, _secret = endpoint_create(url=receiver.url, events=["lead.won"])
    event_publish("lead.won", {"card_id": 1})
    settings.OUTBOUND_URL_ALLOW_LOOPBACK = False
    assert runner.deliver_batch() == 1
    (delivery,) = Delivery.objects.filter(endpoint=endpoint)
    assert delivery.status == DeliveryStatus.PENDING and delivery.last_error.startswith("refused:")
    assert "not allowed" in delivery.last_error and receiver.requests == []


def test_a_429_stops_the_batch_in_flight_the_rest_is_given_back_untried(
    in_tenant_a: Tenant, receiver: Receiver
) -> None:
    """Forty due deliveries, the endpoint says 429 Retry-After 120 from its first answer: only what was
    already on the wire when it said so reaches it; the rest is given back as it was (no attempt counted),
    due when the hold ends."""
    receiver.answer = lambda n, r: (429, {"Retry-After": "120"}, b"slow down")
    endpoint, _secret = endpoint_create(url=receiver.url, events=["lead.won"])
    for card in range(40):
        event_publish("lead.won", {"card_id": card})
    assert runner.deliver_batch() == 40
    sent = len(receiver.requests)
    assert 1 <= sent <= runner.THREADS
    tried = Delivery.objects.filter(endpoint=endpoint, attempts=1)
    untried = Delivery.objects.filter(endpoint=endpoint, attempts=0, claimed_until=None, last_status_code=None)
    assert tried.count() == sent and untried.count() == 40 - sent
    endpoint.refresh_from_db()
    assert endpoint.slow_until is not None and runner.deliver_batch() == 0  # all of it waits for the hold
