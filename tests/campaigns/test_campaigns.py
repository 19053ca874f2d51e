"""Broadcasts: audience fixed once at launch, each contact once, opted-out skipped with the reason,
paced batches, pause/resume/cancel, scheduling and quiet hours."""

from __future__ import annotations

import datetime
import time
import zoneinfo
from collections import Counter
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone, translation

from campaigns.models import (
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    QuietHours,
    RecipientStatus,
)
from campaigns.selectors import campaign_stats
from campaigns.services import (
    campaign_cancel,
    campaign_launch,
    campaign_pause,
    campaign_resume,
    campaign_run,
    campaign_save,
    campaigns_build,
    campaigns_start_due,
    content_render,
    quiet_until,
)
from crm.models import ConsentStatus, Contact, Tag
from crm.services import consent_record, contact_get_or_create
from emulators.twilio import TwilioEmulator
from inbox.models import Channel, Message
from tests.dispatching import send_queued
from tests.messaging import open_conversation
from whatsapp.models import MessageTemplate

pytestmark = pytest.mark.django_db
SP = "America/Sao_Paulo"


def _quiet(**fields: Any) -> QuietHours:
    defaults = {"enabled": True, "start": datetime.time(21), "end": datetime.time(8), "quiet_sundays": True}
    return QuietHours(**{**defaults, **fields})


def _at(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, tzinfo=zoneinfo.ZoneInfo(SP))


def test_quiet_hours_across_midnight_and_sundays() -> None:
    quiet = _quiet()
    # Tuesday 2026-11-24
    assert quiet_until(_at(2026, 11, 24, 12), quiet, SP) is None
    assert quiet_until(_at(2026, 11, 24, 22), quiet, SP) == _at(2026, 11, 25, 8)
    assert quiet_until(_at(2026, 11, 24, 7, 30), quiet, SP) == _at(2026, 11, 24, 8)
    assert quiet_until(_at(2026, 11, 24, 21), quiet, SP) == _at(2026, 11, 25, 8)  # the start is quiet
    assert quiet_until(_at(2026, 11, 24, 8), quiet, SP) is None  # the end is not
    # Saturday night runs through Sunday to Monday morning; Sunday noon as well.
    assert quiet_until(_at(2026, 11, 28, 23), quiet, SP) == _at(2026, 11, 30, 8)
    assert quiet_until(_at(2026, 11, 29, 12), quiet, SP) == _at(2026, 11, 30, 8)
    assert quiet_until(_at(2026, 11, 29, 12), _quiet(quiet_sundays=False), SP) is None
    assert quiet_until(_at(2026, 11, 24, 23), _quiet(enabled=False), SP) is None
    lunch = _quiet(start=datetime.time(12), end=datetime.time(13), quiet_sundays=False)
    assert quiet_until(_at(2026, 11, 24, 12, 30), lunch, SP) == _at(2026, 11, 24, 13)
    assert quiet_until(_at(2026, 11, 24, 13, 30), lunch, SP) is None


def test_placeholders_fill_from_the_contact(in_tenant_a: Any) -> None:
    contact = Contact(
        phone="+5511999990000", name="Ana Souza", email="ana@x.test", custom_fields={"cidade": "Campinas"}
    )
    text = "Oi {{first_name}} ({{ name }}), {{cidade}}: {{phone}} {{email}} {{unknown}}!"
    assert content_render(text, contact) == "Oi Ana (Ana Souza), Campinas: +5511999990000 ana@x.test !"
    assert content_render("Oi {{first_name}}", Contact(phone="+5511999990001")) == "Oi "


def _audience(tag_name: str, count: int, prefix: str) -> list[Contact]:
    tag = Tag.objects.create(name=tag_name)
    contacts = [contact_get_or_create(phone=f"+55119{prefix}{i:04d}", name=f"Cliente {i}") for i in range(count)]
    tag.contacts.add(*contacts)
    return contacts


def _sms_campaign(channels: dict[str, int], tag: Tag, **extra: Any) -> Campaign:
    fields = {
        "name": "Black Friday",
        "channel": Channel.objects.get(pk=channels["sms"]),
        "audience": {"tags": [tag.pk]},
        "kind": "text",
        "body": "Oi {{first_name}}, 20% off hoje!",
        "respect_quiet_hours": False,
        **extra,
    }
    return campaign_save(**fields)


def _run_to_end(campaign: Campaign) -> None:
    send_queued(campaign.channel_id)


def _received(emulator: TwilioEmulator, contacts: list[Contact]) -> Counter[str]:
    phones = {c.phone for c in contacts}
    return Counter(m["to"] for m in list(emulator.sent.values()) if m["to"] in phones)


