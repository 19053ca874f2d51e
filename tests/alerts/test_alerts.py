"""The alerts mechanism: raised through the event bus, one open alert per cause (a repeat counts),
one email per alert, closed when the cause is cleared, worded in pt-BR and English, kept per tenant."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.db import IntegrityError, connection, transaction
from django.utils import timezone, translation

from accounts.models import Role
from accounts.services import api_token_create
from alerts import kinds
from alerts.models import Alert, Resolution
from alerts.services import alert_dismiss, alert_email_send, alert_raise, alert_resolve
from tenants.models import Tenant
from tests.alerts.support import Listener, clear, raise_
from tests.conftest import tenant_client
from tests.support import make_member

pytestmark = pytest.mark.django_db


def _owner(tenant: Tenant, name: str = "dono") -> Any:
    return make_member(tenant, f"{name}-{timezone.now().timestamp()}@alpha.test", Role.OWNER)


def test_ten_raises_make_one_alert_and_one_email_then_clear_closes_it(
    in_tenant_a: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    owner = _owner(in_tenant_a)
    admin = make_member(in_tenant_a, "admin-dedup@alpha.test", Role.ADMIN)
    agent = make_member(in_tenant_a, "agent-dedup@alpha.test", Role.AGENT)
    listener = Listener(in_tenant_a.schema_name)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        for attempt in range(10):
            raise_(kinds.CHANNEL_NEEDS_RESCAN, "41", channel_id=41, name="Loja", detail=f"logout {attempt}")
    alerts = list(Alert.objects.filter(kind=kinds.CHANNEL_NEEDS_RESCAN, key="41"))
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.count == 10 and alert.is_open and alert.emailed_at is not None
    assert alert.detail["detail"] == "logout 9"  # the latest occurrence
    assert alert.first_raised_at < alert.last_seen_at
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert set(sent.to) >= {owner.email, admin.email} and agent.email not in sent.to
    assert "Loja" in sent.subject and "/channels/41/qr/" in sent.body  # tenant alpha speaks pt-BR
    assert "QR" in sent.body
    raised = [payload for name, payload in listener.received() if name == "alert.raised"]
    assert len(raised) == 1, raised
    assert raised[0]["id"] == alert.pk and raised[0]["open"] >= 1 and "Loja" in raised[0]["title"]

    listener = Listener(in_tenant_a.schema_name)  # (a listener reads once: its buffer keeps to one loop)
    with django_capture_on_commit_callbacks(execute=True):
        clear(kinds.CHANNEL_NEEDS_RESCAN, "41")
    alert.refresh_from_db()
    assert alert.resolved_at is not None and alert.resolution == Resolution.CLEARED
    counted = [payload for name, payload in listener.received() if name == "alert.count"]
    assert counted and counted[-1]["open"] == 0

    # The cause again, after it closed: a new alert (and a new email)
    with django_capture_on_commit_callbacks(execute=True):
        raise_(kinds.CHANNEL_NEEDS_RESCAN, "41", channel_id=41, name="Loja")
    assert Alert.objects.filter(kind=kinds.CHANNEL_NEEDS_RESCAN, key="41").count() == 2
    assert len(mail.outbox) == 2


def test_the_database_refuses_a_second_open_alert_of_one_cause(in_tenant_a: Tenant) -> None:
    now = timezone.now()
    Alert.objects.create(kind="x.y", key="1", first_raised_at=now, last_seen_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(kind="x.y", key="1", first_raised_at=now, last_seen_at=now)
    Alert.objects.filter(kind="x.y").update(resolved_at=now)
    Alert.objects.create(kind="x.y", key="1", first_raised_at=now, last_seen_at=now)  # closed ones are history


def test_the_email_goes_once_even_when_asked_twice(in_tenant_a: Tenant) -> None:
    _owner(in_tenant_a)
    alert, opened = alert_raise(kind=kinds.WEBHOOK_DISABLED, key="7", detail={"endpoint_id": 7, "url": "https://x"})
    assert opened
    mail.outbox.clear()
    assert alert_email_send(alert_id=alert.pk, tenant=in_tenant_a)
    assert not alert_email_send(alert_id=alert.pk, tenant=in_tenant_a)
    assert len(mail.outbox) == 1


def test_wording_in_both_languages_and_unknown_kinds() -> None:
    detail = {"number": "+5511999990000", "cause": "no_agent", "call_id": 9}
    with translation.override("en"):
        english = kinds.word(kinds.VOICE_INBOUND_FALLBACK, detail)
    with translation.override("pt-br"):
        portuguese = kinds.word(kinds.VOICE_INBOUND_FALLBACK, detail)
    assert "+5511999990000" in english.title and english.title != portuguese.title
    assert "Retell" in english.fix and "Retell" in portuguese.fix
    assert english.link == "/voice/agents/"
    with translation.override("en"):
        missing = kinds.word(kinds.CAMPAIGN_AUTO_PAUSED, {})  # fields the announcer did not send show as ?
    assert "?" in missing.title and missing.link == ""
    assert kinds.word("some.future_kind", {}).title == "some.future_kind"
    for name in kinds.KINDS:  # every kind words itself from nothing without failing
        with translation.override("pt-br"):
            assert kinds.word(name, {}).title


def test_voice_fallback_announced_by_the_voice_app_is_an_alert(
    in_tenant_a: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        raise_(kinds.VOICE_INBOUND_FALLBACK, "+5511933330000", cause="no_agent", call_id=3, number="+5511933330000")
    alert = Alert.objects.get(kind=kinds.VOICE_INBOUND_FALLBACK, key="+5511933330000", resolved_at=None)
    with translation.override("en"):
        worded = kinds.word(alert.kind, alert.detail)
    assert "+5511933330000" in worded.title and "voice agent" in worded.fix


def test_malformed_events_are_ignored(in_tenant_a: Tenant, django_capture_on_commit_callbacks: Any) -> None:
    from core import events

    before = Alert.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        events.announce(events.ALERT_RAISED, connection.schema_name, {"kind": "", "key": "1"})
        events.announce(events.ALERT_RAISED, connection.schema_name, {"kind": "a.b"})
        events.announce(events.ALERT_RAISED, connection.schema_name, {"kind": "a.b", "key": "1", "detail": ["x"]})
    assert Alert.objects.count() == before + 1
    assert Alert.objects.get(kind="a.b").detail == {}


def test_an_alert_of_one_tenant_is_never_seen_by_another(
    tenants: tuple[Tenant, Tenant], db: Any, django_capture_on_commit_callbacks: Any
) -> None:
    alpha, beta = tenants
    connection.set_tenant(alpha)
    owner_a = _owner(alpha, "iso-a")
    with django_capture_on_commit_callbacks(execute=True):
        raise_(kinds.CAMPAIGN_AUTO_PAUSED, "99", campaign_id=99, name="Segredo da Alpha")
    alert_id = Alert.objects.get(kind=kinds.CAMPAIGN_AUTO_PAUSED, key="99").pk
    connection.set_tenant(beta)
    owner_b = make_member(beta, "iso-b@beta.test", Role.OWNER)
    assert not Alert.objects.filter(kind=kinds.CAMPAIGN_AUTO_PAUSED, key="99").exists()
    page = tenant_client(beta, owner_b).get("/alerts/?state=all")
    assert page.status_code == 200 and "Segredo da Alpha" not in page.content.decode()
    _token, raw = api_token_create(user=owner_b, tenant=beta, name="iso")
    api = tenant_client(beta)
    listed = api.get("/api/v1/alerts/?state=all", HTTP_AUTHORIZATION=f"Token {raw}").json()
    assert all(item["key"] != "99" or item["kind"] != kinds.CAMPAIGN_AUTO_PAUSED for item in listed["results"])
    assert api.post(f"/api/v1/alerts/{alert_id}/resolve/", HTTP_AUTHORIZATION=f"Token {raw}").status_code in (404, 200)
    connection.set_tenant(alpha)
    assert Alert.objects.get(pk=alert_id).resolved_at is None  # beta's call touched beta's table only
    page = tenant_client(alpha, owner_a).get("/alerts/")
    assert "Segredo da Alpha" in page.content.decode()
    connection.set_schema_to_public()


def test_page_and_api_list_filter_resolve_and_dismiss(in_tenant_a: Tenant) -> None:
    owner = _owner(in_tenant_a, "page")
    agent = make_member(in_tenant_a, "agent-page@alpha.test", Role.AGENT)
    rescan, _ = alert_raise(kind=kinds.CHANNEL_NEEDS_RESCAN, key="5", detail={"channel_id": 5, "name": "Matriz"})
    hook, _ = alert_raise(kind=kinds.WEBHOOK_FAILING, key="8", detail={"endpoint_id": 8, "url": "https://crm.test/h"})
    before = Alert.objects.filter(resolved_at=None, dismissed_at=None).count() - 2  # others' committed rows
    client = tenant_client(in_tenant_a, owner, lang="en")
    html = client.get("/alerts/").content.decode()
    assert "Channel Matriz needs a new QR scan" in html and "crm.test" in html
    assert f'data-testid="alert-count">{before + 2}<' in html  # the bell
    html = client.get(f"/alerts/?kind={kinds.WEBHOOK_FAILING}").content.decode()
    assert "Matriz" not in html and "crm.test" in html

    # An agent sees them, but may not close them
    agent_client = tenant_client(in_tenant_a, agent, lang="en")
    assert agent_client.get("/alerts/").status_code == 200
    assert agent_client.post(f"/alerts/{rescan.pk}/resolve/").status_code == 403
    with pytest.raises(Exception, match="may not"):
        alert_resolve(actor=agent.memberships.get(tenant=in_tenant_a), alert=rescan)

    assert client.post(f"/alerts/{hook.pk}/dismiss/").status_code == 302
    hook.refresh_from_db()
    assert hook.dismissed_at is not None and hook.is_open
    assert f'data-testid="alert-count">{before + 1}<' in client.get("/alerts/").content.decode()
    assert client.post(f"/alerts/{rescan.pk}/resolve/").status_code == 302
    rescan.refresh_from_db()
    assert rescan.resolution == Resolution.RESOLVED and rescan.resolved_by_id == owner.pk
    html = client.get("/alerts/?state=resolved").content.decode()
    assert "Matriz" in html and "Marked resolved" in html

    # API: cursor pages, words in the workspace's language (alpha: pt-BR), resolve refuses a closed one
    _token, raw = api_token_create(user=owner, tenant=in_tenant_a, name="alerts")
    api = tenant_client(in_tenant_a)
    auth = {"HTTP_AUTHORIZATION": f"Token {raw}"}
    listed = api.get("/api/v1/alerts/?state=all&limit=1", **auth).json()
    assert {"results", "next", "previous"} <= set(listed)
    found = {item["kind"]: item for item in listed["results"]}
    assert found
    item = api.get(f"/api/v1/alerts/{hook.pk}/", **auth).json()
    assert item["title"] == "O endpoint de webhook https://crm.test/h está falhando"
    assert item["link"] == "/settings/webhooks/8/"
    assert item["is_open"] and item["dismissed_at"]
    assert api.post(f"/api/v1/alerts/{hook.pk}/resolve/", **auth).json()["resolution"] == "resolved"
    assert api.post(f"/api/v1/alerts/{hook.pk}/resolve/", **auth).status_code == 400
    _token, agent_raw = api_token_create(user=agent, tenant=in_tenant_a, name="alerts")
    agent_auth = {"HTTP_AUTHORIZATION": f"Token {agent_raw}"}
    assert api.get("/api/v1/alerts/", **agent_auth).status_code == 200
    assert api.post(f"/api/v1/alerts/{hook.pk}/dismiss/", **agent_auth).status_code == 403


def test_dismissed_alert_still_deduplicates(in_tenant_a: Tenant) -> None:
    owner = _owner(in_tenant_a, "dismiss")
    alert, _ = alert_raise(kind=kinds.TEMPLATE_REJECTED, key="t1", detail={"name": "promo"})
    alert_dismiss(actor=owner.memberships.get(tenant=in_tenant_a), alert=alert, user=owner)
    again, opened = alert_raise(kind=kinds.TEMPLATE_REJECTED, key="t1", detail={"name": "promo"})
    assert not opened and again.pk == alert.pk and again.count == 2 and again.dismissed_at is not None
