"""Plans and usage: metering at the events that exist (sends recorded by the dispatcher, AI tokens, call
minutes), the refusal at a limit in every sending path, the 80%/100% alerts (once, cleared when the limit
is raised), the superadmin's audited changes, features off, and the month in the tenant's time zone."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import AuditAction, AuditEntry, Role, User
from accounts.services import api_token_create, invitation_create
from ai import client as ai_client
from ai.inbox_bot import bot_inbound, bot_reply
from ai.models import AISettings, Assistant, BotMode, ConversationBot
from alerts import kinds
from alerts.models import Alert
from campaigns.models import CampaignRecipient, CampaignStatus, RecipientStatus
from campaigns.services import campaign_launch, campaign_resume, campaign_save
from crm.models import Contact, Tag
from crm.services import contact_get_or_create
from emulators.meta import MetaEmulator
from emulators.openai import OpenAIEmulator
from emulators.retell import RetellEmulator
from emulators.twilio import TwilioEmulator
from inbox.models import Channel, Message
from inbox.services import message_send
from tenants import usage
from tenants.models import Feature, LimitOverride, Metric, Plan, Tenant, UsageDay
from tests.ai.conftest import ai_key, assistant, customer_says, phone, wa_channel  # noqa: F401 (fixtures)
from tests.conftest import RETELL_KEY, tenant_client
from tests.dispatching import send_queued
from tests.messaging import open_conversation
from tests.usage.support import plan_give, used
from tests.voice.conftest import (  # noqa: F401 (fixtures)
    agent,
    post_retell,
    retell_event,
    retell_quiet,
    retell_script,
    voice_a,
)
from tests.voice.test_inbound import inbound_agent, number, ring
from voice.models import Call, CallStatus, FallbackCause, VoiceAgent, VoiceSettings
from voice.outbound import call_place, call_queue

pytestmark = pytest.mark.django_db


def _sms_audience(count: int, prefix: str) -> Tag:
    tag = Tag.objects.create(name=f"usage-{prefix}")
    tag.contacts.add(*[contact_get_or_create(phone=f"+55119{prefix}{i:04d}", name=f"C {i}") for i in range(count)])
    return tag


# --- metering ----------------------------------------------------------------------------------------


def test_sends_are_metered_per_channel_kind_where_the_dispatcher_records_them(
    in_tenant_a: Tenant, channels: dict[str, int], meta_emulator: MetaEmulator, twilio_emulator: TwilioEmulator
) -> None:
    wa = open_conversation(channels["whatsapp"], "+5511981110001")
    sms = open_conversation(channels["sms"], "+5511981110002")
    for text in ("um", "dois"):
        message_send(conversation=wa, body=text)
    message_send(conversation=sms, body="três")
    assert used(in_tenant_a, Metric.MESSAGES_WHATSAPP_CLOUD) == 0  # queued is not used: sent is
    send_queued(channels["whatsapp"])
    send_queued(channels["sms"])
    assert used(in_tenant_a, Metric.MESSAGES_WHATSAPP_CLOUD) == 2
    assert used(in_tenant_a, Metric.MESSAGES_SMS) == 1
    assert UsageDay.objects.filter(tenant=in_tenant_a, metric=Metric.MESSAGES_WHATSAPP_CLOUD).count() == 1  # one row


def test_ai_tokens_are_metered_from_the_model_answer(
    in_tenant_a: Tenant,
    ai_key: AISettings,  # noqa: F811
    openai_emulator: OpenAIEmulator,
) -> None:
    openai_emulator.reply({"ok": True})
    result = ai_client.chat(row=ai_key, messages=[{"role": "user", "content": "quanto custa?"}])
    assert result.prompt_tokens > 0
    assert used(in_tenant_a, Metric.AI_TOKENS) == result.prompt_tokens + result.completion_tokens


def test_voice_minutes_are_metered_once_when_a_call_ends(
    agent: VoiceAgent,  # noqa: F811
    voice_a: VoiceSettings,  # noqa: F811
    tenant_a: Tenant,
    retell_quiet: RetellEmulator,  # noqa: F811
) -> None:
    person = Contact.objects.create(phone=f"+55119873{uuid.uuid4().int % 100000:05d}")
    call = call_queue(contact=person, agent=agent)
    assert call_place(call_id=call.pk) == "placed"
    call.refresh_from_db()
    payload = retell_event("call_ended", str(call.retell_call_id), duration_ms=90_500)
    assert post_retell(voice_a.webhook_route, payload, RETELL_KEY).status_code == 204
    assert post_retell(voice_a.webhook_route, payload, RETELL_KEY).status_code == 204  # a duplicate adds nothing
    connection.set_tenant(tenant_a)
    assert used(tenant_a, Metric.VOICE_MINUTES) == 2  # 1 min 30.5 s: two started minutes


# --- refusal at the limit ----------------------------------------------------------------------------


def test_agent_reply_page_and_api_refuse_past_the_month_limit(
    in_tenant_a: Tenant, owner_a: User, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    plan_give(in_tenant_a, messages_whatsapp_cloud=2)
    usage.usage_add(metric=Metric.MESSAGES_WHATSAPP_CLOUD, amount=1)
    conversation = open_conversation(channels["whatsapp"], "+5511981110003")
    message_send(conversation=conversation, body="cabe")  # 1 used + 1 queued = the limit
    before = Message.objects.filter(conversation=conversation).count()
    page = tenant_client(in_tenant_a, owner_a, lang="en").post(
        f"/conversations/{conversation.pk}/", {"body": "não cabe"}
    )
    assert page.status_code == 400
    assert "monthly limit of 2 WhatsApp Cloud messages is reached" in page.content.decode()
    _token, raw = api_token_create(user=owner_a, tenant=in_tenant_a, name="usage")
    api = Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {raw}", HTTP_ACCEPT_LANGUAGE="pt-br")
    refused = api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/", {"body": "x"}, content_type="application/json"
    )
    assert refused.status_code == 400 and refused.json()["code"] == "usage_limit"
    assert "limite mensal" in refused.json()["detail"]
    assert Message.objects.filter(conversation=conversation).count() == before  # nothing made
    send_queued(channels["whatsapp"])  # what was admitted goes out
    assert used(in_tenant_a, Metric.MESSAGES_WHATSAPP_CLOUD) == 2


def test_a_campaign_pauses_at_the_limit_with_the_reason_nothing_half_sent_then_goes_on_when_extended(
    in_tenant_a: Tenant, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    plan_give(in_tenant_a, messages_sms=3)
    tag = _sms_audience(5, "7401")
    campaign = campaign_save(
        name="Limite",
        channel=Channel.objects.get(pk=channels["sms"]),
        audience={"tags": [tag.pk]},
        kind="text",
        body="Oi {{first_name}}",
        respect_quiet_hours=False,
    )
    campaign = campaign_launch(campaign=campaign)
    send_queued(channels["sms"])
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    assert "3" in campaign.pause_reason and "SMS" in campaign.pause_reason
    recipients = CampaignRecipient.objects.filter(campaign=campaign)
    assert recipients.filter(status=RecipientStatus.SENT).count() == 3
    assert recipients.filter(status=RecipientStatus.PENDING, message=None).count() == 2  # not built, not lost
    assert Message.objects.filter(idempotency_key__startswith=f"campaign:{campaign.pk}:").count() == 3
    assert used(in_tenant_a, Metric.MESSAGES_SMS) == 3
    assert campaign_resume(campaign=campaign)  # still at the limit: it pauses again, nothing more goes
    send_queued(channels["sms"])
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED and recipients.filter(status=RecipientStatus.PENDING).count() == 2
    usage.limit_override_set(
        tenant=in_tenant_a, metric=Metric.MESSAGES_SMS, limit=10, reason="Black Friday", actor=None
    )
    assert campaign_resume(campaign=campaign)
    send_queued(channels["sms"])
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED and recipients.filter(status=RecipientStatus.SENT).count() == 5
    assert used(in_tenant_a, Metric.MESSAGES_SMS) == 5


def test_a_cadence_step_past_the_limit_is_held_with_the_reason_and_runs_when_raised(
    in_tenant_a: Tenant, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    from campaigns.cadences import cadence_enroll, cadence_save, cadences_advance
    from campaigns.models import Enrollment, StepRun

    plan_give(in_tenant_a, messages_sms=0)
    person = contact_get_or_create(phone="+5511981110077", name="Rita")
    cadence = cadence_save(
        name="Boas-vindas",
        channel=Channel.objects.get(pk=channels["sms"]),
        steps=[{"kind": "text", "body": "Oi Rita", "delay_minutes": 0}],
        respect_quiet_hours=False,
    )
    cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=person.pk))
    cadences_advance()
    enrollment = Enrollment.objects.get(cadence=cadence, contact=person)
    assert enrollment.status == "active" and "SMS" in enrollment.exit_detail
    assert enrollment.next_run_at is not None and enrollment.next_run_at > timezone.now()
    assert not StepRun.objects.filter(enrollment=enrollment).exists()  # held, not run and not lost
    usage.limit_override_set(tenant=in_tenant_a, metric=Metric.MESSAGES_SMS, limit=None, reason="ok", actor=None)
    Enrollment.objects.filter(pk=enrollment.pk).update(next_run_at=timezone.now())
    cadences_advance()
    enrollment.refresh_from_db()
    (run,) = StepRun.objects.filter(enrollment=enrollment)
    assert run.status == "queued" and run.message_id is not None and enrollment.exit_detail == ""


def test_the_assistant_hands_over_when_the_plan_has_no_tokens_left(
    in_tenant_a: Tenant,
    ai_key: AISettings,  # noqa: F811
    assistant: Assistant,  # noqa: F811
    wa_channel: Channel,  # noqa: F811
    openai_emulator: OpenAIEmulator,
) -> None:
    plan_give(in_tenant_a, ai_tokens=100)
    usage.usage_add(metric=Metric.AI_TOKENS, amount=100)
    number = phone()
    bot_inbound(message_id=customer_says(wa_channel, number, "oi, tem camiseta?").pk)
    conversation_id = Message.objects.filter(conversation__contact__phone=number).first().conversation_id  # type: ignore[union-attr]
    with time_machine.travel(timezone.now() + datetime.timedelta(seconds=6), tick=True):
        assert bot_reply(conversation_id=conversation_id) is None
    state = ConversationBot.objects.get(conversation_id=conversation_id)
    assert state.mode == BotMode.HUMAN and "100 tokens de IA" in state.handoff_reason  # alpha speaks pt-BR
    assert openai_emulator.chat_requests() == []  # the model was never asked
    with pytest.raises(ai_client.AIError) as refused:
        ai_client.chat(row=ai_key, messages=[{"role": "user", "content": "x"}])
    assert refused.value.code == "usage_limit" and not refused.value.retryable


def test_voice_calls_are_refused_with_the_reason_when_off_or_out_of_minutes(
    agent: VoiceAgent,  # noqa: F811
    tenant_a: Tenant,
    retell_quiet: RetellEmulator,  # noqa: F811
) -> None:
    person = Contact.objects.create(phone=f"+55119874{uuid.uuid4().int % 100000:05d}")
    queued = call_queue(contact=person, agent=agent)  # queued while allowed
    plan = plan_give(tenant_a, voice_minutes=5)
    usage.usage_add(metric=Metric.VOICE_MINUTES, amount=5)
    calls_before = len(retell_quiet.calls)
    assert call_place(call_id=queued.pk) == "usage_limit"
    queued.refresh_from_db()
    assert queued.status == CallStatus.NOT_CONNECTED and "5 minutos de voz" in queued.error_reason
    with pytest.raises(ValidationError) as refused:
        call_queue(contact=person, agent=agent)
    assert refused.value.code == "usage_limit"
    type(plan).objects.filter(pk=plan.pk).update(feature_voice=False, voice_minutes=None)
    with pytest.raises(ValidationError) as off:
        call_queue(contact=person, agent=agent)
    assert off.value.code == "feature_disabled"
    assert len(retell_quiet.calls) == calls_before and Call.objects.filter(contact=person).count() == 1


def test_an_inbound_call_past_the_plan_gets_the_fallback_with_the_reason(
    voice_a: VoiceSettings,  # noqa: F811
    tenant_a: Tenant,
    retell_script: RetellEmulator,  # noqa: F811
) -> None:
    to = number()
    inbound_agent(to)
    plan_give(tenant_a, voice_minutes=1)
    usage.usage_add(metric=Metric.VOICE_MINUTES, amount=1, tenant=tenant_a)
    calls_before = len(retell_script.calls)
    response = ring(voice_a.webhook_route, to)
    assert response.status_code == 200 and "<Sip>" not in response.content.decode()  # never silence
    connection.set_tenant(tenant_a)
    call = Call.objects.get(twilio_call_sid=response.params["CallSid"])
    assert call.fallback_cause == FallbackCause.PLAN_LIMIT and "1 minutos de voz" in call.error_reason
    assert len(retell_script.calls) == calls_before  # Retell was never asked


def test_seats_and_contacts_past_the_plan_are_refused(in_tenant_a: Tenant, owner_a: User) -> None:
    seats = in_tenant_a.memberships.count()  # type: ignore[attr-defined]
    plan_give(in_tenant_a, max_users=seats + 1, max_contacts=Contact.objects.count() + 1)
    invitation_create(tenant=in_tenant_a, email="um@alpha.test", role=Role.AGENT, invited_by=owner_a)
    with pytest.raises(ValidationError) as full:
        invitation_create(tenant=in_tenant_a, email="dois@alpha.test", role=Role.AGENT, invited_by=owner_a)
    assert full.value.code == "usage_limit"
    contact_get_or_create(phone="+5511981110101")
    with pytest.raises(ValidationError):
        contact_get_or_create(phone="+5511981110102")
    contact_get_or_create(phone="+5511981110103", from_provider=True)  # a customer writing in is never refused


# --- features off ------------------------------------------------------------------------------------


def test_features_off_hide_the_navigation_and_their_pages_answer_403(in_tenant_a: Tenant, owner_a: User) -> None:
    plan_give(in_tenant_a, feature_voice=False, feature_ai=False, feature_api=False, feature_webhooks=False)
    browser = tenant_client(in_tenant_a, owner_a, lang="en")
    home = browser.get("/").content.decode()
    assert 'href="/calls/"' not in home and 'href="/ai/assistants/"' not in home and "/settings/usage/" in home
    assert 'href="/knowledge/"' not in home  # what only the assistants read goes with them
    pages = (
        "/calls/",
        "/voice/agents/",
        "/ai/assistants/",
        "/knowledge/",
        "/settings/api-tokens/",
        "/settings/webhooks/",
    )
    for path in pages:
        page = browser.get(path)
        assert page.status_code == 403, path
        assert "Your plan does not include" in page.content.decode()
    _token, raw = api_token_create(user=owner_a, tenant=in_tenant_a, name="off")
    api = Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {raw}")
    refused = api.get("/api/v1/conversations/")
    assert refused.status_code == 403 and refused.json()["code"] == "feature_disabled"
    assert "REST" in refused.json()["detail"]
    type(in_tenant_a.plan).objects.filter(pk=in_tenant_a.plan.pk).update(feature_api=True)  # type: ignore[union-attr]
    assert api.get("/api/v1/conversations/").status_code == 200
    calls = api.get("/api/v1/calls/")  # the API is in the plan now, voice still is not
    assert calls.status_code == 403 and "voz" in calls.json()["detail"].lower()
    for path in ("/api/v1/knowledge-bases/", "/api/v1/qa-pairs/"):
        assert api.get(path).status_code == 403, path
    assert browser.get("/conversations/").status_code == 200  # what the plan includes stays open
    usage.feature_check(Feature.QR)  # left on
    with pytest.raises(usage.FeatureDisabled):
        usage.feature_check(Feature.VOICE)


# --- alerts ------------------------------------------------------------------------------------------


def test_near_and_reached_alerts_are_raised_once_and_cleared_when_the_limit_is_raised(
    in_tenant_a: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    plan_give(in_tenant_a, messages_sms=10)
    key = f"{Metric.MESSAGES_SMS}:{usage.month_key(usage.tenant_today(in_tenant_a))}"
    with django_capture_on_commit_callbacks(execute=True):
        usage.usage_add(metric=Metric.MESSAGES_SMS, amount=7)
    assert not Alert.objects.filter(key=key).exists()
    with django_capture_on_commit_callbacks(execute=True):
        usage.usage_add(metric=Metric.MESSAGES_SMS, amount=1)  # 80%
        usage.usage_add(metric=Metric.MESSAGES_SMS, amount=1)  # 90%: no second alert
    (near,) = Alert.objects.filter(key=key, kind=kinds.USAGE_LIMIT_NEAR)
    assert near.is_open and near.count == 1 and near.detail["percent"] == 80
    with django_capture_on_commit_callbacks(execute=True):
        usage.usage_add(metric=Metric.MESSAGES_SMS, amount=1)  # 100%
        usage.usage_alerts_refresh(tenant=in_tenant_a)  # the daily refresh: the same alert, not a new one
    (reached,) = Alert.objects.filter(key=key, kind=kinds.USAGE_LIMIT_REACHED)
    near.refresh_from_db()
    assert reached.is_open and not near.is_open
    worded = kinds.word(reached.kind, reached.detail)
    assert "SMS" in worded.title and worded.link == "/settings/usage/"
    with django_capture_on_commit_callbacks(execute=True):
        usage.limit_override_set(
            tenant=in_tenant_a, metric=Metric.MESSAGES_SMS, limit=100, reason="campanha de Natal", actor=None
        )
    reached.refresh_from_db()
    assert not reached.is_open
    assert not Alert.objects.filter(key=key, resolved_at=None).exists()


# --- superadmin --------------------------------------------------------------------------------------


def test_superadmin_changes_the_plan_and_extends_a_limit_in_the_admin_audited(
    tenant_a: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    connection.set_schema_to_public()
    admin = User.objects.create_superuser(email=f"root-{uuid.uuid4().hex[:6]}@x.test", password="pw-Admin-123")
    root = Client(HTTP_HOST="localhost")
    root.force_login(admin)
    plan = plan_give(tenant_a, messages_sms=10)
    pro = type(plan).objects.get(code="pro")
    change = root.get(f"/admin/tenants/tenant/{tenant_a.pk}/change/")
    assert change.status_code == 200 and "uso neste mês" in change.content.decode().lower()
    form = change.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "plan"}
    data.update(
        {
            "plan": pro.pk,
            "domains-TOTAL_FORMS": "0",
            "domains-INITIAL_FORMS": "0",
            "domains-MIN_NUM_FORMS": "0",
            "domains-MAX_NUM_FORMS": "1000",
        }
    )
    data.pop("suspended_at", None)
    data["is_active"] = "on"
    with django_capture_on_commit_callbacks(execute=True):
        saved = root.post(f"/admin/tenants/tenant/{tenant_a.pk}/change/", data)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    tenant_a.refresh_from_db()
    assert tenant_a.plan_id == pro.pk
    entry = AuditEntry.objects.filter(action=AuditAction.PLAN_CHANGED, actor=admin).get()
    assert entry.metadata == {"from": plan.code, "to": "pro"}
    with django_capture_on_commit_callbacks(execute=True):
        added = root.post(
            "/admin/tenants/limitoverride/add/",
            {"tenant": tenant_a.pk, "metric": Metric.MESSAGES_SMS, "limit": "9000", "until": "", "reason": "Natal"},
        )
    assert added.status_code == 302
    override = LimitOverride.objects.get(tenant=tenant_a)
    assert override.set_by == admin and override.limit == 9000
    assert usage.limit_of(metric=Metric.MESSAGES_SMS, tenant=tenant_a).limit == 9000
    audited = AuditEntry.objects.get(action=AuditAction.LIMIT_OVERRIDE, actor=admin)
    assert audited.metadata["from"] == pro.messages_sms and audited.metadata["to"] == 9000
    usage.usage_add(metric=Metric.MESSAGES_SMS, amount=42, tenant=tenant_a)
    listing = root.get(f"/admin/tenants/usageday/?tenant__id__exact={tenant_a.pk}&metric={Metric.MESSAGES_SMS}")
    assert listing.status_code == 200
    totals = listing.content.decode().split('id="usage-totals"')[1].split("</p>")[0]
    assert "42" in totals and "SMS" in totals


# --- the month in the tenant's time zone -------------------------------------------------------------


def test_the_month_turns_at_midnight_in_the_tenants_time_zone(in_tenant_a: Tenant) -> None:
    Tenant.objects.filter(pk=in_tenant_a.pk).update(timezone="America/Sao_Paulo")
    in_tenant_a.refresh_from_db()
    plan_give(in_tenant_a, messages_sms=5)
    # 02:00 UTC on 1 December is still 30 November, 23:00, in São Paulo: November's meter
    with time_machine.travel(datetime.datetime(2026, 12, 1, 2, 0, tzinfo=datetime.UTC), tick=False):
        usage.usage_add(metric=Metric.MESSAGES_SMS, amount=5, tenant=in_tenant_a)
        assert UsageDay.objects.get(tenant=in_tenant_a, metric=Metric.MESSAGES_SMS).day == datetime.date(2026, 11, 30)
        with pytest.raises(usage.LimitReached):
            usage.limit_check(metric=Metric.MESSAGES_SMS, tenant=in_tenant_a)
    with time_machine.travel(datetime.datetime(2026, 12, 1, 3, 30, tzinfo=datetime.UTC), tick=False):
        assert usage.usage_month(metric=Metric.MESSAGES_SMS, tenant=in_tenant_a) == 0  # December there
        usage.limit_check(metric=Metric.MESSAGES_SMS, tenant=in_tenant_a)


def test_a_plan_without_outgoing_webhooks_delivers_nothing_from_the_moment_it_changes(
    in_tenant_a: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    from tests.webhooks.receiver import Receiver
    from webhooks.models import Delivery
    from webhooks.services import endpoint_create, endpoint_event_send, event_publish

    receiver = Receiver().start()
    try:
        endpoint, _secret = endpoint_create(url=receiver.url, events=["lead.won"])
    finally:
        receiver.stop()
    assert event_publish("lead.won", {"card_id": 1}) == 1  # on: delivered (and the subscriptions cached)
    plan = Plan.objects.create(code=f"t-{uuid.uuid4().hex[:8]}", name="Sem webhooks", feature_webhooks=False)
    with django_capture_on_commit_callbacks(execute=True):  # the superadmin's change, as the admin makes it
        usage.tenant_plan_change(tenant=in_tenant_a, plan=plan, actor=None)
    connection.set_tenant(in_tenant_a)
    assert event_publish("lead.won", {"card_id": 2}) == 0  # at once, not when the cache expires
    assert endpoint_event_send(endpoint.pk, "lead.won", {"card_id": 3}) == []
    assert Delivery.objects.filter(endpoint=endpoint).count() == 1

    connection.set_schema_to_public()
    root = Client(HTTP_HOST="localhost")
    root.force_login(User.objects.create_superuser(email=f"root-{uuid.uuid4().hex[:6]}@x.test", password="pw-A-123"))
    form = root.get(f"/admin/tenants/plan/{plan.pk}/change/").context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and not isinstance(v, bool)}
    data.update({k: "on" for k, v in form.initial.items() if v is True})
    data["feature_webhooks"] = "on"  # the plan itself edited: its tenants deliver again, at once
    with django_capture_on_commit_callbacks(execute=True):
        assert root.post(f"/admin/tenants/plan/{plan.pk}/change/", data).status_code == 302
    connection.set_tenant(in_tenant_a)
    assert event_publish("lead.won", {"card_id": 4}) == 1


def test_an_import_past_the_contacts_limit_marks_the_rows_left_out(in_tenant_a: Tenant) -> None:
    import csv
    import io

    from django.core.files.base import ContentFile

    from crm.imports import import_configure, import_run, import_start

    limit = Contact.objects.count() + 2
    plan_give(in_tenant_a, max_contacts=limit)
    text = "phone,name\n" + "".join(f"+5511981120{i:03d},Pessoa {i}\n" for i in range(4))
    upload = import_start(file=ContentFile(text.encode()), original_name="lista.csv")
    import_configure(upload=upload, mapping=upload.mapping, update_existing=False, tag_ids=[])
    done = import_run(import_id=upload.pk)
    assert (done.created_count, done.failed_count) == (2, 2)
    assert f"{limit} contatos" in done.failure  # which limit, in the tenant's pt-BR
    report = list(csv.reader(io.StringIO(done.error_report.read().decode("utf-8-sig"))))
    assert [row[0] for row in report[1:]] == ["4", "5"] and all("contatos" in row[-1] for row in report[1:])
    assert not Contact.objects.filter(phone__in=["+5511981120002", "+5511981120003"]).exists()


def test_a_channel_past_the_plan_or_a_qr_channel_off_the_plan_is_refused(
    in_tenant_a: Tenant, channels: dict[str, int]
) -> None:
    from inbox.services import channel_create

    before = Channel.objects.count()
    plan_give(in_tenant_a, max_channels=before, feature_qr=False)
    with pytest.raises(usage.LimitReached):
        channel_create(kind="sms_twilio", name="Outro SMS", phone_number="+5511900000099", credentials={})
    with pytest.raises(usage.FeatureDisabled):
        channel_create(kind="whatsapp_web", name="QR", phone_number="", credentials={})
    assert Channel.objects.count() == before
