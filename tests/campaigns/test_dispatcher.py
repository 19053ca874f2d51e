"""The dispatcher: retry policy, the recipient state machine, the pair rate, the shared token bucket,
several runners on one campaign, and a real SIGKILL of the worker mid-campaign (exactly once, counted at
the Graph emulator)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient, CampaignStatus, RecipientStatus
from campaigns.selectors import campaign_stats
from campaigns.services import campaign_launch, campaign_save, recipients_follow
from crm.models import Contact, Tag
from emulators.meta import MetaEmulator
from inbox import dispatcher
from inbox.dispatcher import Runner, backoff_delay, claim, outcome_of, retry_delay
from inbox.models import Channel, Message, MessageStatus
from inbox.providers import ErrorKind, ProviderError, SendResult
from inbox.services import message_dispatch, message_send
from inbox.tasks import dispatch_ensure
from tests.conftest import WA_TOKEN, Worker
from tests.messaging import open_conversation
from tests.support import wait_until


def test_backoff_grows_exponentially_with_full_jitter() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (6, 64.0)]:
        draws = [backoff_delay(attempt, 2.0, rng) for _ in range(2000)]
        assert min(draws) >= 0 and max(draws) <= ceiling
        assert min(draws) < ceiling * 0.05 and max(draws) > ceiling * 0.95  # the whole range: full jitter
        assert abs(sum(draws) / len(draws) - ceiling / 2) < ceiling * 0.05
    assert max(backoff_delay(30, 2.0, rng) for _ in range(200)) <= dispatcher.BACKOFF_CAP_S


def test_only_retryable_errors_are_retried_and_retry_after_is_honoured() -> None:
    rate = ProviderError(ErrorKind.RETRYABLE, "130429", "rate")
    rate.backoff_base = 2.0
    assert 0 <= (retry_delay(rate, 1) or 0) <= 2.0 and 0 <= (retry_delay(rate, 4) or 0) <= 16.0
    assert retry_delay(rate, dispatcher.MAX_SEND_ATTEMPTS) is None  # tried enough: final
    assert retry_delay(ProviderError(ErrorKind.RETRYABLE, "20429", "x", retry_after=7.0), 3) == 7.0
    assert retry_delay(ProviderError(ErrorKind.PERMANENT, "131026", "undeliverable"), 1) is None
    assert retry_delay(ProviderError(ErrorKind.UNKNOWN, "timeout", "no answer"), 1) is None


@pytest.mark.django_db
def test_each_error_class_ends_in_its_state(in_tenant_a: Any, channels: dict[str, int]) -> None:
    channel = Channel.objects.get(pk=channels["whatsapp"])
    job = dispatcher.Job(1, 1, 1, 1, dispatcher.OutboundMessage(to="+5511900000009", type="text"))
    assert outcome_of(job, SendResult("wamid.X"), channel).status == MessageStatus.SENT
    assert outcome_of(job, ProviderError(ErrorKind.PERMANENT, "131026", "x"), channel).status == "failed"
    assert outcome_of(job, ProviderError(ErrorKind.UNKNOWN, "timeout", "x"), channel).status == "unknown"
    retry = outcome_of(job, ProviderError(ErrorKind.RETRYABLE, "131000", "x"), channel)
    assert retry.status == "queued" and retry.next_attempt_at is not None and retry.next_attempt_at >= timezone.now()


@pytest.mark.django_db
def test_pair_rate_error_holds_that_phone_for_every_sender(
    in_tenant_a: Any, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    conversation = open_conversation(channels["whatsapp"], "+5511955554444")
    meta_emulator.fail_next.append(131056)
    message = message_send(conversation=conversation, body="depressa")
    message_dispatch(message_id=message.pk)
    message.refresh_from_db()
    assert (message.status, message.error_code, message.attempts) == ("queued", "131056", 1)
    # Due again now, but the pair bucket of that phone was emptied: claimed and given back, not sent.
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    jobs, held = claim(channel=Channel.objects.get(pk=channels["whatsapp"]), runner_id="r-test", limit=5)
    assert not jobs and [h.id for h in held] == [message.pk] and held[0].given_back
    assert held[0].next_attempt_at is not None and held[0].next_attempt_at > timezone.now()
    other = message_send(conversation=open_conversation(channels["whatsapp"], "+5511955554445"), body="outro")
    message_dispatch(message_id=other.pk)  # another phone is not held
    other.refresh_from_db()
    assert other.status == MessageStatus.SENT


@pytest.mark.django_db
def test_recipient_states_only_move_forward(in_tenant_a: Any, channels: dict[str, int]) -> None:
    tag = Tag.objects.create(name="states")
    contacts = [Contact.objects.create(phone=f"+551197770{i:04d}") for i in range(4)]
    tag.contacts.add(*contacts)
    campaign = campaign_save(
        name="States",
        channel=Channel.objects.get(pk=channels["sms"]),
        audience={"tags": [tag.pk]},
        body="x",
        respect_quiet_hours=False,
    )
    campaign_launch(campaign=campaign)
    from campaigns.services import campaigns_build

    campaigns_build(campaign.channel_id, 10)
    recipients = {r.contact_id: r for r in CampaignRecipient.objects.filter(campaign=campaign)}
    ids = [recipients[c.pk].message_id for c in contacts]
    assert {r.status for r in recipients.values()} == {RecipientStatus.SENDING}
    Message.objects.filter(pk=ids[3]).update(error_text="The contact opted out before the send.")
    recipients_follow(
        [(ids[0], "sent", ""), (ids[1], "unknown", ""), (ids[2], "sent", ""), (ids[3], "failed", "opted_out")]
    )
    recipients_follow([(ids[0], "read", ""), (ids[1], "delivered", ""), (ids[2], "failed", "131026")])
    recipients_follow([(ids[0], "delivered", ""), (ids[0], "sent", ""), (ids[3], "sent", "")])  # late, stale: no effect
    states = {r.contact_id: (r.status, r.reason) for r in CampaignRecipient.objects.filter(campaign=campaign)}
    assert states[contacts[0].pk][0] == RecipientStatus.READ
    assert states[contacts[1].pk][0] == RecipientStatus.DELIVERED  # a receipt resolves an unknown outcome
    assert states[contacts[2].pk][0] == RecipientStatus.FAILED
    assert states[contacts[3].pk] == (RecipientStatus.SKIPPED, "The contact opted out before the send.")
    stats = campaign_stats(campaign)
    assert (stats["sent"], stats["delivered"], stats["read"], stats["failed"], stats["skipped"]) == (2, 2, 1, 1, 1)


# --- several processes: committed rows -------------------------------------------------------------


def _bench_channel(rate: int) -> Channel:
    """A Cloud channel of its own (not routed: only its sends matter here)."""
    pnid = str(10**14 + uuid.uuid4().int % 10**13)
    return Channel.objects.create(
        kind="whatsapp_cloud",
        name=f"Dispatch {pnid[-4:]}",
        phone_number=f"+551190{pnid[-7:]}",
        credentials={"access_token": WA_TOKEN},
        phone_number_id=pnid,
        rate_limit_per_s=rate,
    )


def _campaign(channel: Channel, count: int) -> tuple[Campaign, set[str]]:
    run = uuid.uuid4().hex[:6]
    tag = Tag.objects.create(name=f"dispatch-{run}")
    base = uuid.uuid4().int % 10**6
    contacts = Contact.objects.bulk_create(
        Contact(phone=f"+5511{(base * 1000 + i) % 10**9:09d}", name=f"D {i}") for i in range(count)
    )
    tag.contacts.add(*contacts)
    campaign = campaign_save(
        name=f"Dispatch {run}",
        channel=channel,
        audience={"tags": [tag.pk]},
        kind="template",
        template_name="dispatch_test",
        template_language="pt_BR",
        respect_quiet_hours=False,
    )
    return campaign, {c.phone.lstrip("+") for c in contacts}


def _received(meta: MetaEmulator, phones: set[str]) -> Counter[str]:
    return Counter(str(m["to"]) for m in list(meta.sent.values()) if m.get("to") in phones)


def test_two_runners_share_one_campaign_and_one_token_bucket(
    tenants: Any, meta_emulator: MetaEmulator, committed: Any
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    channel = _bench_channel(rate=40)
    campaign, phones = _campaign(channel, 120)
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.DRAFT)
    # launched without waking a worker runner: the two runners below are the only senders
    from campaigns import services

    original = services._run_soon
    services._run_soon = lambda campaign_id: None  # type: ignore[assignment]
    try:
        campaign_launch(campaign=campaign)
    finally:
        services._run_soon = original  # type: ignore[assignment]
    stats: list[Any] = []

    def serve(slot: int) -> None:
        connection.set_tenant(alpha)
        try:
            stats.append(Runner(channel.pk, slot=slot, idle_exit_s=0.5, linger_s=0).run())
        finally:
            connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=serve, args=(slot,)) for slot in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    elapsed = time.monotonic() - started
    connection.set_tenant(alpha)
    assert _received(meta_emulator, phones) == {p: 1 for p in phones}, (stats, campaign_stats(campaign))
    assert len(stats) == 2 and all(s.sent > 0 for s in stats), [s.sent for s in stats]  # both runners sent
    assert sum(s.sent for s in stats) == 120
    # 120 messages through one 40/s bucket shared by both runners: about 3 s, never twice as fast.
    assert elapsed >= (120 - 4) / 40 * 0.9, elapsed
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED
    assert campaign_stats(campaign)["sent"] == 120


def test_a_killed_worker_loses_nothing_and_sends_nothing_twice(
    celery_worker: Worker, tenants: Any, meta_emulator: MetaEmulator, committed: Any
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    channel = _bench_channel(rate=60)
    campaign, phones = _campaign(channel, 400)
    campaign_launch(campaign=campaign)  # the worker's runner takes it
    wait_until(lambda: len(_received(meta_emulator, phones)) >= 60, timeout=60, what="the campaign to be sending")
    celery_worker.kill()  # SIGKILL mid-campaign, requests in flight
    at_kill = len(_received(meta_emulator, phones))
    assert at_kill < 400
    celery_worker.start()

    def finished() -> bool:
        dispatch_ensure.apply_async(queue="default")  # what beat does every 5 s
        connection.set_tenant(alpha)
        return Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED

    def resumed() -> bool:
        dispatch_ensure.apply_async(queue="default")  # what beat does every 5 s
        return len(_received(meta_emulator, phones)) > at_kill + 5

    started = time.monotonic()
    wait_until(resumed, timeout=30, interval=2, what="the resume")
    assert time.monotonic() - started < 30  # resumed on the new worker within 30 s
    wait_until(finished, timeout=90, interval=2, what="the campaign to complete after the crash")
    # The killed worker may have died inside an ingest drain, leaving the drain flag set until it expires
    # (60 s); beat's sweep would then start a drain. Do it now so the next test's webhooks are applied.
    from intake.services import drain_flag_clear, drain_kick

    drain_flag_clear()
    drain_kick()
    received = _received(meta_emulator, phones)
    assert not [p for p, n in received.items() if n > 1]  # duplicates: 0
    by_state = Counter(CampaignRecipient.objects.filter(campaign=campaign).values_list("status", flat=True))
    unknown = {
        c.lstrip("+")
        for c in CampaignRecipient.objects.filter(campaign=campaign, status=RecipientStatus.UNKNOWN).values_list(
            "contact__phone", flat=True
        )
    }
    lost = phones - set(received) - unknown
    assert not lost  # lost: 0 (every phone got it, or is shown as unknown)
    assert set(by_state) <= {
        RecipientStatus.SENT,
        RecipientStatus.DELIVERED,
        RecipientStatus.READ,
        RecipientStatus.UNKNOWN,
    }
    assert by_state[RecipientStatus.UNKNOWN] <= 256  # bounded by the in-flight window
    unknown_messages = Message.objects.filter(
        idempotency_key__startswith=f"campaign:{campaign.pk}:", status=MessageStatus.UNKNOWN
    )
    assert unknown_messages.count() == by_state[RecipientStatus.UNKNOWN]
    assert all(m.error_code == "runner_lost" for m in unknown_messages)
