"""The campaign product on top of the dispatcher: audiences (segments, tags any/all, a pasted list, an
uploaded file), content (template header/body/button variables, media with caption, spintax previewed
per contact), the rails (daily caps with a frozen clock, auto-pause, the cross-channel duplicate guard),
the controls (schedule, pause, resume, cancel, duplicate, retry failed) on the page and in the API with
roles, the report and its CSV. Every send goes through the real runner to the emulators."""

from __future__ import annotations

import datetime
import zoneinfo
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone, translation
from rest_framework.test import APIClient

from accounts.models import Role, User
from accounts.services import api_token_create
from campaigns.audience import audience_contacts, audience_from_phones
from campaigns.live import progress_payload
from campaigns.models import (
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    ChannelDailyCap,
    Enrollment,
    RecipientStatus,
)
from campaigns.rails import next_day_start
from campaigns.selectors import campaign_preview, campaign_report, campaign_stats
from campaigns.services import (
    cadence_enroll,
    cadence_save,
    campaign_duplicate,
    campaign_launch,
    campaign_pause,
    campaign_resume,
    campaign_retry_failed,
    campaign_save,
    campaigns_build,
    campaigns_start_due,
)
from campaigns.spintax import spin_for_contact
from crm.imports import import_run
from crm.models import ConsentStatus, Contact, ContactImport, CustomField, Segment, Tag
from crm.services import consent_record, contact_get_or_create
from emulators.meta import MetaEmulator
from emulators.twilio import TwilioEmulator
from inbox.models import Channel, Message
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.dispatching import send_queued
from tests.messaging import open_conversation
from whatsapp.models import MessageTemplate

