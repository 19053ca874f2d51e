from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from accounts.services import api_token_create
from emulators.meta import MetaEmulator
from inbox.models import Direction, Message
from tenants.models import Tenant
from tests.messaging import open_conversation

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(in_tenant_a: Any, tenant_a: Tenant, agent_a: User) -> Client:
    _token, raw = api_token_create(user=agent_a, tenant=tenant_a, name="inbox")
    return Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {raw}")


def test_conversations_messages_send_assign_status_notes(
    api: Client, agent_a: User, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    conversation = open_conversation(channels["whatsapp"], "+5511989990001")
    listing = api.get("/api/v1/conversations/?q=89990001").json()
    assert [c["id"] for c in listing["results"]] == [conversation.pk]
    sent = api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"body": "Olá pela API", "idempotency_key": "api-1"},
        content_type="application/json",
    )
    assert sent.status_code == 201 and sent.json()["status"] == "queued"
    again = api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"body": "Olá pela API", "idempotency_key": "api-1"},
        content_type="application/json",
    )
    assert again.status_code == 200 and again.json()["id"] == sent.json()["id"]  # idempotent
    assert api.get(f"/api/v1/conversations/{conversation.pk}/messages/").json()["results"][-1]["body"] == "Olá pela API"
    assigned = api.post(
        f"/api/v1/conversations/{conversation.pk}/assign/", {"assignee": agent_a.pk}, content_type="application/json"
    )
    assert assigned.json()["assignee"] == agent_a.pk
    assert (
        api.post(
            f"/api/v1/conversations/{conversation.pk}/assign/", {"assignee": 999999}, content_type="application/json"
        ).status_code
        == 400
    )
    resolved = api.post(
        f"/api/v1/conversations/{conversation.pk}/status/", {"status": "resolved"}, content_type="application/json"
    )
    assert resolved.json()["status"] == "resolved"
    note = api.post(
        f"/api/v1/conversations/{conversation.pk}/notes/", {"body": "ligar amanhã"}, content_type="application/json"
    )
    assert note.status_code == 201 and Message.objects.get(pk=note.json()["id"]).direction == Direction.NOTE
    mine = api.get("/api/v1/conversations/?view=mine").json()["results"]
    assert [c["id"] for c in mine] == [conversation.pk]


def test_send_errors_are_problem_json(api: Client, channels: dict[str, int]) -> None:
    closed = open_conversation(channels["whatsapp"], "+5511989990002", window_open=False)
    refused = api.post(f"/api/v1/conversations/{closed.pk}/messages/", {"body": "oi"}, content_type="application/json")
    assert refused.status_code == 400 and refused["Content-Type"] == "application/problem+json"
    assert refused.json()["errors"]["code"] == "window_closed"


def test_saved_replies_api(api: Client, tenant_a: Tenant, owner_a: User) -> None:
    _token, raw = api_token_create(user=owner_a, tenant=tenant_a, name="inbox-manager")
    manager = Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {raw}")
    created = manager.post(
        "/api/v1/saved-replies/",
        {"shortcut": "horario", "title": "Horário", "body": "Abrimos às 9h"},
        content_type="application/json",
    )
    assert created.status_code == 201
    assert api.get("/api/v1/saved-replies/").json()["results"][0]["shortcut"] == "horario"


def test_openapi_lists_the_inbox_and_crm(api: Client) -> None:
    paths = api.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    for path in (
        "/api/v1/conversations/",
        "/api/v1/conversations/{id}/messages/",
        "/api/v1/contacts/",
        "/api/v1/contacts/{id}/merge/",
        "/api/v1/tags/",
        "/api/v1/segments/",
        "/api/v1/custom-fields/",
    ):
        assert path in paths, path


def test_the_idempotency_key_header_answers_the_same_message_for_the_same_body(
    api: Client, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    conversation = open_conversation(channels["whatsapp"], "+5511989990002")
    url = f"/api/v1/conversations/{conversation.pk}/messages/"
    first = api.post(url, {"body": "Pedido confirmado"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="ord-77")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    replay = api.post(
        url, {"body": "Pedido confirmado"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="ord-77"
    )
    assert replay.status_code == 200 and replay["Idempotent-Replayed"] == "true"
    assert replay.json()["id"] == first.json()["id"]
    other = api.post(url, {"body": "Pedido cancelado"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="ord-77")
    assert other.status_code == 422 and other["Content-Type"] == "application/problem+json"
    assert "Idempotency-Key" in other.json()["detail"]
    assert Message.objects.filter(conversation=conversation, direction=Direction.OUTBOUND).count() == 1
    fresh = api.post(url, {"body": "Pedido cancelado"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="ord-78")
    assert fresh.status_code == 201 and fresh.json()["id"] != first.json()["id"]
    too_long = api.post(url, {"body": "x"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k" * 101)
    assert too_long.status_code == 400 and "Idempotency-Key" in too_long.json()["errors"]
    # a key made in another conversation names nothing here (and reveals nothing)
    elsewhere = open_conversation(channels["whatsapp"], "+5511989990003")
    crossed = api.post(
        f"/api/v1/conversations/{elsewhere.pk}/messages/",
        {"body": "Pedido confirmado"},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="ord-77",
    )
    assert crossed.status_code == 400 and Message.objects.filter(conversation=elsewhere).count() == 0
