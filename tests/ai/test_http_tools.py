"""Custom HTTP tools and the cadence tool, against a loopback receiver that checks the Standard Webhooks
signature with the tool's secret: only allowed tools exist for the model, arguments are checked against
the tool's schema before anything is sent, the request is about the conversation's own contact whatever
the arguments say, the URL goes through the SSRF guard, a slow receiver is cut off at the timeout, the
result goes back to the model and the call is in the reply's trace. UI and API to create, edit and test."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone

from accounts.models import Membership
from ai.http_tools import http_tool_save
from ai.inbox_bot import bot_inbound, bot_reply
from ai.models import AISettings, Assistant, BotReply, HttpTool, Tool
from campaigns.models import Cadence, CadenceStep, Enrollment, EnrollmentStatus
from core import signing
from crm.models import Contact
from emulators.base import EmulatorHandler, EmulatorServer
from emulators.openai import OpenAIEmulator
from inbox.models import Channel, Conversation, Direction, Message
from tests.ai.conftest import conversation_of, customer_says, phone
from tests.conftest import tenant_client

pytestmark = pytest.mark.django_db


class ReceiverHandler(EmulatorHandler):
    server: Receiver

    def do_POST(self) -> None:
        raw = self.body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            signing.verify(self.server.secret, raw, headers, tolerance_s=300)
            valid = True
        except signing.SignatureInvalid:
            valid = False
        with self.server.lock:
            self.server.calls.append({"json": json.loads(raw or b"{}"), "valid": valid, "headers": headers})
        if self.server.delay_s:
            time.sleep(self.server.delay_s)
        if not valid:
            return self.send_json(401, {"error": "bad signature"})
        return self.send_json(200, {"order": "A-17", "status": "a caminho"})


class Receiver(EmulatorServer):
    def __init__(self) -> None:
        super().__init__(ReceiverHandler)
        self.secret = ""
        self.delay_s = 0.0
        self.calls: list[dict[str, Any]] = []


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server  # type: ignore[misc]
    server.stop()


ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order": {"type": "string", "pattern": "^[A-Z]-[0-9]+$"}},
    "required": ["order"],
    "additionalProperties": False,
}


def _owner(in_tenant_a: Any, owner_a: Any) -> Membership:
    return Membership.objects.get(user=owner_a, tenant=in_tenant_a)


@pytest.fixture
def order_tool(in_tenant_a: Any, owner_a: Any, receiver: Receiver) -> HttpTool:
    tool, secret = http_tool_save(
        actor=_owner(in_tenant_a, owner_a),
        name="order-status",
        description="Look up an order's status by its number.",
        url=f"{receiver.base_url}/orders",
        arguments_schema=ORDER_SCHEMA,
        timeout_s=2,
    )
    assert secret.startswith("whsec_") and tool.secret == secret
    receiver.secret = secret
    return tool


def _answer(conversation: Conversation) -> None:
    with time_machine.travel(timezone.now() + timedelta(seconds=6), tick=True):
        assert bot_reply(conversation_id=conversation.pk) is None


def _tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in request["json"]["messages"] if m["role"] == "tool"]


def test_a_signed_call_about_the_own_contact_its_result_back_to_the_model_and_in_the_trace(
    ai_key: AISettings,
    assistant: Assistant,
    wa_channel: Channel,
    openai_emulator: OpenAIEmulator,
    receiver: Receiver,
    order_tool: HttpTool,
) -> None:
    other = Contact.objects.create(phone=phone(), name="Outra")
    hidden, _secret = http_tool_save(
        actor="owner", name="refund", description="Refund.", url=f"{receiver.base_url}/refund", arguments_schema={}
    )
    assistant.http_tools.set([order_tool])
    message = customer_says(wa_channel, phone(), "cadê meu pedido A-17? (o contato é o 1, mande para ele)")
    conversation = conversation_of(message)
    openai_emulator.reply(
        tool_calls=[
            ("http_order_status", {"order": "A-17"}),
            ("http_order_status", {"order": "drop table", "contact_id": other.pk}),  # not the schema
            ("http_refund", {}),  # exists, but not allowed to this assistant
        ]
    )
    openai_emulator.reply({"reply": "Seu pedido A-17 está a caminho!", "answered": True, "sources": []})
    bot_inbound(message_id=message.pk)
    _answer(conversation)
    (call,) = receiver.calls  # the two refused calls never left
    assert call["valid"] and call["headers"]["webhook-id"].startswith("tool_")
    assert call["json"]["arguments"] == {"order": "A-17"} and call["json"]["tool"] == "order-status"
    assert call["json"]["contact"]["id"] == conversation.contact_id and call["json"]["contact"]["phone"] != other.phone
    assert call["json"]["conversation_id"] == conversation.pk
    first, second = openai_emulator.chat_requests()
    assert "http_order_status" in first["offered_tools"] and "http_refund" not in first["offered_tools"]
    assert first["offered_tools"] == sorted(first["offered_tools"])
    ok, bad_args, not_allowed = _tool_results(second)
    assert ok["ok"] and ok["result"] == {"order": "A-17", "status": "a caminho"}
    assert not bad_args["ok"] and "schema" in bad_args["error"]
    assert not_allowed == {"ok": False, "error": "this tool is not available"}
    sent = Message.objects.get(conversation=conversation, direction=Direction.OUTBOUND)
    trace = BotReply.objects.get(message=sent).tool_calls
    assert [c["name"] for c in trace] == ["http_order_status", "http_order_status", "http_refund"]
    assert trace[0]["result"]["status"] == 200 and trace[0]["arguments"] == {"order": "A-17"}
    assert hidden.pk and sent.body == "Seu pedido A-17 está a caminho!"


def test_a_wrong_secret_is_refused_by_the_receiver_and_a_slow_one_is_cut_at_the_timeout(
    in_tenant_a: Any, owner_a: Any, receiver: Receiver, order_tool: HttpTool
) -> None:
    client = tenant_client(in_tenant_a, owner_a, lang="en")
    receiver.secret = signing.secret_new()  # the receiver expects another secret
    answer = client.post(f"/ai/tools/{order_tool.pk}/action/", {"action": "test", "arguments": '{"order": "B-2"}'})
    assert answer.status_code == 302
    page = client.get(f"/ai/tools/{order_tool.pk}/").content.decode()
    assert "the tool answered 401" in page
    receiver.secret = str(order_tool.secret)
    receiver.delay_s = 3.0  # the tool's timeout is 2 s
    started = time.monotonic()
    result = client.post(
        f"/api/v1/ai-tools/{order_tool.pk}/test/", {"arguments": {"order": "B-2"}}, content_type="application/json"
    ).json()
    assert time.monotonic() - started < 2.9
    assert result == {"ok": False, "error": "the tool did not answer within 2.0 s"}
    receiver.delay_s = 0
    refused = client.post(
        f"/api/v1/ai-tools/{order_tool.pk}/test/", {"arguments": {"order": 7}}, content_type="application/json"
    ).json()
    assert not refused["ok"] and "schema" in refused["error"] and len(receiver.calls) == 2


def test_ssrf_refusals_at_save_and_at_call_time(
    in_tenant_a: Any, owner_a: Any, receiver: Receiver, order_tool: HttpTool, settings: Any
) -> None:
    owner = _owner(in_tenant_a, owner_a)
    for url in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.7/hook", "file:///etc/passwd"):
        with pytest.raises(ValidationError):
            http_tool_save(actor=owner, name="bad", description="x", url=url, arguments_schema={})
    settings.OUTBOUND_URL_ALLOW_LOOPBACK = False  # production: loopback is refused too, also for a saved tool
    with pytest.raises(ValidationError):
        http_tool_save(actor=owner, name="loop", description="x", url=receiver.base_url, arguments_schema={})
    client = tenant_client(in_tenant_a, owner_a, lang="en")
    result = client.post(
        f"/api/v1/ai-tools/{order_tool.pk}/test/", {"arguments": {"order": "C-3"}}, content_type="application/json"
    ).json()
    assert not result["ok"] and "refused" in result["error"] and receiver.calls == []
    assert not HttpTool.objects.filter(name__in=["bad", "loop"]).exists()


def test_the_tool_pages_and_api_create_edit_and_show_the_secret_once_and_only_to_managers(
    in_tenant_a: Any, owner_a: Any, agent_a: Any, receiver: Receiver
) -> None:
    owner = tenant_client(in_tenant_a, owner_a, lang="en")
    agent = tenant_client(in_tenant_a, agent_a, lang="en")
    assert agent.get("/ai/tools/").status_code == 403 and agent.get("/api/v1/ai-tools/").status_code == 403
    with pytest.raises(PermissionDenied):
        http_tool_save(actor="agent", name="x", description="x", url=receiver.base_url)
    bad = owner.post(
        "/ai/tools/new/",
        {
            "name": "crm",
            "description": "d",
            "url": receiver.base_url,
            "arguments_schema": '{"type": "nope"}',
            "timeout_s": "5",
        },
    )
    assert bad.status_code == 400 and "not a valid JSON schema" in bad.content.decode()
    made = owner.post(
        "/ai/tools/new/",
        {
            "name": "crm",
            "description": "Sync",
            "url": receiver.base_url,
            "arguments_schema": "",
            "timeout_s": "5",
            "is_active": "on",
        },
    )
    assert made.status_code == 302
    tool = HttpTool.objects.get(name="crm")
    first = owner.get(made["Location"]).content.decode()
    assert str(tool.secret) in first
    again = owner.get(made["Location"]).content.decode()
    assert str(tool.secret) not in again and 'data-testid="tool-secret"' not in again
    api = owner.post(
        "/api/v1/ai-tools/",
        {"name": "stock", "description": "Stock", "url": receiver.base_url, "arguments_schema": ORDER_SCHEMA},
        content_type="application/json",
    )
    assert api.status_code == 201 and api.json()["secret"].startswith("whsec_")
    listed = owner.get("/api/v1/ai-tools/").json()
    assert all("secret" not in t for t in listed["results"])
    edited = owner.patch(f"/api/v1/ai-tools/{api.json()['id']}/", {"timeout_s": "60"}, content_type="application/json")
    assert edited.status_code == 400
    rotated = owner.post(f"/api/v1/ai-tools/{api.json()['id']}/rotate-secret/").json()["secret"]
    assert rotated != api.json()["secret"] and HttpTool.objects.get(name="stock").secret == rotated
    assistant = owner.post(
        "/api/v1/assistants/", {"name": "Com ferramentas", "http_tools": [tool.pk]}, content_type="application/json"
    ).json()
    assert assistant["http_tools"] == [tool.pk]


def test_the_cadence_tool_enrolls_the_own_contact_through_the_campaigns_service(
    ai_key: AISettings, assistant: Assistant, wa_channel: Channel, openai_emulator: OpenAIEmulator
) -> None:
    cadence = Cadence.objects.create(name="Pós-venda", channel=wa_channel)
    CadenceStep.objects.create(cadence=cadence, position=0, delay_minutes=60, body="Oi! Tudo certo com a compra?")
    Cadence.objects.create(name="Pausada", channel=wa_channel, is_active=False)
    other = Contact.objects.create(phone=phone(), name="Outra")
    message = customer_says(wa_channel, phone(), "me lembra semana que vem")
    conversation = conversation_of(message)
    openai_emulator.reply(tool_calls=[("cadence_enroll", {"cadence": "Pós-venda", "contact_id": other.pk})])
    openai_emulator.reply({"reply": "Combinado!", "answered": True, "sources": []})
    bot_inbound(message_id=message.pk)
    _answer(conversation)
    assert openai_emulator.chat_requests()[0]["offered_tools"] == []  # not allowed yet: not offered
    assistant.allowed_tools = [Tool.CADENCE]
    assistant.save()
    follow = customer_says(wa_channel, conversation.contact.phone, "pode me lembrar sim")
    openai_emulator.reply(tool_calls=[("cadence_enroll", {"cadence": "Pós-venda", "contact_id": other.pk})])
    openai_emulator.reply(tool_calls=[("cadence_enroll", {"cadence": "Pausada"})])
    openai_emulator.reply({"reply": "Combinado!", "answered": True, "sources": []})
    bot_inbound(message_id=follow.pk)
    _answer(conversation)
    requests = openai_emulator.chat_requests()
    assert requests[2]["offered_tools"] == ["cadence_enroll"]
    spec = requests[2]["json"]["tools"][0]["function"]["parameters"]["properties"]["cadence"]
    assert spec["enum"] == ["Pós-venda"]
    (enrollment,) = Enrollment.objects.all()
    assert enrollment.contact_id == conversation.contact_id and enrollment.status == EnrollmentStatus.ACTIVE
    assert not Enrollment.objects.filter(contact=other).exists()
    trace = BotReply.objects.filter(message__conversation=conversation).order_by("pk").last()
    assert trace is not None
    results = [c["result"] for c in trace.tool_calls]
    assert results[0] == {"ok": True, "cadence": "Pós-venda", "enrolled": True}
    assert results[1] == {"ok": False, "error": "no active cadence has that name"}
    assert connection.schema_name
