from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from accounts.services import api_token_create
from crm.models import ConsentStatus, Contact, CustomField, Segment, Tag
from crm.services import consent_record, contact_get_or_create
from inbox.models import Conversation, Direction, Message, MessageStatus
from tenants.models import Tenant
from tests.messaging import open_conversation

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(in_tenant_a: Any, tenant_a: Tenant, agent_a: User) -> Client:
    _token, raw = api_token_create(user=agent_a, tenant=tenant_a, name="crm")
    return Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {raw}")


@pytest.fixture
def manager_api(in_tenant_a: Any, tenant_a: Tenant, owner_a: User) -> Client:
    """Export and erase are a manager's (core.roles); tests/accounts/test_roles.py walks who may."""
    _token, raw = api_token_create(user=owner_a, tenant=tenant_a, name="crm-manager")
    return Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {raw}")


def test_create_contact_normalizes_phone_validates_custom_fields(api: Client) -> None:
    CustomField.objects.create(key="city", label="Cidade", kind="text")
    CustomField.objects.create(key="spent", label="Gasto", kind="number")
    CustomField.objects.create(key="plan", label="Plano", kind="choice", choices=["basic", "gold"])
    vip = Tag.objects.create(name="VIP")
    created = api.post(
        "/api/v1/contacts/",
        {
            "phone": "(11) 98888-1111",
            "name": "Carla",
            "tags": [vip.pk],
            "custom_fields": {"city": "Campinas", "spent": "10,50", "plan": "gold"},
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["phone"] == "+5511988881111" and body["tags"] == [vip.pk]
    assert body["custom_fields"] == {"city": "Campinas", "spent": 10.5, "plan": "gold"}
    bad = api.patch(
        f"/api/v1/contacts/{body['id']}/",
        {"custom_fields": {"plan": "platinum", "nope": 1}},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"plan", "nope"}


def test_list_filters_search_tag_optout_segment_and_field(api: Client, channels: dict[str, int]) -> None:
    vip = Tag.objects.create(name="VIP")
    CustomField.objects.create(key="city", label="Cidade", kind="text")
    ana = contact_get_or_create(phone="+5511970000001", name="Ana Souza")
    ana.tags.add(vip)
    ana.custom_fields = {"city": "Campinas"}
    ana.save()
    bruno = contact_get_or_create(phone="+5511970000002", name="Bruno")
    consent_record(contact=bruno, medium="sms", status=ConsentStatus.OPTED_OUT, source="keyword:STOP")
    open_conversation(channels["sms"], "+5511970000002")

    def ids(query: str) -> set[int]:
        return {c["id"] for c in api.get(f"/api/v1/contacts/?page_size=500&{query}").json()["results"]}

    assert ana.pk in ids("q=souza") and bruno.pk not in ids("q=souza")
    assert ids("q=0000002") >= {bruno.pk}
    assert ids(f"tag={vip.pk}") == {ana.pk}
    assert bruno.pk in ids("opted_out=sms") and ana.pk not in ids("opted_out=sms")
    assert bruno.pk not in ids("opted_out=none")
    assert bruno.pk in ids(f"channel={channels['sms']}")
    assert ids("field.city=Campinas") == {ana.pk}
    segment = Segment.objects.create(name="VIPs", filters={"tags": [vip.pk]})
    assert ids(f"segment={segment.pk}") == {ana.pk}
    assert {c["id"] for c in api.get(f"/api/v1/segments/{segment.pk}/contacts/").json()["results"]} == {ana.pk}
    consent = api.get(f"/api/v1/contacts/{bruno.pk}/").json()["consent"]
    assert consent["sms"]["status"] == "opted_out" and consent["sms"]["source"] == "keyword:STOP"


def test_export_csv_of_a_filter(manager_api: Client) -> None:
    api = manager_api
    vip = Tag.objects.create(name="VIP")
    for i in range(3):
        contact_get_or_create(phone=f"+55119700001{i:02d}", name=f"Cliente {i}").tags.add(vip)
    contact_get_or_create(phone="+5511970000199", name="Fora")
    response = api.get(f"/api/v1/contacts/export/?tag={vip.pk}")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode().lstrip("\ufeff"))))
    assert rows[0][:4] == ["phone", "name", "email", "tags"]
    assert sorted(r[1] for r in rows[1:]) == ["Cliente 0", "Cliente 1", "Cliente 2"]
    assert all(r[3] == "VIP" for r in rows[1:])


