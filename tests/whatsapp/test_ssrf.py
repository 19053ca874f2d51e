"""Supplied ids and URLs on the WhatsApp side: a Graph id is one validated path segment (never an absolute
URL), and a media link given to a WhatsApp Web send is fetched by the app through the URL guard; the
engine is only ever handed bytes."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connection

from emulators.meta import MetaEmulator
from inbox.models import MessageStatus
from inbox.services import message_dispatch, message_send
from tests.conftest import WA_TOKEN
from tests.messaging import open_conversation
from tests.whatsapp.test_web import fake_factory, only, web_channel  # noqa: F401  (fixture)
from whatsapp.client import GraphClient, GraphError, graph_segment, media_hosts
from whatsapp.web.client import FAKES
from whatsapp.web.manager import SessionManager


@pytest.mark.parametrize(
    "value",
    ["https://evil.example/", "http:", "//evil.example", "../../oauth/access_token", "a/b", "a?b=1", "a#b", "", ".."],
)
def test_graph_ids_that_are_not_one_segment_are_refused(value: str) -> None:
    with pytest.raises(GraphError) as refused:
        graph_segment(value)
    assert (refused.value.status, refused.value.code) == (400, 100)


@pytest.mark.parametrize("value", ["106540352242922", "pnid-alpha", "waba_1", "v21.0"])
def test_graph_ids_are_accepted(value: str) -> None:
    assert graph_segment(value) == value


def test_a_phone_number_id_starting_with_http_never_becomes_a_url(meta_emulator: MetaEmulator) -> None:
    before = len(meta_emulator.sent)
    client = GraphClient(WA_TOKEN)
    for pnid in ("http://169.254.169.254/latest/meta-data", "https://evil.example/collect"):
        with pytest.raises(GraphError):
            client.send_message(pnid, {"to": "5511987654321", "type": "text", "text": {"body": "x"}})
        with pytest.raises(GraphError):
            client.download_media(pnid)
    assert len(meta_emulator.sent) == before
    # and a real id still works against the same emulator
    assert client.send_message("pnid-alpha", {"to": "5511987654321", "type": "text", "text": {"body": "oi"}})


def test_meta_media_comes_from_meta_hosts_only() -> None:
    assert media_hosts()[0] == "lookaside.fbsbx.com"
    assert "127.0.0.1" in media_hosts()  # META_GRAPH_BASE_URL: the emulator


class _Files(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that stops reading (the size limit) is expected here, not an error to print

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FileHandler)
        self.hits = 0


class _FileHandler(BaseHTTPRequestHandler):
    server: _Files
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.server.hits += 1
        body = b"%PDF-1.4 boleto"
        self.send_response(200)
        self.send_header("Content-Type", "application/pdf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def files() -> Iterator[_Files]:
    server = _Files()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("loopback_allowed", [True, False])
def test_web_media_links_are_fetched_by_the_guard_not_the_engine(
    loopback_allowed: bool,
    web_channel: Any,  # noqa: F811  (the fixture imported above)
    files: _Files,
    settings: Any,
) -> None:
    tenant, channel, key = web_channel
    manager = SessionManager(process_id=f"p-ssrf-{loopback_allowed}", client_factory=fake_factory)
    only(manager, key)
    FAKES[key].scan("+5511999990007")
    stop = threading.Event()
    manager.wanted = lambda: [(tenant.schema_name, channel.pk)]  # type: ignore[method-assign]
    runner = threading.Thread(target=manager.run, args=(stop, 0.05), daemon=True)
    runner.start()
    settings.OUTBOUND_URL_ALLOW_LOOPBACK = loopback_allowed  # in this process: the one that sends
    try:
        connection.set_tenant(tenant)
        conversation = open_conversation(channel.pk, "+5511977770007")
        url = f"http://127.0.0.1:{files.server_address[1]}/boleto.pdf"
        message = message_send(
            conversation=conversation,
            type="document",
            media_url=url,
            media_filename="boleto.pdf",
            body="Seu boleto",
            dispatch=False,  # sent here, in this process and its settings, not by a worker
        )
        message_dispatch(message_id=message.pk)
        message.refresh_from_db()
        if loopback_allowed:
            assert message.status == MessageStatus.SENT
            payload = FAKES[key].sent[-1]["payload"]
            assert "media_url" not in payload
            assert base64.b64decode(payload["media_b64"]) == b"%PDF-1.4 boleto"
            assert payload["mime"] == "application/pdf"
            assert files.hits == 1
        else:
            assert message.status == MessageStatus.FAILED and message.error_code == "media_url"
            assert "not allowed" in message.error_text
            assert files.hits == 0 and not FAKES[key].sent
    finally:
        stop.set()
        runner.join(timeout=10)
        connection.set_schema_to_public()
        manager.stop_all()


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["wa-phone_number_id", "wa-waba_id"])
def test_connecting_a_channel_refuses_ids_that_are_links(
    field: str, in_tenant_a: Any, owner_a: Any, channels: dict[str, int]
) -> None:
    from inbox.models import Channel
    from tests.conftest import tenant_client

    form = {
        "wa-name": "Vendas",
        "wa-phone_number": "(11) 97777-0001",
        "wa-phone_number_id": "106540352242922",
        "wa-waba_id": "102290129340398",
        "wa-access_token": "EAAG-secret",
        field: "https://graph.evil.example/v1/",
    }
    response = tenant_client(in_tenant_a, owner_a, lang="en").post("/channels/add/whatsapp_cloud/", form)
    assert response.status_code == 400 and "not a link" in response.content.decode()
    assert not Channel.objects.filter(phone_number="+5511977770001").exists()
