from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiToken, User
from accounts.services import api_token_create
from tenants.models import Tenant
from tests.conftest import cache_keys_delete, tenant_client
from tests.support import make_member

pytestmark = pytest.mark.django_db


def api(tenant: Tenant, key: str | None = None) -> Client:
    headers = {"HTTP_AUTHORIZATION": f"Token {key}"} if key else {}
    return Client(HTTP_HOST=f"{tenant.slug}.localhost", **headers)


def test_token_authenticates_and_records_last_use(tenant_a: Tenant, agent_a: User) -> None:
    token, raw = api_token_create(user=agent_a, tenant=tenant_a, name="ci")
    assert raw not in token.token_hash and len(token.token_hash) == 64
    response = api(tenant_a, raw).get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json() == {
        "id": agent_a.pk,
        "email": agent_a.email,
        "name": agent_a.name,
        "role": "agent",
        "tenant": "alpha",
    }
    token.refresh_from_db()
    assert token.last_used_at is not None
    bearer = Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/v1/me/")
    assert bearer.status_code == 200


def test_token_of_tenant_a_gets_401_on_tenant_b(tenant_a: Tenant, tenant_b: Tenant, agent_a: User) -> None:
    _token, raw = api_token_create(user=agent_a, tenant=tenant_a, name="a-only")
    response = api(tenant_b, raw).get("/api/v1/me/")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 401 and body["title"] and body["detail"] == "Invalid or revoked token."
    assert response["WWW-Authenticate"] == "Token"


def test_token_stops_working_when_revoked_or_membership_ends(tenant_a: Tenant, agent_a: User) -> None:
    token, raw = api_token_create(user=agent_a, tenant=tenant_a, name="temp")
    assert api(tenant_a, raw).delete(f"/api/v1/tokens/{token.pk}/").status_code == 204
    assert api(tenant_a, raw).get("/api/v1/me/").status_code == 401

    _token, raw2 = api_token_create(user=agent_a, tenant=tenant_a, name="temp2")
    agent_a.memberships.all().delete()
    assert api(tenant_a, raw2).get("/api/v1/me/").status_code == 401


def test_tampered_or_malformed_tokens_get_401(tenant_a: Tenant, agent_a: User) -> None:
    _token, raw = api_token_create(user=agent_a, tenant=tenant_a, name="x")
    assert api(tenant_a, raw[:-1] + ("a" if raw[-1] != "a" else "b")).get("/api/v1/me/").status_code == 401
    assert api(tenant_a, "nonsense").get("/api/v1/me/").status_code == 401
    assert Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION="Token a b").get("/api/v1/me/").status_code == 401


def test_no_credentials_is_401_problem_json(tenant_a: Tenant) -> None:
    response = api(tenant_a).get("/api/v1/members/")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_tokens_api_creates_lists_and_shows_key_once(tenant_a: Tenant, agent_a: User) -> None:
    _t, raw = api_token_create(user=agent_a, tenant=tenant_a, name="bootstrap")
    created = api(tenant_a, raw).post("/api/v1/tokens/", {"name": "zap"}, content_type="application/json")
    assert created.status_code == 201
    assert created.json()["key"].startswith("cp_")
    listing = api(tenant_a, raw).get("/api/v1/tokens/").json()
    assert {t["name"] for t in listing["results"]} == {"bootstrap", "zap"}
    assert all(t.get("key") is None for t in listing["results"])


def test_validation_errors_use_the_problem_shape(tenant_a: Tenant, agent_a: User) -> None:
    _t, raw = api_token_create(user=agent_a, tenant=tenant_a, name="v")
    response = api(tenant_a, raw).post("/api/v1/tokens/", {}, content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400 and "name" in body["errors"]
    assert response["Content-Type"] == "application/problem+json"
    missing = api(tenant_a, raw).get("/api/v1/members/999999/")
    assert missing.status_code == 404 and missing.json()["status"] == 404


def test_members_are_paginated(tenant_a: Tenant, agent_a: User) -> None:
    for i in range(3):
        make_member(tenant_a, f"page-{i}@alpha.test")
    _t, raw = api_token_create(user=agent_a, tenant=tenant_a, name="p")
    page = api(tenant_a, raw).get("/api/v1/members/?page_size=2").json()
    assert page["count"] >= 4 and len(page["results"]) == 2 and page["next"]


def test_session_auth_works_for_the_browser(tenant_a: Tenant, agent_a: User) -> None:
    assert tenant_client(tenant_a, agent_a).get("/api/v1/me/").status_code == 200


def test_api_is_throttled(tenant_a: Tenant, agent_a: User, settings: Any) -> None:
    from rest_framework.settings import api_settings
    from rest_framework.throttling import UserRateThrottle

    _t, raw = api_token_create(user=agent_a, tenant=tenant_a, name="t")
    original = UserRateThrottle.THROTTLE_RATES
    UserRateThrottle.THROTTLE_RATES = {**api_settings.DEFAULT_THROTTLE_RATES, "user": "3/min"}
    try:
        cache_keys_delete()
        codes = [api(tenant_a, raw).get("/api/v1/me/").status_code for _ in range(4)]
    finally:
        UserRateThrottle.THROTTLE_RATES = original
    assert codes == [200, 200, 200, 429]


def test_openapi_schema_and_docs(tenant_a: Tenant) -> None:
    schema = api(tenant_a).get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/me/" in paths and "/api/v1/tokens/" in paths
    docs = api(tenant_a).get("/api/v1/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_last_used_is_written_at_most_once_a_minute(tenant_a: Tenant, agent_a: User) -> None:
    token, raw = api_token_create(user=agent_a, tenant=tenant_a, name="busy")
    api(tenant_a, raw).get("/api/v1/me/")
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    api(tenant_a, raw).get("/api/v1/me/")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timezone.timedelta(minutes=2))
    api(tenant_a, raw).get("/api/v1/me/")
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first


def test_an_unknown_api_url_answers_in_the_error_shape(tenant_a: Tenant, agent_a: User) -> None:
    _token, raw = api_token_create(user=agent_a, tenant=tenant_a, name="404")
    for method in ("get", "post"):
        response = getattr(api(tenant_a, raw), method)("/api/v1/contacts/not-a-number.json/x/")
        assert response.status_code == 404 and response["Content-Type"] == "application/problem+json"
        assert response.json()["status"] == 404
