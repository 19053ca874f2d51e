"""'Agents see only their own and unassigned conversations' holds wherever a message can be read: the
contact page and its timeline, the conversation page's links, template send, media, idempotency-key
lookups in the API, merges, and the live socket (events only to those who may see the conversation;
a removed member's socket is closed)."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test import Client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from accounts.models import Membership, Role, User
from accounts.services import api_token_create, membership_remove, membership_set_role
from crm.models import Contact
from inbox.models import Conversation, Direction, InboxSettings, Message, MessageStatus
from inbox.services import conversation_assign, note_add
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.messaging import open_conversation
from tests.support import http_client, http_login, make_member

SECRET = "segredo-da-carla"


@dataclass
class Scene:
    viewer: User  # an agent kept to their own
    assignee: User  # the agent the hidden conversation belongs to
    owner: User
    carla: Contact
    hidden: Conversation  # Carla on WhatsApp, assigned to `assignee`
    open_one: Conversation  # Carla on SMS, unassigned
    secret: Message


def _api(tenant: Tenant, user: User) -> Client:
    _token, raw = api_token_create(user=user, tenant=tenant, name="visibility")
    return Client(HTTP_HOST=f"{tenant.slug}.localhost", HTTP_AUTHORIZATION=f"Token {raw}")


def _message(conversation: Conversation, body: str, **extra: Any) -> Message:
    return Message.objects.create(
        conversation=conversation,
        channel=conversation.channel,
        direction=Direction.INBOUND,
        body=body,
        status=MessageStatus.RECEIVED,
        idempotency_key=extra.pop("idempotency_key", uuid.uuid4().hex),
        **extra,
    )


@pytest.fixture
def scene(in_tenant_a: Tenant, channels: dict[str, int]) -> Scene:
    InboxSettings.objects.update_or_create(pk=1, defaults={"agents_see_all": False})
    viewer = make_member(in_tenant_a, "viewer@alpha.test", Role.AGENT)
    assignee = make_member(in_tenant_a, "assignee@alpha.test", Role.AGENT)
    owner = make_member(in_tenant_a, "boss@alpha.test", Role.OWNER)
    hidden = open_conversation(channels["whatsapp"], "+5511976550001")
    conversation_assign(conversation=hidden, assignee=assignee)
    open_one = open_conversation(channels["sms"], "+5511976550001")
    secret = _message(hidden, SECRET, idempotency_key="client-key-1")
    secret.media.save("recibo.txt", ContentFile(b"recibo secreto"), save=True)
    _message(open_one, "oi-publico")
    carla = hidden.contact
    carla.name = "Carla"
    carla.save()
    return Scene(viewer, assignee, owner, carla, hidden, open_one, secret)


@pytest.mark.django_db
def test_contact_page_and_timeline_show_only_visible_conversations(scene: Scene, tenant_a: Tenant) -> None:
    page = tenant_client(tenant_a, scene.viewer).get(f"/contacts/{scene.carla.pk}/").content.decode()
    assert "oi-publico" in page
    assert SECRET not in page and f"/conversations/{scene.hidden.pk}/" not in page
    for allowed in (scene.assignee, scene.owner):
        page = tenant_client(tenant_a, allowed).get(f"/contacts/{scene.carla.pk}/").content.decode()
        assert SECRET in page and f"/conversations/{scene.hidden.pk}/" in page
    # The visible conversation's page does not link the hidden one either.
    inbox = tenant_client(tenant_a, scene.viewer).get(f"/conversations/{scene.open_one.pk}/").content.decode()
    assert f"/conversations/{scene.hidden.pk}/" not in inbox


@pytest.mark.django_db
def test_template_send_and_media_follow_the_conversation(scene: Scene, tenant_a: Tenant) -> None:
    viewer, assignee = tenant_client(tenant_a, scene.viewer), tenant_client(tenant_a, scene.assignee)
    assert viewer.get(f"/conversations/{scene.hidden.pk}/template/").status_code == 404
    assert viewer.post(f"/conversations/{scene.hidden.pk}/template/", {"template": 1}).status_code == 404
    assert assignee.get(f"/conversations/{scene.hidden.pk}/template/").status_code == 200
    url = scene.secret.media.url
    assert viewer.get(url).status_code == 404
    assert b"".join(assignee.get(url).streaming_content) == b"recibo secreto"
    assert b"".join(tenant_client(tenant_a, scene.owner).get(url).streaming_content) == b"recibo secreto"


@pytest.mark.django_db
def test_an_idempotency_key_of_another_conversation_reveals_nothing(scene: Scene, tenant_a: Tenant) -> None:
    response = _api(tenant_a, scene.viewer).post(
        f"/api/v1/conversations/{scene.open_one.pk}/messages/",
        {"body": "oi", "idempotency_key": "client-key-1"},
        content_type="application/json",
    )
    assert response.status_code == 400 and SECRET not in response.content.decode()
    assert response.json()["errors"]["code"] == "idempotency_conflict"
    assert not Message.objects.filter(conversation=scene.open_one, body="oi").exists()
    # In its own conversation the key still means "already sent": the same message back, nothing new;
    # the same key with another body is refused there too.
    again = _api(tenant_a, scene.assignee).post(
        f"/api/v1/conversations/{scene.hidden.pk}/messages/",
        {"body": scene.secret.body, "idempotency_key": "client-key-1"},
        content_type="application/json",
    )
    assert again.status_code == 200 and again.json()["id"] == scene.secret.pk
    other = _api(tenant_a, scene.assignee).post(
        f"/api/v1/conversations/{scene.hidden.pk}/messages/",
        {"body": "outra", "idempotency_key": "client-key-1"},
        content_type="application/json",
    )
    assert other.status_code == 422


@pytest.mark.django_db
def test_a_merge_cannot_pull_hidden_messages_into_view(
    scene: Scene, tenant_a: Tenant, channels: dict[str, int]
) -> None:
    mine = open_conversation(channels["whatsapp"], "+5511976550099")
    conversation_assign(conversation=mine, assignee=scene.viewer)
    dani = mine.contact
    viewer = tenant_client(tenant_a, scene.viewer)
    assert viewer.post(f"/contacts/{dani.pk}/merge/", {"duplicate": scene.carla.phone}).status_code == 403
    api = _api(tenant_a, scene.viewer)
    refused = api.post(
        f"/api/v1/contacts/{dani.pk}/merge/", {"duplicate": scene.carla.pk}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert Contact.objects.filter(pk=scene.carla.pk).exists()
    assert Message.objects.get(pk=scene.secret.pk).conversation_id == scene.hidden.pk
    # With everything in view (their own contacts only) the agent merges; an owner merges anything.
    other = open_conversation(channels["sms"], "+5511976550098")
    conversation_assign(conversation=other, assignee=scene.viewer)
    merged = api.post(
        f"/api/v1/contacts/{dani.pk}/merge/", {"duplicate": other.contact_id}, content_type="application/json"
    )
    assert merged.status_code == 200
    owner = _api(tenant_a, scene.owner)
    done = owner.post(
        f"/api/v1/contacts/{dani.pk}/merge/", {"duplicate": scene.carla.pk}, content_type="application/json"
    )
    assert done.status_code == 200 and not Contact.objects.filter(pk=scene.carla.pk).exists()


# --- the live socket, over the real ASGI server -------------------------------------------------------


@contextmanager
def _socket(app_server: str, tenant: Tenant, email: str) -> Iterator[ClientConnection]:
    port = int(app_server.rsplit(":", 1)[1])
    host = f"{tenant.slug}.localhost:{port}"
    with http_client() as client:
        assert http_login(client, f"http://{host}", email).status_code == 302
        cookie = "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar if c.value)
    sock = socket.create_connection(("127.0.0.1", port))
    headers = {"Cookie": cookie, "Origin": f"http://{host}"}
    with connect(f"ws://{host}/ws/live/", sock=sock, additional_headers=headers, open_timeout=10) as conn:
        assert json.loads(conn.recv(timeout=5))["event"] == "hello"
        yield conn


def _next_message(conn: ClientConnection) -> dict[str, Any]:
    """The next message.created event (status and conversation events may come in between)."""
    while True:
        event = json.loads(conn.recv(timeout=5))
        if event["event"] == "message.created":
            payload: dict[str, Any] = event["payload"]
            return payload


def _drain(conn: ClientConnection) -> None:
    while True:
        conn.recv(timeout=5)


def test_the_live_socket_pushes_a_message_only_to_who_may_see_it(
    app_server: str, tenant_a: Tenant, channels: dict[str, int], committed: Any
) -> None:
    tag = uuid.uuid4().hex[:8]
    connection.set_tenant(tenant_a)
    viewer = make_member(tenant_a, f"live-viewer-{tag}@alpha.test", Role.AGENT)
    assignee = make_member(tenant_a, f"live-assignee-{tag}@alpha.test", Role.AGENT)
    owner = make_member(tenant_a, f"live-owner-{tag}@alpha.test", Role.OWNER)
    hidden = open_conversation(channels["whatsapp"], f"+55119766{int(tag, 16) % 10**5:05d}")
    unassigned = open_conversation(channels["sms"], f"+55119767{int(tag, 16) % 10**5:05d}")
    conversation_assign(conversation=hidden, assignee=assignee)
    saved = InboxSettings.objects.filter(pk=1).first()  # committed: put back exactly what was there
    InboxSettings.objects.update_or_create(pk=1, defaults={"agents_see_all": False})
    try:
        with (
            _socket(app_server, tenant_a, viewer.email) as viewer_ws,
            _socket(app_server, tenant_a, assignee.email) as assignee_ws,
            _socket(app_server, tenant_a, owner.email) as owner_ws,
        ):
            connection.set_tenant(tenant_a)
            note_add(conversation=hidden, body="só para a dona", author=assignee)
            note_add(conversation=unassigned, body="para todos", author=owner)
            # Events keep their order on a socket: the viewer's first one is the second note.
            assert _next_message(viewer_ws)["body"] == "para todos"
            for ws in (assignee_ws, owner_ws):
                assert _next_message(ws)["body"] == "só para a dona"
                assert _next_message(ws)["body"] == "para todos"
            # Promoted to admin, the viewer's socket sees everything from the next event on.
            owner_membership = Membership.objects.get(user=owner, tenant=tenant_a)
            viewer_membership = Membership.objects.get(user=viewer, tenant=tenant_a)
            membership_set_role(actor=owner_membership, membership=viewer_membership, role=Role.ADMIN)
            connection.set_tenant(tenant_a)
            note_add(conversation=hidden, body="agora você vê", author=assignee)
            assert _next_message(viewer_ws)["body"] == "agora você vê"
            # Removed from the team: the socket is closed at once.
            membership_remove(actor=owner_membership, membership=viewer_membership)
            with pytest.raises(ConnectionClosed) as closed:
                _drain(viewer_ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    finally:
        connection.set_tenant(tenant_a)
        if saved is None:
            InboxSettings.objects.filter(pk=1).delete()
        else:
            saved.save()