pytestmark = pytest.mark.django_db
SP = zoneinfo.ZoneInfo("America/Sao_Paulo")


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Reasons are stored in the language active where they arise; these tests read them in English."""
    with translation.override("en"):
        yield


def _contacts(prefix: str, n: int, tag: Tag | None = None, **fields: Any) -> list[Contact]:
    made = [contact_get_or_create(phone=f"+55119{prefix}{i:04d}", name=f"Cliente {prefix}{i}") for i in range(n)]
    for contact in made:
        for name, value in fields.items():
            setattr(contact, name, value)
        contact.save()
        if tag is not None:
            contact.tags.add(tag)
    return made


def _sms(channels: dict[str, int], audience: dict[str, Any], **extra: Any) -> Campaign:
    fields: dict[str, Any] = {
        "name": "Promo",
        "channel": Channel.objects.get(pk=channels["sms"]),
        "audience": audience,
        "kind": "text",
        "body": "Oi {{first_name}}, 20% off hoje!",
        "respect_quiet_hours": False,
        **extra,
    }
    return campaign_save(**fields)


def _to(emulator: TwilioEmulator | MetaEmulator, contacts: list[Contact]) -> Counter[str]:
    phones = {str(c.phone) for c in contacts} | {str(c.phone).lstrip("+") for c in contacts}
    return Counter(str(m["to"]) for m in list(emulator.sent.values()) if str(m.get("to")) in phones)


def _states(campaign: Campaign) -> Counter[str]:
    return Counter(CampaignRecipient.objects.filter(campaign=campaign).values_list("status", flat=True))


# --- audience ----------------------------------------------------------------------------------------


def test_audience_segments_union_and_tags_any_or_all(in_tenant_a: Any) -> None:
    red, blue = Tag.objects.create(name="red"), Tag.objects.create(name="blue")
    both = _contacts("8101", 2, red)
    for contact in both:
        contact.tags.add(blue)
    only_red = _contacts("8102", 2, red)
    only_blue = _contacts("8103", 1, blue)
    ids = lambda qs: set(qs.values_list("pk", flat=True))  # noqa: E731
    assert ids(audience_contacts({"tags": [red.pk, blue.pk]})) == {c.pk for c in both + only_red + only_blue}
    assert ids(audience_contacts({"tags": [red.pk, blue.pk], "tags_match": "all"})) == {c.pk for c in both}
    seg_red = Segment.objects.create(name="s-red", filters={"tags": [red.pk]})
    seg_blue = Segment.objects.create(name="s-blue", filters={"tags": [blue.pk]})
    assert ids(audience_contacts({"segments": [seg_red.pk, seg_blue.pk]})) == ids(
        audience_contacts({"tags": [red.pk, blue.pk]})
    )
    # segments narrowed by tags (all): the ones in a segment with both tags
    assert ids(audience_contacts({"segments": [seg_blue.pk], "tags": [red.pk]})) == {c.pk for c in both}
    assert not audience_contacts({"import": 999}).exists()  # an import without its tag: nobody, never all


def test_pasted_list_skips_duplicate_phones_with_the_reason_and_reaches_each_once(
    in_tenant_a: Any, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    pasted = "\n".join(
        [
            "+55 11 98104-0001, Ana",
            "(11) 98104-0002",
            "5511981040001",  # Ana again, written another way
            "not a phone",
            "+55 11 98104-0002; +55 11 98104-0003",
        ]
    )
    audience, report = audience_from_phones(pasted)
    assert (report["contacts"], report["duplicates"], report["invalid"], report["created"]) == (3, 2, 1, 3)
    assert [row["line"] for row in report["duplicate_lines"]] == [3, 5]
    assert "already on line 1" in report["duplicate_lines"][0]["reason"]
    assert Contact.objects.get(phone="+5511981040001").name == "Ana"
    campaign = campaign_launch(campaign=_sms(channels, audience, audience_report=report))
    send_queued(campaign.channel_id)
    reached = _to(twilio_emulator, list(Contact.objects.filter(pk__in=audience["contacts"])))
    assert reached == {"+5511981040001": 1, "+5511981040002": 1, "+5511981040003": 1}


def test_pasted_list_and_uploaded_file_through_the_page(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    manager = tenant_client(tenant_a, owner_a, lang="en")
    response = manager.post(
        "/campaigns/new/",
        {
            "name": "Lista",
            "channel": channels["sms"],
            "audience_source": "list",
            "phones": "+5511981050001\n+5511981050001\n+5511981050002",
            "kind": "text",
            "body": "Oi",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    listed = Campaign.objects.get(name="Lista")
    page = manager.get(f"/campaigns/{listed.pk}/").content.decode()
    assert "Pasted list: 2 phones, 1 duplicates skipped" in page and "Duplicate phone: already on line 1." in page
    # A file goes through the CRM import, with a tag of its own; launching waits for the import (whose
    # rule for a phone repeated in the file is its own: the rows are merged into one contact).
    csv = "telefone,nome,cidade\n+5511981060001,Bia,Recife\n+5511981060002,Caio,Natal\n+5511981060001,Bia,Recife\n"
    CustomField.objects.create(key="cidade", label="Cidade", kind="text")
    response = manager.post(
        "/campaigns/new/",
        {
            "name": "Arquivo",
            "channel": channels["sms"],
            "audience_source": "file",
            "file": SimpleUploadedFile("lista.csv", csv.encode(), content_type="text/csv"),
            "kind": "text",
            "body": "Oi {{first_name}} de {{cidade}}",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    filed = Campaign.objects.get(name="Arquivo")
    upload = ContactImport.objects.get(pk=filed.audience["import"])
    waiting = manager.get(f"/campaigns/{filed.pk}/").content.decode()
    assert "still being imported" in waiting
    manager.post(f"/campaigns/{filed.pk}/launch/")
    filed.refresh_from_db()
    assert filed.status == CampaignStatus.DRAFT  # refused until the import is done
    import_run(import_id=upload.pk)  # what the worker runs
    page = manager.get(f"/campaigns/{filed.pk}/").content.decode()
    assert "2 contacts match the audience now." in page and "2 new, 0 updated" in page
    assert "Oi Bia de Recife" in page  # the preview per contact
    manager.post(f"/campaigns/{filed.pk}/launch/")
    send_queued(filed.channel_id)
    contacts = list(Contact.objects.filter(phone__in=["+5511981060001", "+5511981060002"]))
    assert _to(twilio_emulator, contacts) == {"+5511981060001": 1, "+5511981060002": 1}
    bodies = {m["to"]: m["body"] for m in twilio_emulator.sent.values() if m["to"] in ("+5511981060001",)}
    assert bodies["+5511981060001"] == "Oi Bia de Recife"


# --- content -----------------------------------------------------------------------------------------


def test_template_header_body_and_button_variables_reach_the_graph_api(
    in_tenant_a: Any, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    MessageTemplate.objects.create(
        waba_id="200000000000001",
        template_id="9101",
        name="promo_full",
        language="pt_BR",
        category="MARKETING",
        status="APPROVED",
        components=[
            {"type": "HEADER", "format": "TEXT", "text": "Oferta {{1}}"},
            {"type": "BODY", "text": "Olá {{1}}, {{2}} chegou!"},
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Parar"},
                    {"type": "URL", "text": "Ver", "url": "https://loja.example.com/{{1}}"},
                ],
            },
        ],
    )
    CustomField.objects.create(key="cupom", label="Cupom", kind="text")
    tag = Tag.objects.create(name="tpl")
    contacts = _contacts("8107", 2, tag, custom_fields={"cupom": "BF10"})
    campaign = campaign_save(
        name="Template",
        channel=Channel.objects.get(pk=channels["whatsapp"]),
        audience={"tags": [tag.pk]},
        kind="template",
        template_name="promo_full",
        template_language="pt_BR",
        template_header_variables=["{{cupom}}"],
        template_variables=["{{first_name}}", "{sua oferta|seu cupom}"],
        template_button_variables=["c/{{cupom}}"],
        respect_quiet_hours=False,
    )
    preview = campaign_preview(campaign)
    campaign_launch(campaign=campaign)
    send_queued(campaign.channel_id)
    sent = [m for m in meta_emulator.sent.values() if m.get("to") == contacts[0].phone.lstrip("+")]
    assert len(sent) == 1
    components = {c["type"]: c for c in sent[0]["template"]["components"]}
    assert components["header"]["parameters"] == [{"type": "text", "text": "BF10"}]
    body = [p["text"] for p in components["body"]["parameters"]]
    assert body[0] == "Cliente" and body[1] in ("sua oferta", "seu cupom")
    assert components["button"] == {
        "type": "button",
        "sub_type": "url",
        "index": "1",  # the template's dynamic URL button, after the quick reply
        "parameters": [{"type": "text", "text": "c/BF10"}],
    }
    mine = next(row for row in preview if row["contact_id"] == contacts[0].pk)
    message = Message.objects.get(idempotency_key=f"campaign:{campaign.pk}:{contacts[0].pk}")
    assert mine["body"] == message.body == f"Olá Cliente, {body[1]} chegou!"  # the preview is what went out


def test_media_with_caption_and_spintax_per_contact(
    in_tenant_a: Any, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    tag = Tag.objects.create(name="media")
    contacts = _contacts("8108", 6, tag)
    with pytest.raises(ValidationError) as refused:
        _sms(channels, {"tags": [tag.pk]}, kind="media", media_kind="image", media_url="http://10.0.0.1/x.jpg")
    assert "media_url" in refused.value.message_dict
    with pytest.raises(ValidationError) as unbalanced:
        _sms(channels, {"tags": [tag.pk]}, body="{Olá|Oi {{first_name}}")
    assert "body" in unbalanced.value.message_dict
    text = "{Olá|Oi|E aí} {{first_name}}, veja a vitrine"
    campaign = _sms(
        channels,
        {"tags": [tag.pk]},
        kind="media",
        media_kind="image",
        media_url="https://cdn.example.com/v.jpg",
        body=text,
    )
    preview = {row["contact_id"]: row["body"] for row in campaign_preview(campaign, limit=10)}
    assert len(preview) == 6 and len({b.split()[0] for b in preview.values()}) >= 2  # variation across contacts
    for contact in contacts:
        expected = spin_for_contact(text, contact_id=contact.pk).replace("{{first_name}}", "Cliente")
        assert preview[contact.pk] == expected
    campaign_launch(campaign=campaign)
    send_queued(campaign.channel_id)
    sent = {m["to"]: m for m in twilio_emulator.sent.values() if m["to"] in {c.phone for c in contacts}}
    assert len(sent) == 6
    for contact in contacts:
        assert sent[contact.phone]["body"] == preview[contact.pk]
        assert sent[contact.phone]["num_media"] == "1"
    message = Message.objects.get(idempotency_key=f"campaign:{campaign.pk}:{contacts[0].pk}")
    assert (message.type, message.media_url) == ("image", "https://cdn.example.com/v.jpg")


# --- rails -------------------------------------------------------------------------------------------


def test_campaign_daily_cap_defers_the_rest_to_the_next_day_with_a_frozen_clock(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    tag = Tag.objects.create(name="cap")
    contacts = _contacts("8109", 5, tag)
    monday_morning = datetime.datetime(2026, 11, 23, 10, 0, tzinfo=SP)
    with time_machine.travel(monday_morning, tick=False):
        campaign = campaign_launch(campaign=_sms(channels, {"tags": [tag.pk]}, daily_cap=2))
        assert campaigns_build(campaign.channel_id, 100) == 2  # the cap: two today
        assert campaigns_build(campaign.channel_id, 100) == 0
        campaign.refresh_from_db()
        assert campaign.hold_until == next_day_start(monday_morning, "America/Sao_Paulo")
        assert campaign.hold_until == datetime.datetime(2026, 11, 24, 0, 0, tzinfo=SP)
        assert campaign.status == CampaignStatus.RUNNING and "Daily cap of this campaign" in campaign.hold_reason
        assert _states(campaign) == {RecipientStatus.SENDING: 2, RecipientStatus.PENDING: 3}
        page = tenant_client(tenant_a, owner_a, lang="en").get(f"/campaigns/{campaign.pk}/").content.decode()
        assert "Daily cap of this campaign reached (2 a day)." in page and "24/11/2026 00:00" in page
    with time_machine.travel(datetime.datetime(2026, 11, 23, 23, 59, tzinfo=SP), tick=False):
        assert campaigns_build(campaign.channel_id, 100) == 0  # still Monday
    with time_machine.travel(datetime.datetime(2026, 11, 24, 0, 1, tzinfo=SP), tick=False):
        assert campaigns_build(campaign.channel_id, 100) == 2  # Tuesday: two more
    with time_machine.travel(datetime.datetime(2026, 11, 25, 9, 0, tzinfo=SP), tick=True):
        send_queued(campaign.channel_id)  # Wednesday: the last one, and everything built goes out
    assert _to(twilio_emulator, contacts) == {c.phone: 1 for c in contacts}
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED and campaign_stats(campaign)["sent"] == 5


def test_channel_daily_cap_skips_the_rest_when_the_campaign_says_so(
    in_tenant_a: Any, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    tag = Tag.objects.create(name="chcap")
    contacts = _contacts("8110", 5, tag)
    ChannelDailyCap.objects.create(channel_id=channels["sms"], daily_cap=3)
    with time_machine.travel(datetime.datetime(2026, 11, 23, 10, 0, tzinfo=SP), tick=True):
        campaign = campaign_launch(campaign=_sms(channels, {"tags": [tag.pk]}, cap_overflow="skip"))
        send_queued(campaign.channel_id)
    assert sum(_to(twilio_emulator, contacts).values()) == 3
    assert _states(campaign) == {RecipientStatus.SENT: 3, RecipientStatus.SKIPPED: 2}
    assert set(
        CampaignRecipient.objects.filter(campaign=campaign, status="skipped").values_list("reason", flat=True)
    ) == {"Daily cap reached."}
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED


def test_auto_pause_when_failures_pass_the_threshold_shows_the_reason(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    tag = Tag.objects.create(name="fail")
    _contacts("8111", 30, tag)
    Channel.objects.filter(pk=channels["sms"]).update(rate_limit_per_s=5)
    twilio_emulator.fail_next.extend([21211] * 4)  # invalid numbers: permanent
    try:
        campaign = campaign_launch(campaign=_sms(channels, {"tags": [tag.pk]}, failure_window=5, failure_threshold=40))
        send_queued(campaign.channel_id)
    finally:
        twilio_emulator.fail_next.clear()
        Channel.objects.filter(pk=channels["sms"]).update(rate_limit_per_s=80)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    assert campaign.pause_reason.startswith("Paused automatically: ")
    assert "of the last 5 sends failed (more than 40%)" in campaign.pause_reason
    stats = campaign_stats(campaign)
    assert stats["failed"] == 4 and stats["pending"] + stats["sending"] > 0  # stopped well before the end
    held = Message.objects.filter(idempotency_key__startswith=f"campaign:{campaign.pk}:", status="queued")
    assert set(held.values_list("next_attempt_at", flat=True)) <= {None}
    page = tenant_client(tenant_a, owner_a, lang="en").get(f"/campaigns/{campaign.pk}/").content.decode()
    assert 'data-testid="pause-reason"' in page and "Paused automatically" in page
    assert campaign_resume(campaign=campaign)
    send_queued(campaign.channel_id)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED and campaign.pause_reason == ""
    assert campaign_stats(campaign)["sent"] == 26


def test_duplicate_guard_skips_the_same_content_from_a_cadence_on_another_channel(
    in_tenant_a: Any, channels: dict[str, int], twilio_emulator: TwilioEmulator, meta_emulator: MetaEmulator
) -> None:
    tag = Tag.objects.create(name="dup")
    contacts = _contacts("8112", 3, tag)
    for contact in contacts:
        open_conversation(channels["whatsapp"], contact.phone)  # the WhatsApp window is open
    cadence = cadence_save(
        name="Boas-vindas",
        channel=Channel.objects.get(pk=channels["sms"]),
        respect_quiet_hours=False,
        steps=[{"kind": "text", "body": "Oi {{first_name}}, 20% off hoje!"}],
    )
    cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contacts[0].pk))
    from campaigns.services import cadences_advance

    assert cadences_advance() == 1
    send_queued(channels["sms"])
    assert _to(twilio_emulator, contacts[:1]) == {contacts[0].phone: 1}
    whatsapp = Channel.objects.get(pk=channels["whatsapp"])
    campaign = campaign_launch(campaign=_sms(channels, {"tags": [tag.pk]}, channel=whatsapp))
    send_queued(campaign.channel_id)
    skipped = CampaignRecipient.objects.get(campaign=campaign, contact=contacts[0])
    assert skipped.status == RecipientStatus.SKIPPED
    assert skipped.reason == "The same message was sent to this contact in the last 24 hours."
    assert not _to(meta_emulator, contacts[:1]) and sum(_to(meta_emulator, contacts[1:]).values()) == 2
    # ... and a cadence step with the words the campaign just sent is skipped and recorded, too.
    cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contacts[1].pk))
    assert cadences_advance() == 0
    send_queued(channels["sms"])
    assert not _to(twilio_emulator, contacts[1:2])
    enrollment = Enrollment.objects.get(cadence=cadence, contact=contacts[1])
    assert enrollment.status == "completed" and enrollment.steps_sent == 0
    (run,) = enrollment.runs.all()  # the step is recorded as skipped, with its reason code
    assert (run.status, run.code, run.message_id) == ("skipped", "duplicate", None)
    # Outside the window (or with the guard off) it goes.
    again = campaign_launch(campaign=_sms(channels, {"tags": [tag.pk]}, channel=whatsapp, dedupe_hours=0))
    send_queued(again.channel_id)
    assert _to(meta_emulator, contacts) == {c.phone.lstrip("+"): 2 for c in contacts[1:]} | {
        contacts[0].phone.lstrip("+"): 1
    }


# --- controls ----------------------------------------------------------------------------------------


def test_schedule_pause_resume_respects_the_future_time(in_tenant_a: Any, channels: dict[str, int]) -> None:
    tag = Tag.objects.create(name="sched")
    _contacts("8113", 2, tag)
    with time_machine.travel(datetime.datetime(2026, 11, 23, 10, 0, tzinfo=SP), tick=False):
        campaign = campaign_launch(
            campaign=_sms(channels, {"tags": [tag.pk]}, scheduled_at=datetime.datetime(2026, 11, 23, 15, 0, tzinfo=SP))
        )
        assert campaign.status == CampaignStatus.SCHEDULED
        assert campaign_pause(campaign=campaign) and campaign.status == CampaignStatus.PAUSED
        assert campaign_resume(campaign=campaign) and campaign.status == CampaignStatus.SCHEDULED  # still 10:00
        assert campaigns_start_due() == 0
    with time_machine.travel(datetime.datetime(2026, 11, 23, 15, 1, tzinfo=SP), tick=False):
        assert campaigns_start_due() == 1
        campaign.refresh_from_db()
        assert campaign.status == CampaignStatus.RUNNING


def test_retry_failed_sends_again_with_a_new_message_and_duplicate_copies(
    in_tenant_a: Any, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    tag = Tag.objects.create(name="retry")
    contacts = _contacts("8114", 4, tag)
    twilio_emulator.fail_next.extend([21211] * 2)
    try:
        campaign = campaign_launch(campaign=_sms(channels, {"tags": [tag.pk]}, failure_window=0))
        send_queued(campaign.channel_id)
    finally:
        twilio_emulator.fail_next.clear()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED and campaign_stats(campaign)["failed"] == 2
    report = campaign_report(campaign)
    assert [row["count"] for row in report["failed_by_reason"]] == [2]
    assert campaign_retry_failed(campaign=campaign) == 2
    assert campaign.status == CampaignStatus.RUNNING
    send_queued(campaign.channel_id)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED and campaign_stats(campaign)["sent"] == 4
    assert sum(_to(twilio_emulator, contacts).values()) == 4  # the failed ones never reached Twilio
    retried = Message.objects.filter(
        idempotency_key__endswith=":r1", idempotency_key__startswith=f"campaign:{campaign.pk}:"
    )
    assert retried.count() == 2 and set(retried.values_list("status", flat=True)) == {"sent"}
    assert campaign_retry_failed(campaign=campaign) == 0
    copy = campaign_duplicate(campaign=campaign)
    assert (copy.status, copy.audience, copy.body, copy.duplicated_from_id) == (
        CampaignStatus.DRAFT,
        campaign.audience,
        campaign.body,
        campaign.pk,
    )
    assert copy.name == "Promo (copy)" and not CampaignRecipient.objects.filter(campaign=copy).exists()


def test_every_control_on_the_page_and_in_the_api_with_roles(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User, agent_a: User, channels: dict[str, int]
) -> None:
    tag = Tag.objects.create(name="ctl")
    _contacts("8115", 3, tag)
    campaign = _sms(channels, {"tags": [tag.pk]})
    agent = tenant_client(tenant_a, agent_a, lang="en")
    manager = tenant_client(tenant_a, owner_a, lang="en")
    for action in ("launch", "pause", "resume", "cancel", "duplicate", "retry"):
        assert agent.post(f"/campaigns/{campaign.pk}/{action}/").status_code == 403, action
    assert manager.post(f"/campaigns/{campaign.pk}/explode/").status_code == 404
    page = manager.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "Duplicate" in page and "Launch" in page and 'data-testid="preview"' in page
    response = manager.post(f"/campaigns/{campaign.pk}/duplicate/")
    copy = Campaign.objects.exclude(pk=campaign.pk).get(duplicated_from=campaign)
    assert response.status_code == 302 and response["Location"] == f"/campaigns/{copy.pk}/"
    manager.post(f"/campaigns/{campaign.pk}/launch/")
    manager.post(f"/campaigns/{campaign.pk}/pause/")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    manager.post(f"/campaigns/{campaign.pk}/resume/")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.RUNNING

    token_agent = api_token_create(user=agent_a, tenant=tenant_a, name="a")[1]
    token_owner = api_token_create(user=owner_a, tenant=tenant_a, name="o")[1]
    host = f"{tenant_a.slug}.localhost"

    def api(token: str) -> APIClient:
        client = APIClient(HTTP_HOST=host)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return client

    base = f"/api/v1/campaigns/{campaign.pk}"
    for action in ("pause", "resume", "cancel", "duplicate", "retry"):
        assert api(token_agent).post(f"{base}/{action}/").status_code == 403, action
    assert api(token_agent).get(f"{base}/report/").status_code == 200
    owner = api(token_owner)
    assert owner.post(f"{base}/pause/").json()["status"] == "paused"
    assert owner.post(f"{base}/resume/").json()["status"] == "running"
    progress = owner.get(f"{base}/progress/").json()
    assert progress["campaign_id"] == campaign.pk and progress["counts"]["total"] == 3
    duplicated = owner.post(f"{base}/duplicate/")
    assert duplicated.status_code == 201 and duplicated.json()["status"] == "draft"
    assert owner.get(f"/api/v1/campaigns/{duplicated.json()['id']}/preview/").json()["results"]
    assert owner.post(f"{base}/cancel/").json()["status"] == "canceled"
    refused = owner.post(f"{base}/retry/")
    assert refused.status_code == 400
    created = owner.post(
        "/api/v1/campaigns/",
        {
            "name": "API list",
            "channel": channels["sms"],
            "kind": "text",
            "body": "Oi",
            "phones": "+5511981160001\n+5511981160001",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["audience_report"]["duplicates"] == 1


def test_an_agent_may_export_but_not_duplicate(in_tenant_a: Any, tenant_a: Tenant, channels: dict[str, int]) -> None:
    from tests.support import make_member

    viewer = make_member(tenant_a, "viewer-campaign@alpha.test", role=Role.AGENT)
    campaign = _sms(channels, {})
    client = tenant_client(tenant_a, viewer)
    assert client.get(f"/campaigns/{campaign.pk}/export.csv").status_code == 200  # viewing is for everyone
    assert client.post(f"/campaigns/{campaign.pk}/duplicate/").status_code == 403


# --- report ------------------------------------------------------------------------------------------


def test_report_counts_opt_outs_during_the_campaign_and_button_replies_and_exports_csv(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    from inbox.providers import StatusUpdate
    from inbox.services import status_apply

    tag = Tag.objects.create(name="report")
    contacts = _contacts("8117", 4, tag)
    consent_record(contact=contacts[3], medium="sms", status=ConsentStatus.OPTED_OUT, source="before")
    campaign = campaign_launch(campaign=_sms(channels, {"tags": [tag.pk]}))
    send_queued(campaign.channel_id)
    messages = {
        m.conversation.contact_id: m
        for m in Message.objects.filter(idempotency_key__startswith=f"campaign:{campaign.pk}:").select_related(
            "conversation"
        )
    }
    for contact, status in ((contacts[0], "read"), (contacts[1], "delivered")):
        update = StatusUpdate(str(messages[contact.pk].provider_message_id), status, timezone.now())
        status_apply(channel=campaign.channel, update=update)
    consent_record(contact=contacts[2], medium="sms", status=ConsentStatus.OPTED_OUT, source="keyword:PARE")
    report = campaign_report(campaign)
    assert (report["delivered"], report["read"], report["opt_outs"], report["skipped"]) == (2, 1, 1, 1)
    assert report["url_clicks"] is None and report["skipped_by_reason"][0]["count"] == 1
    manager = tenant_client(tenant_a, owner_a, lang="en")
    page = manager.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "opted out during the campaign 1" in page and "Export CSV" in page
    response = manager.get(f"/campaigns/{campaign.pk}/export.csv")
    assert response["Content-Disposition"] == f'attachment; filename="campaign-{campaign.pk}.csv"'
    body = b"".join(response.streaming_content).decode("utf-8-sig")  # type: ignore[attr-defined]
    lines = body.strip().splitlines()
    assert lines[0].startswith("Contact,Phone,State,Reason") and len(lines) == 5
    assert any("+5511981170000" in line and "Read" in line for line in lines)
    payload = progress_payload(campaign.pk)
    assert payload is not None and payload["counts"]["read"] == 1 and payload["status"] == "completed"


def test_timezone_of_the_cap_is_the_tenants(in_tenant_a: Any) -> None:
    # 02:30 UTC on a Tuesday is still Monday 23:30 in São Paulo: the cap resets at São Paulo's midnight.
    instant = datetime.datetime(2026, 11, 24, 2, 30, tzinfo=datetime.UTC)
    assert next_day_start(instant, "America/Sao_Paulo") == datetime.datetime(2026, 11, 24, 0, 0, tzinfo=SP)
    assert timezone.is_aware(next_day_start(instant, "UTC"))


def test_an_auto_pause_raises_the_tenant_alert_and_resuming_clears_it(
    in_tenant_a: Any, channels: dict[str, int], twilio_emulator: TwilioEmulator, django_capture_on_commit_callbacks: Any
) -> None:
    from alerts.models import Alert

    tag = Tag.objects.create(name="fail-alert")
    _contacts("8112", 12, tag)
    Channel.objects.filter(pk=channels["sms"]).update(rate_limit_per_s=5)
    twilio_emulator.fail_next.extend([21211] * 4)  # invalid numbers: permanent
    try:
        with django_capture_on_commit_callbacks(execute=True):
            campaign = campaign_launch(
                campaign=_sms(channels, {"tags": [tag.pk]}, failure_window=5, failure_threshold=40)
            )
            send_queued(campaign.channel_id)
    finally:
        twilio_emulator.fail_next.clear()
        Channel.objects.filter(pk=channels["sms"]).update(rate_limit_per_s=80)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    alert = Alert.objects.get(kind="campaign.auto_paused", key=str(campaign.pk), resolved_at=None)
    assert alert.detail["campaign_id"] == campaign.pk and "not a valid phone number" in alert.detail["common"]
    assert alert.detail["window"] == "5" and alert.detail["threshold"] == "40"
    with django_capture_on_commit_callbacks(execute=True):
        assert campaign_resume(campaign=campaign)
    alert.refresh_from_db()
    assert alert.resolved_at is not None and alert.resolution == "cleared"