def test_launch_sends_each_contact_once_and_skips_opted_out(
    in_tenant_a: Any, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    contacts = _audience("bf", 7, "7301")
    consent_record(contact=contacts[0], medium="sms", status=ConsentStatus.OPTED_OUT, source="test")
    Channel.objects.filter(pk=channels["sms"]).update(rate_limit_per_s=3)
    campaign = _sms_campaign(channels, Tag.objects.get(name="bf"))
    campaign = campaign_launch(campaign=campaign)
    assert campaign.status == CampaignStatus.RUNNING and campaign.total_recipients == 7
    with pytest.raises(ValidationError):
        campaign_launch(campaign=campaign)  # a second launch adds nobody
    started = time.monotonic()
    _run_to_end(campaign)
    assert time.monotonic() - started > 1.2  # 6 sends at 3/s (the channel's token bucket): about 2 s
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED and campaign.finished_at
    assert _received(twilio_emulator, contacts) == {c.phone: 1 for c in contacts[1:]}  # each once, at Twilio
    messages = Message.objects.filter(idempotency_key__startswith=f"campaign:{campaign.pk}:")
    assert messages.count() == 6 and {m.status for m in messages} == {"sent"}
    assert {m.body for m in messages} >= {"Oi Cliente, 20% off hoje!"}
    skipped = CampaignRecipient.objects.get(campaign=campaign, contact=contacts[0])
    assert skipped.status == RecipientStatus.SKIPPED and "Cliente 0" in skipped.reason and "SMS" in skipped.reason
    stats = campaign_stats(campaign)
    assert (stats["total"], stats["skipped"], stats["sent"], stats["sending"], stats["progress"]) == (7, 1, 6, 0, 100)
    # A batch replayed after a crash (recipients back to pending) sends nothing twice.
    CampaignRecipient.objects.filter(campaign=campaign).update(status=RecipientStatus.PENDING)
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.RUNNING)
    _run_to_end(campaign)
    assert Message.objects.filter(idempotency_key__startswith=f"campaign:{campaign.pk}:").count() == 6
    assert _received(twilio_emulator, contacts) == {c.phone: 1 for c in contacts[1:]}
    assert campaign_stats(campaign)["sent"] == 6


