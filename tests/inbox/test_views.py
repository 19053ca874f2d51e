from __future__ import annotations

import re
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import User
from emulators.meta import App, MetaEmulator, PhoneNumber
from inbox.models import Channel, Conversation, Message, MessageStatus
from intake.models import ChannelRoute
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.messaging import open_conversation
from whatsapp.models import MessageTemplate

pytestmark = pytest.mark.django_db


def test_channels_page_and_connecting_numbers(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    meta_emulator.numbers["100000000000002"] = PhoneNumber("200000000000002", "+55 11 97777-0000", "EAAG-secret")
    meta_emulator.apps["300000000000092"] = App(secret="own-secret", webhook_url="", tokens=frozenset({"EAAG-secret"}))
    client = tenant_client(tenant_a, owner_a, lang="en")
    page = client.get("/channels/")
    assert page.status_code == 200 and "WhatsApp Alpha" in page.content.decode()
    form = {
        "wa-name": "Vendas",
        "wa-phone_number": "(11) 97777-0000",
        "wa-phone_number_id": "100000000000002",
        "wa-waba_id": "200000000000002",
        "wa-access_token": "EAAG-secret",
    }
    # typing ids and a token is only for a business's own Meta app (the platform's app: Embedded Signup)
    platform = client.post("/channels/add/whatsapp_cloud/", form)
    assert platform.status_code == 400 and "This field is required" in platform.content.decode()
    assert '<details id="wa-own-app" open>' in platform.content.decode()  # the errors are shown, not folded
    own_app = {"wa-app_id": "300000000000092", "wa-app_secret": "own-secret", "wa-verify_token": "vt"}
    response = client.post("/channels/add/whatsapp_cloud/", {**form, **own_app})
    assert response.status_code == 302
    channel = Channel.objects.get(phone_number_id="100000000000002")
    assert channel.phone_number == "+5511977770000"
    assert (channel.onboarding, channel.coexistence) == ("manual", False)
    assert channel.credentials["access_token"] == "EAAG-secret"
    assert channel.credentials["app_secret"] == "own-secret" and channel.credentials["webhook_key"]
    shown = client.get("/channels/").content.decode()
    assert "EAAG-secret" not in shown and "own-secret" not in shown  # never shown back
    route = ChannelRoute.objects.get(kind="whatsapp_cloud", external_id="100000000000002")
    assert (route.tenant_id, route.channel_id) == (tenant_a.pk, channel.pk)
    assert ChannelRoute.objects.filter(kind="whatsapp_waba", external_id="200000000000002").exists()

    bad = client.post(
        "/channels/add/sms_twilio/",
        {"sms-name": "x", "sms-phone_number": "12", "sms-account_sid": "AC", "sms-auth_token": "t"},
    )
    assert bad.status_code == 400 and "not a valid phone number" in bad.content.decode()

    client.post(f"/channels/{channel.pk}/remove/")
    assert not ChannelRoute.objects.filter(external_id="100000000000002").exists()
    del meta_emulator.numbers["100000000000002"]
    del meta_emulator.apps["300000000000092"]


def test_agents_cannot_connect_channels(in_tenant_a: Any, tenant_a: Tenant, agent_a: User) -> None:
    client = tenant_client(tenant_a, agent_a)
    assert client.get("/channels/").status_code == 200
    assert client.post("/channels/add/sms_twilio/", {}).status_code == 403


def test_start_a_conversation_and_reply(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    client = tenant_client(tenant_a, agent_a, lang="en")
    opened = client.post("/conversations/", {"channel": channels["sms"], "phone": "11 98765-1234", "name": "Bia"})
    assert opened.status_code == 302
    conversation = Conversation.objects.get(contact__phone="+5511987651234", channel_id=channels["sms"])
    assert client.get("/conversations/").status_code == 200
    sent = client.post(f"/conversations/{conversation.pk}/", {"body": "Olá Bia!"})
    assert sent.status_code == 302
    message = Message.objects.get(conversation=conversation)
    assert (message.body, message.status, message.author_id) == ("Olá Bia!", MessageStatus.QUEUED, agent_a.pk)
    row = client.get(f"/conversations/{conversation.pk}/messages/{message.pk}/")
    assert 'data-status="queued"' in row.content.decode()


def test_closed_window_offers_templates_and_sends_one(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    conversation = open_conversation(channels["whatsapp"], "+5511911112222", window_open=False)
    client = tenant_client(tenant_a, agent_a, lang="en")
    page = client.get(f"/conversations/{conversation.pk}/").content.decode()
    assert "window to reply freely is closed" in page and "Send a template" in page
    refused = client.post(f"/conversations/{conversation.pk}/", {"body": "oi"})
    assert refused.status_code == 400 and "template" in refused.content.decode()
    template = MessageTemplate.objects.create(
        waba_id="200000000000001",
        template_id="777",
        name="welcome_back",
        language="pt_BR",
        category="MARKETING",
        status="APPROVED",
        components=[{"type": "BODY", "text": "Olá {{1}}, temos novidades!"}],
    )
    chooser = client.get(f"/conversations/{conversation.pk}/template/")
    assert "welcome_back" in chooser.content.decode()
    sent = client.post(f"/conversations/{conversation.pk}/template/", {"template": template.pk, "var1": "Ana"})
    assert sent.status_code == 302
    message = Message.objects.get(conversation=conversation)
    assert (message.type, message.template_name, message.template_variables) == (
        "template",
        "welcome_back",
        {"body": ["Ana"]},
    )


def test_templates_page_creates_and_syncs(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    client = tenant_client(tenant_a, owner_a, lang="en")
    url = f"/channels/{channels['whatsapp']}/templates/"
    assert client.get(url).status_code == 200
    created = client.post(
        url,
        {
            "name": "pickup_ready",
            "category": "UTILITY",
            "language": "pt_BR",
            "body": "Olá {{1}}, pode retirar.",
            "quick_replies": "Ok, Obrigado",
        },
    )
    assert created.status_code == 302
    assert MessageTemplate.objects.get(name="pickup_ready").status == "PENDING"
    synced = client.post(f"{url}sync/", follow=True)
    assert re.search(r"\d+ templates synced", synced.content.decode())


def test_opening_a_conversation_clears_unread(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    conversation = open_conversation(channels["sms"], "+5511933334444")
    Conversation.objects.filter(pk=conversation.pk).update(unread_count=3, last_message_at=timezone.now())
    tenant_client(tenant_a, agent_a).get(f"/conversations/{conversation.pk}/")
    conversation.refresh_from_db()
    assert conversation.unread_count == 0
