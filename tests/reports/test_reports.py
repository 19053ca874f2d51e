"""Scheduled reports: the numbers of a seeded day in the email and the WhatsApp text (pt-BR and English),
when a report is due across time zones and weekdays, exactly once per period, and the settings page."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from accounts.models import Role, User
from analytics.rollups import rollups_backfill
from campaigns.models import Campaign, CampaignRecipient, CampaignStatus
from crm.models import Contact
from inbox.models import Channel, Conversation, Message
from kanban.models import CardMove, Stage
from kanban.services import board_create, card_create, card_move
from reports.models import Frequency, Medium, ReportRun, ReportSettings, RunStatus, Weekday
from reports.selectors import Period, report_due
from reports.services import report_send_due, reports_tick
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.support import make_member
from voice.models import Call
from whatsapp.models import MessageTemplate

TZ = "America/Sao_Paulo"
SP = ZoneInfo(TZ)


def _local_today() -> date:
    return timezone.now().astimezone(SP).date()


def _yesterday_at(hour: int, minute: int = 0) -> datetime:
    return datetime.combine(_local_today() - timedelta(days=1), datetime.min.time(), tzinfo=SP).replace(
        hour=hour, minute=minute
    )


def _this_morning() -> datetime:
    """Today 09:00 in São Paulo: a daily report at 08:00 is due."""
    return datetime.combine(_local_today(), datetime.min.time(), tzinfo=SP).replace(hour=9)


def _message(conversation: Conversation, direction: str, at: datetime, **fields: Any) -> Message:
    message = Message.objects.create(
        conversation=conversation,
        channel=conversation.channel,
        direction=direction,
        body="oi",
        idempotency_key=uuid.uuid4().hex,
        **fields,
    )
    Message.objects.filter(pk=message.pk).update(created_at=at)
    return message


@pytest.fixture
def seeded(in_tenant_a: Tenant) -> dict[str, Any]:
    """Yesterday (São Paulo): 3 messages in, 2 out (one a person's reply), 2 new leads and 1 stage move,
    a campaign finished (4 sent, 4 delivered, 3 read, 1 failed) and 2 calls (1 answered)."""
    channel = Channel.objects.create(
        kind="whatsapp_cloud", name="WA report", phone_number="+5511900003333", credentials={}
    )
    agent = make_member(in_tenant_a, f"rep-{uuid.uuid4().hex[:6]}@alpha.test", Role.AGENT)
    contact = Contact.objects.create(phone=f"+55119{uuid.uuid4().int % 10**8:08d}", name="Cliente")
    conversation = Conversation.objects.create(contact=contact, channel=channel)
    _message(conversation, "in", _yesterday_at(10))
    _message(conversation, "out", _yesterday_at(10, 5), author=agent, status="delivered", sent_at=_yesterday_at(10, 5))
    _message(conversation, "in", _yesterday_at(10, 10))
    _message(conversation, "in", _yesterday_at(10, 20))
    _message(conversation, "out", _yesterday_at(10, 30), status="sent", sent_at=_yesterday_at(10, 30))
    board = board_create(name=f"Funil {uuid.uuid4().hex[:4]}")
    first, second = list(Stage.objects.filter(board=board).order_by("rank", "pk"))[:2]
    one = card_create(board=board, stage=first, title="Lead 1")
    card_create(board=board, stage=first, title="Lead 2")
    card_move(card_id=one.pk, to_stage_id=second.pk)
    CardMove.objects.filter(card__board=board).update(created_at=_yesterday_at(11))
    campaign = Campaign.objects.create(
        name="Black Friday",
        channel=channel,
        status=CampaignStatus.COMPLETED,
        started_at=_yesterday_at(9),
        finished_at=_yesterday_at(12),
    )
    for status in ("read", "read", "replied", "delivered", "failed"):
        who = Contact.objects.create(phone=f"+55119{uuid.uuid4().int % 10**8:08d}")
        CampaignRecipient.objects.create(campaign=campaign, contact=who, status=status)
    for duration in (60_000, None):
        call = Call.objects.create(
            direction="out", status="ended" if duration else "not_connected", duration_ms=duration, contact=contact
        )
        Call.objects.filter(pk=call.pk).update(created_at=_yesterday_at(14))
    rollups_backfill()
    return {"channel": channel, "tenant": in_tenant_a}


@pytest.fixture
def language(in_tenant_a: Tenant) -> Iterator[Any]:
    """Switch the tenant's language for one test (the tenant object the connection holds)."""
    before = in_tenant_a.language

    def use(code: str) -> None:
        in_tenant_a.language = code

    yield use
    in_tenant_a.language = before


def _settings(**fields: Any) -> ReportSettings:
    values = {"frequency": Frequency.DAILY, "hour": 8, "email_enabled": True, **fields}
    settings = ReportSettings(pk=1, **values)
    settings.save()
    return settings


def _window_open(channel: Channel, phone: str) -> None:
    contact, _ = Contact.objects.get_or_create(phone=phone)
    conversation, _ = Conversation.objects.get_or_create(contact=contact, channel=channel)
    Conversation.objects.filter(pk=conversation.pk).update(last_inbound_at=timezone.now())


PT_LINES = (
    "Mensagens recebidas: 3",
    "Mensagens enviadas: 2",
    "Respostas da sua equipe: 1",
    "Novos leads: 2",
    "Mudanças de etapa: 1",
    "Ligações: 2",
    "Ligações atendidas: 1",
    "Black Friday (Concluída): 4 enviadas, 4 entregues, 3 lidas, 1 falharam",
)
EN_LINES = (
    "Messages received: 3",
    "Messages sent: 2",
    "Replies by your team: 1",
    "New leads: 2",
    "Stage moves: 1",
    "Calls: 2",
    "Calls answered: 1",
    "Black Friday (Completed): 4 sent, 4 delivered, 3 read, 1 failed",
)


@pytest.mark.parametrize(
    ("code", "lines", "subject"), [("pt-br", PT_LINES, "Relatório diário"), ("en", EN_LINES, "Daily report")]
)
def test_the_report_says_the_numbers_of_the_day_by_email_and_whatsapp(
    seeded: dict[str, Any], owner_a: User, language: Any, code: str, lines: tuple[str, ...], subject: str
) -> None:
    language(code)
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    _window_open(seeded["channel"], phone)
    _settings(whatsapp_number=phone, whatsapp_channel=seeded["channel"])
    mail.outbox.clear()
    runs = report_send_due(now=_this_morning())
    assert {(r.medium, r.status) for r in runs} == {(Medium.EMAIL, RunStatus.SENT), (Medium.WHATSAPP, RunStatus.SENT)}
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert owner_a.email in email.to
    assert subject in email.subject
    html = email.alternatives[0][0]
    for line in lines:
        assert line in email.body, (line, email.body)
    assert "Black Friday" in html and ">3</strong>" in html and ">2</strong>" in html
    whatsapp = Message.objects.get(pk=next(r.message_id for r in runs if r.medium == Medium.WHATSAPP))
    assert whatsapp.conversation.contact.phone == phone and whatsapp.channel_id == seeded["channel"].pk
    assert whatsapp.direction == "out" and whatsapp.status == "queued"  # the normal outbound path
    for line in lines:
        if "atendidas" not in line and "answered" not in line:
            short = line.replace(" (Concluída)", "").replace(" (Completed)", "")  # no status in the short text
            assert short in whatsapp.body, (short, whatsapp.body)
    yesterday = _local_today() - timedelta(days=1)
    shown = yesterday.strftime("%d/%m/%Y" if code == "pt-br" else "%m/%d/%Y")
    assert shown in whatsapp.body and shown in email.body


def test_whatsapp_cloud_outside_the_window_is_skipped_and_said(seeded: dict[str, Any], owner_a: User) -> None:
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    _settings(whatsapp_number=phone, whatsapp_channel=seeded["channel"], email_enabled=False)
    (run,) = report_send_due(now=_this_morning())
    assert run.status == RunStatus.SKIPPED and "24" in run.detail
    assert not Message.objects.filter(conversation__contact__phone=phone).exists()
    assert report_send_due(now=_this_morning()) == []  # skipped is done: not tried again every tick


def _template(channel: Channel, body: str, status: str = "APPROVED", waba: str = "waba-report") -> MessageTemplate:
    Channel.objects.filter(pk=channel.pk).update(waba_id="waba-report")
    channel.refresh_from_db()
    return MessageTemplate.objects.create(
        waba_id=waba,
        template_id=uuid.uuid4().hex,
        name=f"daily_report_{uuid.uuid4().hex[:6]}",
        language="pt_BR",
        category="UTILITY",
        status=status,
        components=[{"type": "BODY", "text": body}],
    )


def test_outside_the_window_the_chosen_template_carries_the_report(seeded: dict[str, Any], owner_a: User) -> None:
    channel = seeded["channel"]
    template = _template(channel, "Resumo {{1}}: {{2}}")
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    _settings(whatsapp_number=phone, whatsapp_channel=channel, whatsapp_template=template, email_enabled=False)
    (run,) = report_send_due(now=_this_morning())
    assert run.status == RunStatus.SENT, run.detail
    message = Message.objects.get(pk=run.message_id)
    assert (message.type, message.template_name, message.template_language) == ("template", template.name, "pt_BR")
    heading, numbers = message.template_variables["body"]
    shown = (_local_today() - timedelta(days=1)).strftime("%d/%m/%Y")
    assert heading == f"Relatório diário de {seeded['tenant'].name}, {shown}"
    assert numbers.startswith("3 mensagens recebidas, 2 enviadas, 1 respostas, 2 novos leads, 1 mudanças de etapa")
    assert "Black Friday: 4 enviadas" in numbers and "\n" not in numbers and "\t" not in numbers  # Meta's rule
    assert message.body == f"Resumo {heading}: {numbers}"  # the inbox shows what the customer reads

    # Inside the window the full text goes out; a template rejected since it was chosen is said, not sent.
    _window_open(channel, phone)
    (inside,) = report_send_due(now=_this_morning() + timedelta(days=1))
    assert Message.objects.get(pk=inside.message_id).type == "text"
    Conversation.objects.filter(contact__phone=phone).update(last_inbound_at=timezone.now() - timedelta(days=2))
    MessageTemplate.objects.filter(pk=template.pk).update(status="REJECTED")
    (rejected,) = report_send_due(now=_this_morning() + timedelta(days=2))
    assert rejected.status == RunStatus.SKIPPED and "aprovado pela Meta" in rejected.detail  # the tenant's language


def test_the_template_must_fit_the_channel(seeded: dict[str, Any], owner_a: User) -> None:
    channel = seeded["channel"]
    web = Channel.objects.create(kind="whatsapp_web", name="QR report", phone_number="+5511900006666", credentials={})
    good = _template(channel, "{{1}} {{2}}")
    three = _template(channel, "{{1}} {{2}} {{3}}")
    elsewhere = _template(channel, "{{1}}", waba="waba-of-someone-else")
    client = tenant_client(seeded["tenant"], owner_a, lang="en")
    page = client.get("/settings/reports/").content.decode()
    assert good.name in page and elsewhere.name not in page  # only this workspace's approved templates
    fields = {"whatsapp_number": "+55 11 91234-5678", "whatsapp_channel": str(channel.pk)}
    assert "the report fills two" in _post(client, **fields, whatsapp_template=str(three.pk)).content.decode()
    on_web = _post(client, **fields | {"whatsapp_channel": str(web.pk)}, whatsapp_template=str(good.pk))
    assert "Only a WhatsApp Cloud API number sends templates" in on_web.content.decode()
    assert not ReportSettings.objects.exists()
    assert _post(client, **fields, whatsapp_template=str(good.pk)).status_code == 302
    assert ReportSettings.objects.get().whatsapp_template_id == good.pk


def test_a_claim_left_sending_by_a_dead_worker_is_taken_over_once(seeded: dict[str, Any], owner_a: User) -> None:
    """A worker that died between the claim and the send leaves the run "sending": the next tick after
    ReportRun.STALE_MINUTES takes it over, the WhatsApp copy it may have queued is not queued twice."""
    ReportRun.objects.filter(is_test=False).delete()
    phone = f"+55119{uuid.uuid4().int % 10**8:08d}"
    _window_open(seeded["channel"], phone)
    _settings(whatsapp_number=phone, whatsapp_channel=seeded["channel"])
    yesterday = _local_today() - timedelta(days=1)
    crashed_at = timezone.now() - timedelta(minutes=ReportRun.STALE_MINUTES + 1)
    left = {
        m: ReportRun.objects.create(frequency="daily", period_start=yesterday, period_end=yesterday, medium=m)
        for m in (Medium.EMAIL, Medium.WHATSAPP)
    }
    ReportRun.objects.filter(pk=left[Medium.EMAIL].pk).update(claimed_at=timezone.now())  # still at work
    ReportRun.objects.filter(pk=left[Medium.WHATSAPP].pk).update(claimed_at=crashed_at)
    conversation = Conversation.objects.get(contact__phone=phone)
    from inbox.services import message_send

    queued = message_send(conversation=conversation, body="x", idempotency_key=f"report:{left[Medium.WHATSAPP].pk}")
    mail.outbox.clear()
    (run,) = report_send_due(now=_this_morning())
    assert (run.pk, run.medium, run.status, run.attempts) == (left[Medium.WHATSAPP].pk, Medium.WHATSAPP, "sent", 2)
    assert run.message_id == queued.pk and Message.objects.filter(conversation=conversation).count() == 1
    assert mail.outbox == [] and report_send_due(now=_this_morning()) == []  # the live claim is left alone
    ReportRun.objects.filter(pk=left[Medium.EMAIL].pk).update(claimed_at=crashed_at)
    (email,) = report_send_due(now=_this_morning())
    assert (email.medium, email.status, len(mail.outbox)) == (Medium.EMAIL, "sent", 1)
    ReportRun.objects.filter(pk=email.pk).update(
        status="sending", attempts=ReportRun.MAX_ATTEMPTS, claimed_at=crashed_at
    )
    assert report_send_due(now=_this_morning()) == []  # given up after MAX_ATTEMPTS: no endless resends


def _due(at_utc: datetime, tz: str, **fields: Any) -> Period | None:
    settings = ReportSettings(**{"frequency": Frequency.DAILY, "hour": 8, **fields})
    return report_due(settings, now=at_utc, tz=tz)


def test_a_daily_report_is_due_from_the_local_hour_in_each_time_zone() -> None:
    utc = ZoneInfo("UTC")
    # 10:59 UTC is 07:59 in São Paulo: not yet; 11:00 UTC is 08:00 there: yesterday's report.
    assert _due(datetime(2026, 12, 2, 10, 59, tzinfo=utc), TZ) is None
    assert _due(datetime(2026, 12, 2, 11, 0, tzinfo=utc), TZ) == Period("daily", date(2026, 12, 1), date(2026, 12, 1))
    # 23:30 UTC on Dec 1 is already 08:30 on Dec 2 in Tokyo: Dec 1's report there.
    late = datetime(2026, 12, 1, 23, 30, tzinfo=utc)
    assert _due(late, "Asia/Tokyo") == Period("daily", date(2026, 12, 1), date(2026, 12, 1))
    assert _due(late, TZ) == Period("daily", date(2026, 11, 30), date(2026, 11, 30))  # 20:30 on Dec 1 there
    assert _due(late, TZ, hour=21) is None
    assert _due(late, TZ, frequency=Frequency.OFF) is None


def test_a_weekly_report_is_due_on_its_local_weekday_only() -> None:
    utc = ZoneInfo("UTC")
    monday_noon = datetime(2026, 12, 7, 12, 0, tzinfo=utc)  # Monday 09:00 in São Paulo
    week = Period("weekly", date(2026, 11, 30), date(2026, 12, 6))
    assert _due(monday_noon, TZ, frequency=Frequency.WEEKLY, weekday=Weekday.MONDAY) == week
    assert _due(monday_noon + timedelta(days=1), TZ, frequency=Frequency.WEEKLY, weekday=Weekday.MONDAY) is None
    assert _due(monday_noon, TZ, frequency=Frequency.WEEKLY, weekday=Weekday.SUNDAY) is None
    # 02:00 UTC on Monday is still Sunday 23:00 in São Paulo but Monday 11:00 in Tokyo.
    early = datetime(2026, 12, 7, 2, 0, tzinfo=utc)
    assert _due(early, TZ, frequency=Frequency.WEEKLY, weekday=Weekday.MONDAY) is None
    assert _due(early, TZ, frequency=Frequency.WEEKLY, weekday=Weekday.SUNDAY) == Period(
        "weekly", date(2026, 11, 29), date(2026, 12, 5)
    )
    assert _due(early, "Asia/Tokyo", frequency=Frequency.WEEKLY, weekday=Weekday.MONDAY) == week


def test_two_ticks_send_one_report_per_period(in_tenant_a: Tenant, owner_a: User) -> None:
    ReportRun.objects.filter(is_test=False).delete()  # a committed run of another test (rolled back after)
    _settings()
    mail.outbox.clear()
    morning = _this_morning()
    assert reports_tick(now=morning) == 1
    assert reports_tick(now=morning + timedelta(minutes=15)) == 0  # the next tick, or a retried task
    assert connection.schema_name == in_tenant_a.schema_name
    assert len(mail.outbox) == 1 and owner_a.email in mail.outbox[0].to
    runs = ReportRun.objects.filter(is_test=False)
    assert [(r.medium, r.status, r.period_start) for r in runs] == [
        (Medium.EMAIL, RunStatus.SENT, _local_today() - timedelta(days=1))
    ]
    assert reports_tick(now=morning + timedelta(days=1)) == 1  # the next day: the next period
    assert len(mail.outbox) == 2
    before_hour = morning + timedelta(days=2) - timedelta(hours=2)  # 07:00 local
    assert reports_tick(now=before_hour) == 0


# --- the settings page ---------------------------------------------------------------------------


def _post(client: Any, **fields: Any) -> Any:
    data = {"frequency": "weekly", "weekday": "4", "hour": "18", "email_enabled": "on", **fields}
    return client.post("/settings/reports/", data)


def test_managers_save_the_settings_and_see_errors_they_can_act_on(in_tenant_a: Tenant, owner_a: User) -> None:
    wa = Channel.objects.create(kind="whatsapp_cloud", name="WA page", phone_number="+5511900004444", credentials={})
    sms = Channel.objects.create(kind="sms_twilio", name="SMS page", phone_number="+5511900005555", credentials={})
    client = tenant_client(in_tenant_a, owner_a, lang="en")
    page = client.get("/settings/reports/").content.decode()
    assert "Scheduled reports" in page and "Send a test report now" in page
    assert "only while a conversation with that number is open" in page
    assert "WA page" in page and "SMS page" not in page
    assert 'href="/settings/reports/"' in client.get("/settings/").content.decode()  # in the navigation

    bad = _post(client, whatsapp_number="12345", whatsapp_channel=str(wa.pk)).content.decode()
    assert '<div class="error">' in bad and "12345" in bad and not ReportSettings.objects.exists()
    no_channel = _post(client, whatsapp_number="+55 11 91234-5678").content.decode()
    assert "Choose the WhatsApp channel the report is sent from." in no_channel
    nowhere = _post(client, email_enabled="").content.decode()
    assert "Choose where the report goes" in nowhere
    assert _post(client, whatsapp_number="+55 11 91234-5678", whatsapp_channel=str(sms.pk)).status_code == 200
    assert not ReportSettings.objects.exists()

    saved = _post(client, whatsapp_number="(11) 91234-5678", whatsapp_channel=str(wa.pk))
    assert saved.status_code == 302
    settings = ReportSettings.objects.get()
    assert (settings.frequency, settings.weekday, settings.hour) == ("weekly", 4, 18)
    assert (settings.whatsapp_number, settings.whatsapp_channel_id) == ("+5511912345678", wa.pk)

    pt = tenant_client(in_tenant_a, owner_a, lang="pt-br").get("/settings/reports/").content.decode()
    assert "Relatórios agendados" in pt and "Enviar um relatório de teste agora" in pt


def test_the_test_button_queues_a_task_and_agents_are_refused(
    in_tenant_a: Tenant, owner_a: User, agent_a: User, django_capture_on_commit_callbacks: Any
) -> None:
    agent = tenant_client(in_tenant_a, agent_a, lang="en")
    assert agent.get("/settings/reports/").status_code == 403
    assert _post(agent).status_code == 403
    assert agent.post("/settings/reports/test/").status_code == 403
    assert 'href="/settings/reports/"' not in agent.get("/").content.decode()
    owner = tenant_client(in_tenant_a, owner_a, lang="en")
    _settings(frequency=Frequency.OFF, email_enabled=False)
    refused = owner.post("/settings/reports/test/", follow=True).content.decode()
    assert "Choose where the report goes" in refused
    _settings(frequency=Frequency.OFF, email_enabled=True)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        done = owner.post("/settings/reports/test/", follow=True).content.decode()
    assert "A test report is on its way" in done
    assert len(callbacks) == 1  # the task is sent after commit; the worker test below runs it