def test_pause_holds_built_and_deferred_messages_until_resumed(
    in_tenant_a: Any, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    contacts = _audience("pause", 5, "7302")
    campaign = campaign_launch(campaign=_sms_campaign(channels, Tag.objects.get(name="pause")))
    assert campaigns_build(campaign.channel_id, 3) == 3  # three built (queued, due now), two still pending
    built = Message.objects.filter(idempotency_key__startswith=f"campaign:{campaign.pk}:")
    deferred = built.first()
    assert deferred is not None
    built.filter(pk=deferred.pk).update(next_attempt_at=timezone.now() + datetime.timedelta(seconds=1))  # a retry
    assert campaign_pause(campaign=campaign) and campaign.status == CampaignStatus.PAUSED
    assert set(built.values_list("next_attempt_at", flat=True)) == {None}  # held, the deferred one included
    time.sleep(1.1)  # the retry's due time passes while paused
    send_queued(campaign.channel_id)
    assert not _received(twilio_emulator, contacts)  # nothing went out while paused
    assert campaign_stats(campaign)["pending"] == 2
    assert not campaign_pause(campaign=campaign)
    assert campaign_resume(campaign=campaign) and campaign.status == CampaignStatus.RUNNING
    send_queued(campaign.channel_id)
    assert _received(twilio_emulator, contacts) == {c.phone: 1 for c in contacts}
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED and campaign_stats(campaign)["sent"] == 5


def test_cancel_drops_what_was_not_sent(
    in_tenant_a: Any, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    contacts = _audience("cancel", 5, "7306")
    campaign = campaign_launch(campaign=_sms_campaign(channels, Tag.objects.get(name="cancel")))
    campaigns_build(campaign.channel_id, 2)
    assert campaign_cancel(campaign=campaign)
    send_queued(campaign.channel_id)
    assert not _received(twilio_emulator, contacts)
    stats = campaign_stats(campaign)
    assert (stats["processed"], stats["pending"], stats["skipped"], stats["sent"]) == (5, 0, 5, 0)
    assert campaign_run(campaign_id=campaign.pk) is None
    with pytest.raises(ValidationError):
        campaign_save(campaign=campaign, name="renamed")


def test_scheduled_campaign_starts_when_due(in_tenant_a: Any, channels: dict[str, int]) -> None:
    _audience("later", 2, "7303")
    later = timezone.now() + datetime.timedelta(hours=2)
    campaign = campaign_launch(campaign=_sms_campaign(channels, Tag.objects.get(name="later"), scheduled_at=later))
    assert campaign.status == CampaignStatus.SCHEDULED and campaign.total_recipients == 2
    assert campaigns_start_due() == 0
    Campaign.objects.filter(pk=campaign.pk).update(scheduled_at=timezone.now() - datetime.timedelta(seconds=1))
    assert campaigns_start_due() == 1
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.RUNNING and campaign.started_at


@pytest.mark.parametrize(
    ("instant", "quiet_sundays", "expected_wait_s"),
    [
        (_at(2026, 11, 24, 12), True, 3600),  # a Tuesday noon
        (_at(2026, 11, 28, 23, 30), False, 3600),  # Saturday night: the window crosses midnight
        (_at(2026, 11, 28, 23, 30), True, 25 * 3600),  # ... into a quiet Sunday: Monday 00:30
        (_at(2026, 11, 29, 23, 30), True, 3600),  # Sunday night: the window ends on Monday
    ],
    ids=["tuesday-noon", "saturday-night", "saturday-night-quiet-sunday", "sunday-night"],
)
def test_quiet_hours_hold_the_campaign_until_they_end(
    in_tenant_a: Any, channels: dict[str, int], instant: datetime.datetime, quiet_sundays: bool, expected_wait_s: int
) -> None:
    _audience("quiet", 2, "7304")
    # Quiet from an hour before the frozen instant to an hour after it, in the tenant's time zone.
    start = (instant - datetime.timedelta(hours=1)).time()
    end = (instant + datetime.timedelta(hours=1)).time()
    QuietHours.objects.update_or_create(
        pk=1, defaults={"enabled": True, "start": start, "end": end, "quiet_sundays": quiet_sundays}
    )
    try:
        campaign = _sms_campaign(channels, Tag.objects.get(name="quiet"), respect_quiet_hours=True)
        with time_machine.travel(instant - datetime.timedelta(hours=2), tick=True):
            QuietHours.objects.filter(pk=1).update(enabled=False)
            campaign_launch(campaign=campaign)
            assert campaigns_build(campaign.channel_id, 1) == 1  # one built before quiet hours, one pending
            QuietHours.objects.filter(pk=1).update(enabled=True)
        with time_machine.travel(instant, tick=True):
            send_queued(campaign.channel_id)  # re-checked at send time: held until quiet hours end
            opening = timezone.now().replace(microsecond=0) + datetime.timedelta(seconds=expected_wait_s)
        (held,) = Message.objects.filter(idempotency_key__startswith=f"campaign:{campaign.pk}:")
        assert (held.status, held.attempts) == ("queued", 0)
        assert abs((held.next_attempt_at - opening).total_seconds()) < 3
        assert campaign_stats(campaign)["pending"] == 1  # nothing more is built while quiet
        Campaign.objects.filter(pk=campaign.pk).update(respect_quiet_hours=False)
        QuietHours.objects.filter(pk=1).update(enabled=False)
        Message.objects.filter(pk=held.pk).update(next_attempt_at=timezone.now())
        _run_to_end(campaign)
        assert campaign_stats(campaign)["sent"] == 2
    finally:
        QuietHours.objects.filter(pk=1).update(enabled=False)


def test_whatsapp_template_campaign_fills_variables_and_free_text_needs_the_window(
    in_tenant_a: Any, channels: dict[str, int]
) -> None:
    MessageTemplate.objects.create(
        waba_id="200000000000001",
        template_id="9001",
        name="promo_bf",
        language="pt_BR",
        category="MARKETING",
        status="APPROVED",
        components=[{"type": "BODY", "text": "Olá {{1}}, sua oferta em {{2}} chegou!"}],
    )
    contacts = _audience("wa", 2, "7305")
    contacts[0].custom_fields = {"cidade": "Recife"}
    contacts[0].save()
    whatsapp = Channel.objects.get(pk=channels["whatsapp"])
    with pytest.raises(ValidationError) as refused:
        campaign_save(name="x", channel=whatsapp, kind="template", template_name="", audience={})
    assert "template_name" in refused.value.message_dict
    campaign = campaign_save(
        name="Ofertas",
        channel=whatsapp,
        audience={"tags": [Tag.objects.get(name="wa").pk]},
        kind="template",
        template_name="promo_bf",
        template_language="pt_BR",
        template_variables=["{{first_name}}", "{{cidade}}"],
        respect_quiet_hours=False,
    )
    _run_to_end(campaign_launch(campaign=campaign))
    message = Message.objects.get(idempotency_key=f"campaign:{campaign.pk}:{contacts[0].pk}")
    assert message.type == "template" and message.template_variables == {"body": ["Cliente", "Recife"]}
    assert message.body == "Olá Cliente, sua oferta em Recife chegou!" and message.is_marketing
    # Free text on the Cloud API reaches only open 24-hour windows; the rest are skipped, with the reason.
    open_conversation(channels["whatsapp"], contacts[1].phone, window_open=True)
    text = campaign_save(name="Texto", channel=whatsapp, audience={"tags": [Tag.objects.get(name="wa").pk]}, body="oi")
    text.respect_quiet_hours = False
    text.save()
    with translation.override("en"):
        _run_to_end(campaign_launch(campaign=text))
    by_contact = {r.contact_id: r for r in CampaignRecipient.objects.filter(campaign=text)}
    assert by_contact[contacts[1].pk].status == RecipientStatus.SENT
    assert by_contact[contacts[0].pk].status == RecipientStatus.SKIPPED
    assert "24-hour" in by_contact[contacts[0].pk].reason
