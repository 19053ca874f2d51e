"""Consent events apply in the order they happened, not the order they arrived: WhatsApp's
user_preferences "resume" lifts a marketing stop only, never a full STOP, whether the STOP came before or
after it; an older event never overrides a newer one."""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import ConsentStatus, Contact, ContactConsent
from crm.services import consent_allows, consent_record, contact_get_or_create, contact_merge
from inbox.ingest import drain_batch
from tenants.models import Tenant
from tests.messaging import meta_envelope, meta_messages_value, post_meta

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Event:
    kind: str  # STOP, START (full); mstop, mresume (marketing only)
    at: datetime

    @property
    def source(self) -> str:
        return f"{self.kind}@{self.at:%H:%M:%S}"


def apply(contact: Contact, event: Event, medium: str = "whatsapp") -> ContactConsent:
    status = {
        "STOP": ConsentStatus.OPTED_OUT,
        "START": ConsentStatus.OPTED_IN,
        "mstop": ConsentStatus.MARKETING_OPTED_OUT,
        "mresume": ConsentStatus.OPTED_IN,
    }[event.kind]
    return consent_record(
        contact=contact,
        medium=medium,
        status=status,
        source=event.source,
        at=event.at,
        marketing_only=event.kind.startswith("m"),
    )


def in_time_order(events: list[Event]) -> tuple[str, str]:
    """The reference: replay by time. A full STOP/START sets both levels, a marketing choice only its own;
    a full opt-out wins over everything, then a marketing opt-out."""
    full: Event | None = None
    marketing: Event | None = None
    for event in sorted(events, key=lambda e: e.at):
        if not event.kind.startswith("m"):
            full = event
        marketing = event
    if full is not None and full.kind == "STOP":
        return ConsentStatus.OPTED_OUT, full.source
    assert marketing is not None
    if marketing.kind in ("STOP", "mstop"):
        return ConsentStatus.MARKETING_OPTED_OUT, marketing.source
    return ConsentStatus.OPTED_IN, marketing.source  # the newest event of all


def test_resume_never_undoes_a_full_stop_in_either_order(in_tenant_a: Any) -> None:
    for first, second in itertools.permutations([Event("STOP", T0), Event("mresume", T0 + timedelta(minutes=5))]):
        contact = contact_get_or_create(phone=f"+55119{uuid.uuid4().int % 10**8:08d}")
        apply(contact, first)
        consent = apply(contact, second)
        assert (consent.status, consent.source) == (ConsentStatus.OPTED_OUT, "STOP@12:00:00")
        assert not consent_allows(contact=contact, medium="whatsapp", marketing=False)
    for first, second in itertools.permutations([Event("mresume", T0), Event("STOP", T0 + timedelta(minutes=5))]):
        contact = contact_get_or_create(phone=f"+55119{uuid.uuid4().int % 10**8:08d}")
        apply(contact, first)
        assert apply(contact, second).status == ConsentStatus.OPTED_OUT


def test_an_older_event_never_overrides_a_newer_one(in_tenant_a: Any) -> None:
    contact = contact_get_or_create(phone="+5511976200001")
    apply(contact, Event("START", T0 + timedelta(hours=1)))
    late_stop = apply(contact, Event("STOP", T0))  # delivered late
    assert late_stop.status == ConsentStatus.OPTED_IN and late_stop.changed_at == T0 + timedelta(hours=1)
    other = contact_get_or_create(phone="+5511976200002")
    apply(other, Event("STOP", T0 + timedelta(hours=1)))
    assert apply(other, Event("START", T0)).status == ConsentStatus.OPTED_OUT


def test_a_carrier_opt_out_now_beats_an_older_start(in_tenant_a: Any) -> None:
    contact = contact_get_or_create(phone="+5511976200003")
    consent_record(contact=contact, medium="sms", status=ConsentStatus.OPTED_IN, source="keyword:START", at=T0)
    consent = consent_record(
        contact=contact, medium="sms", status=ConsentStatus.OPTED_OUT, source="provider-error:21610"
    )
    assert (consent.status, consent.source) == (ConsentStatus.OPTED_OUT, "provider-error:21610")