def test_merge_two_duplicates(api: Client, channels: dict[str, int]) -> None:
    primary = contact_get_or_create(phone="+5511970000301", name="Dani")
    duplicate = Contact.objects.create(phone="+5511970000302", email="dani@example.com")
    duplicate.tags.add(Tag.objects.create(name="lead"))
    a = open_conversation(channels["whatsapp"], primary.phone)
    b = open_conversation(channels["whatsapp"], duplicate.phone)
    Message.objects.create(
        conversation=b,
        channel_id=channels["whatsapp"],
        direction=Direction.INBOUND,
        body="oi",
        status=MessageStatus.RECEIVED,
        idempotency_key="merge-1",
    )
    open_conversation(channels["sms"], duplicate.phone)
    merged = api.post(
        f"/api/v1/contacts/{primary.pk}/merge/", {"duplicate": duplicate.pk}, content_type="application/json"
    )
    assert merged.status_code == 200
    assert merged.json()["email"] == "dani@example.com"
    assert not Contact.objects.filter(pk=duplicate.pk).exists()
    assert Message.objects.get(idempotency_key="merge-1").conversation_id == a.pk
    assert Conversation.objects.filter(contact=primary).count() == 2
    assert list(primary.tags.values_list("name", flat=True)) == ["lead"]


def test_erase_personal_data(manager_api: Client, channels: dict[str, int]) -> None:
    api = manager_api
    contact = contact_get_or_create(phone="+5511970000401", name="Eva", wa_profile_name="Eva S")
    conversation = open_conversation(channels["whatsapp"], contact.phone)
    Message.objects.create(
        conversation=conversation,
        channel_id=channels["whatsapp"],
        direction=Direction.INBOUND,
        body="meu CPF é 123",
        status=MessageStatus.RECEIVED,
        idempotency_key="erase-1",
    )
    assert api.post(f"/api/v1/contacts/{contact.pk}/erase/").status_code == 204
    contact.refresh_from_db()
    assert (contact.name, contact.wa_profile_name, contact.phone) == ("", "", f"erased:{contact.pk}")
    assert contact.erased_at is not None
    assert Message.objects.get(idempotency_key="erase-1").body == ""
    assert api.get(f"/api/v1/contacts/{contact.pk}/").status_code == 404  # gone from every list


@pytest.mark.parametrize(
    ("phone", "reason"),
    [
        ("(20) 98765-4321", "o DDD 20 não existe no Brasil"),  # the tenant's language, pt-BR
        ("98765-4321", "não tem DDD"),
        ("0800 123 4567", "número de serviço"),
        ("5.51198765432E+12", "notação científica"),
    ],
)
def test_api_refuses_a_number_that_cannot_exist_with_the_field_error(api: Client, phone: str, reason: str) -> None:
    refused = api.post("/api/v1/contacts/", {"phone": phone, "name": "X"}, content_type="application/json")
    assert refused.status_code == 400
    assert reason in refused.json()["errors"]["phone"][0]
    assert not Contact.objects.filter(name="X").exists()
    contact = contact_get_or_create(phone="+5511970000501", name="Y")
    edit = api.patch(f"/api/v1/contacts/{contact.pk}/", {"phone": phone}, content_type="application/json")
    assert edit.status_code == 400 and reason in edit.json()["errors"]["phone"][0]
    contact.refresh_from_db()
    assert contact.phone == "+5511970000501"
