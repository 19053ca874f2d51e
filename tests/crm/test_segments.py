"""A segment may build on another segment, never on itself: refused in the service, so page and API agree."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import translation

from accounts.models import User
from accounts.services import api_token_create
from crm.models import Segment, Tag
from crm.selectors import contacts_filter
from crm.services import contact_get_or_create, segment_save
from tenants.models import Tenant
from tests.conftest import tenant_client

pytestmark = pytest.mark.django_db


def test_a_segment_that_includes_itself_directly_or_through_a_chain_is_refused(in_tenant_a: Any) -> None:
    vip = Tag.objects.create(name="VIP")
    base = segment_save(name="VIP", filters={"tags": [vip.pk]})
    middle = segment_save(name="VIP em Campinas", filters={"segment": base.pk, "fields": {}})
    top = segment_save(name="VIP em Campinas sem opt-out", filters={"segment": str(middle.pk), "opted_out": "none"})
    with translation.override("en"):
        with pytest.raises(ValidationError) as itself:
            segment_save(segment=base, name="VIP", filters={"segment": base.pk})
        assert "cannot include itself" in itself.value.message_dict["filters"][0]
        with pytest.raises(ValidationError) as chain:
            segment_save(segment=base, name="VIP", filters={"tags": [vip.pk], "segment": top.pk})
        assert "cannot include itself" in chain.value.message_dict["filters"][0]
        with pytest.raises(ValidationError) as missing:
            segment_save(name="Nada", filters={"segment": 999_999})
        assert "There is no segment 999999" in missing.value.message_dict["filters"][0]
    base.refresh_from_db()
    assert base.filters == {"tags": [vip.pk]}  # nothing was saved


def test_a_loop_saved_before_the_check_matches_nobody_and_does_not_recurse(in_tenant_a: Any) -> None:
    contact_get_or_create(phone="+5511976100001", name="Alguém")
    a = Segment.objects.create(name="A", filters={})
    b = Segment.objects.create(name="B", filters={"segment": a.pk})
    Segment.objects.filter(pk=a.pk).update(filters={"segment": b.pk})  # as an old release could store it
    assert list(contacts_filter({"segment": a.pk})) == []
    assert list(contacts_filter({"segment": 999_999})) == []  # a segment that is gone: nobody, not everybody


def test_api_refuses_a_self_referencing_segment_with_a_field_error(
    in_tenant_a: Any, tenant_a: Tenant, owner_a: User
) -> None:
    _token, raw = api_token_create(user=owner_a, tenant=tenant_a, name="segments")
    api = Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {raw}")
    created = api.post("/api/v1/segments/", {"name": "Base", "filters": {"q": "a"}}, content_type="application/json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    on_itself = api.patch(f"/api/v1/segments/{pk}/", {"filters": {"segment": pk}}, content_type="application/json")
    assert on_itself.status_code == 400 and "filters" in on_itself.json()["errors"]
    child = api.post(
        "/api/v1/segments/", {"name": "Filho", "filters": {"segment": pk}}, content_type="application/json"
    )
    assert child.status_code == 201
    loop = api.put(
        f"/api/v1/segments/{pk}/",
        {"name": "Base", "filters": {"segment": child.json()["id"]}},
        content_type="application/json",
    )
    assert loop.status_code == 400 and "filters" in loop.json()["errors"]
    assert Segment.objects.get(pk=pk).filters == {"q": "a"}


def test_page_refuses_saving_a_segment_over_itself(in_tenant_a: Any, tenant_a: Tenant, owner_a: User) -> None:
    client = tenant_client(tenant_a, owner_a, lang="en")
    leads = segment_save(name="Leads", filters={"q": "Lead"})
    # "Save as segment" while the list is filtered by the very segment being overwritten.
    response = client.post(
        "/contacts/bulk/",
        {"action": "segment", "segment_name": "Leads", "filter": urlencode({"segment": leads.pk})},
        follow=True,
    )
    assert "cannot include itself" in response.content.decode()
    leads.refresh_from_db()
    assert leads.filters == {"q": "Lead"}