def test_a_merge_keeps_both_histories_in_time_order(in_tenant_a: Any) -> None:
    primary = contact_get_or_create(phone="+5511976200004", name="Primária")
    duplicate = contact_get_or_create(phone="+5511976200005")
    apply(primary, Event("mresume", T0 + timedelta(hours=2)))  # newer, but only about marketing
    apply(duplicate, Event("STOP", T0))
    merged = contact_merge(primary=primary, duplicate=duplicate)
    assert merged.consents.get(medium="whatsapp").status == ConsentStatus.OPTED_OUT


events = st.lists(
    st.builds(
        Event,
        st.sampled_from(["STOP", "START", "mstop", "mresume"]),
        st.integers(0, 10**6).map(lambda s: T0 + timedelta(seconds=s)),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda e: e.at,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=events, data=st.data())
def test_any_order_of_arrival_ends_as_the_time_order(in_tenant_a: Any, events: list[Event], data: Any) -> None:
    arrival = data.draw(st.permutations(events))
    with transaction.atomic():
        contact = Contact.objects.create(phone=f"+55119{uuid.uuid4().int % 10**8:08d}")
        for event in arrival:
            consent = apply(contact, event)
        assert (consent.status, consent.source) == in_time_order(events)
        transaction.set_rollback(True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(["STOP", "START", "mstop", "mresume"]), min_size=2, max_size=4), data=st.data())
def test_events_at_the_same_instant_end_the_same_in_any_order(in_tenant_a: Any, kinds: list[str], data: Any) -> None:
    same_time = [Event(kind, T0) for kind in kinds]
    statuses = set()
    for arrival in (same_time, data.draw(st.permutations(same_time))):
        with transaction.atomic():
            contact = Contact.objects.create(phone=f"+55119{uuid.uuid4().int % 10**8:08d}")
            for event in arrival:
                consent = apply(contact, event)
            statuses.add(consent.status)
            transaction.set_rollback(True)
    assert len(statuses) == 1  # on a tie the opt-out wins, whichever came first


# --- through the WhatsApp webhook and the ingest drain, as production takes it ------------------------


def _text(sender: str, body: str, at: int) -> dict[str, Any]:
    message = {"from": sender, "id": f"wamid.{uuid.uuid4().hex}", "timestamp": str(at)}
    return {**message, "type": "text", "text": {"body": body}}


def _preference(sender: str, value: str, at: int) -> dict[str, Any]:
    value_ = meta_messages_value()
    value_["user_preferences"] = [
        {"wa_id": sender, "detail": "", "category": "marketing_messages", "value": value, "timestamp": at}
    ]
    return meta_envelope(value_, field="user_preferences")


def _deliver(body: dict[str, Any], tenant: Tenant) -> None:
    assert post_meta(body).status_code == 200
    drain_batch()
    connection.set_tenant(tenant)


@pytest.mark.parametrize("resume_offset", [-600, 600], ids=["resume-before-stop", "resume-after-stop"])
@pytest.mark.parametrize("stop_arrives_first", [True, False], ids=["stop-arrives-first", "resume-arrives-first"])
def test_webhook_resume_never_undoes_a_stop_keyword(
    tenant_a: Tenant, channels: dict[str, int], resume_offset: int, stop_arrives_first: bool
) -> None:
    sender = f"55119{uuid.uuid4().int % 10**8:08d}"
    now = int(time.time())
    stop = meta_envelope(meta_messages_value(messages=[_text(sender, "PARAR", now)], sender=sender))
    resume = _preference(sender, "resume", now + resume_offset)
    for body in (stop, resume) if stop_arrives_first else (resume, stop):
        _deliver(body, tenant_a)
    consent = ContactConsent.objects.get(contact__phone=f"+{sender}", medium="whatsapp")
    assert consent.status == ConsentStatus.OPTED_OUT and consent.source == "keyword:PARAR"


def test_webhook_a_late_marketing_stop_and_resume_keep_the_newest(tenant_a: Tenant, channels: dict[str, int]) -> None:
    sender = f"55119{uuid.uuid4().int % 10**8:08d}"
    now = int(time.time())
    _deliver(_preference(sender, "stop", now), tenant_a)
    _deliver(_preference(sender, "resume", now - 600), tenant_a)  # an older resume, retried late
    consent = ContactConsent.objects.get(contact__phone=f"+{sender}", medium="whatsapp")
    assert consent.status == ConsentStatus.MARKETING_OPTED_OUT
    _deliver(_preference(sender, "resume", now + 600), tenant_a)
    consent.refresh_from_db()
    assert (consent.status, consent.source) == (ConsentStatus.OPTED_IN, "whatsapp:user_preferences:resume")
