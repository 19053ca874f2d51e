from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from accounts.models import User
from crm.models import Contact, CustomField, Segment, Tag
from crm.services import contact_get_or_create
from tenants.models import Tenant
from tests.conftest import tenant_client

pytestmark = pytest.mark.django_db


def test_contacts_table_search_paginates_and_renders(in_tenant_a: Any, tenant_a: Tenant, agent_a: User) -> None:
    for i in range(60):
        contact_get_or_create(phone=f"+55119710{i:05d}", name=f"Pessoa {i:02d}")
    client = tenant_client(tenant_a, agent_a, lang="en")
    first = client.get("/contacts/").content.decode()
    assert "60 contacts" in first or "contacts" in first
    assert "Page 1 of 2" in first
    found = client.get("/contacts/?q=Pessoa 07").content.decode()
    assert "Pessoa 07" in found and "Pessoa 08" not in found


def test_bulk_tag_selection_and_all_matching_then_segment_and_delete(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User
) -> None:
    ids = [contact_get_or_create(phone=f"+55119720{i:05d}", name=f"Lead {i}").pk for i in range(5)]
    contact_get_or_create(phone="+5511972099999", name="Outro")
    client = tenant_client(tenant_a, owner_a)
    client.post("/contacts/bulk/", {"action": "tag", "tag_name": "quente", "ids": ids[:2], "filter": ""})
    tag = Tag.objects.get(name="quente")
    assert set(tag.contacts.values_list("pk", flat=True)) == set(ids[:2])
    client.post(
        "/contacts/bulk/", {"action": "tag", "tag_name": "leads", "scope": "all", "filter": urlencode({"q": "Lead"})}
    )
    assert Tag.objects.get(name="leads").contacts.count() == 5
    client.post("/contacts/bulk/", {"action": "segment", "segment_name": "Leads", "filter": urlencode({"q": "Lead"})})
    assert Segment.objects.get(name="Leads").filters["q"] == "Lead"
    client.post("/contacts/bulk/", {"action": "untag", "tag_name": "quente", "scope": "all", "filter": ""})
    assert tag.contacts.count() == 0
    client.post("/contacts/bulk/", {"action": "delete", "scope": "all", "filter": urlencode({"q": "Lead"})})
    assert not Contact.objects.filter(pk__in=ids).exists()
    assert Contact.objects.filter(name="Outro").exists()


def test_contact_page_edits_fields_with_validation(in_tenant_a: Any, tenant_a: Tenant, agent_a: User) -> None:
    CustomField.objects.create(key="birthday", label="Aniversário", kind="date")
    CustomField.objects.create(key="vip", label="VIP", kind="boolean")
    contact = contact_get_or_create(phone="+5511973000001", name="Gil")
    client = tenant_client(tenant_a, agent_a, lang="en")
    assert client.get(f"/contacts/{contact.pk}/").status_code == 200
    bad = client.post(f"/contacts/{contact.pk}/", {"name": "Gil", "cf_birthday": "31/02/2020", "cf_vip": "true"})
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.content.decode()
    ok = client.post(f"/contacts/{contact.pk}/", {"name": "Gilberto", "cf_birthday": "1990-05-20", "cf_vip": "true"})
    assert ok.status_code == 302
    contact.refresh_from_db()
    assert contact.name == "Gilberto" and contact.custom_fields == {"birthday": "1990-05-20", "vip": True}


def test_custom_fields_page_and_export(in_tenant_a: Any, tenant_a: Tenant, owner_a: User) -> None:
    client = tenant_client(tenant_a, owner_a)
    created = client.post(
        "/contacts/fields/", {"label": "Plano", "key": "plano", "kind": "choice", "choices_text": "basic, gold"}
    )
    assert created.status_code == 302
    assert CustomField.objects.get(key="plano").choices == ["basic", "gold"]
    contact_get_or_create(phone="+5511974000001", name="Hana")
    export = client.get("/contacts/export/?q=Hana")
    assert "Hana" in b"".join(export.streaming_content).decode()


def test_contacts_filter_by_custom_field_on_the_page(in_tenant_a: Any, tenant_a: Tenant, agent_a: User) -> None:
    CustomField.objects.create(key="cidade", label="Cidade", kind="text")
    a = contact_get_or_create(phone="+5511975000001", name="Campineiro")
    a.custom_fields = {"cidade": "Campinas"}
    a.save()
    contact_get_or_create(phone="+5511975000002", name="Santista")
    page = tenant_client(tenant_a, agent_a).get("/contacts/?field_key=cidade&field_value=Campinas").content.decode()
    assert "Campineiro" in page and "Santista" not in page


def test_contacts_filter_by_channel(
    in_tenant_a: Any, tenant_a: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    from tests.messaging import open_conversation

    talked = open_conversation(channels["sms"], "+5511975100001").contact
    talked.name = "Falou por SMS"
    talked.save()
    contact_get_or_create(phone="+5511975100002", name="Nunca falou")
    client = tenant_client(tenant_a, agent_a)
    page = client.get("/contacts/").content.decode()
    assert 'name="channel"' in page  # the inbox adds its channels to the filters
    filtered = client.get(f"/contacts/?channel={channels['sms']}").content.decode()
    assert "Falou por SMS" in filtered and "Nunca falou" not in filtered


def test_contact_page_refuses_a_number_that_cannot_exist(in_tenant_a: Any, tenant_a: Tenant, agent_a: User) -> None:
    contact = contact_get_or_create(phone="+5511973000002", name="Iara")
    client = tenant_client(tenant_a, agent_a, lang="en")
    bad = client.post(f"/contacts/{contact.pk}/", {"phone": "(20) 98765-4321", "name": "Iara"})
    assert bad.status_code == 400 and "area code 20 does not exist in Brazil" in bad.content.decode()
    service = client.post(f"/contacts/{contact.pk}/", {"phone": "0300 123 4567", "name": "Iara"})
    assert service.status_code == 400 and "service number" in service.content.decode()
    contact.refresh_from_db()
    assert contact.phone == "+5511973000002"
    ok = client.post(f"/contacts/{contact.pk}/", {"phone": "(11) 97300-0003", "name": "Iara"})
    assert ok.status_code == 302
    contact.refresh_from_db()
    assert contact.phone == "+5511973000003"
