"""Files customers send are served from the tenant's own origin, so none of them may run there: only an
allow-list of image/audio/video types is shown inline; everything else (HTML, SVG, ...) downloads, with
nosniff and a sandboxing CSP on every file. Customer file names are cleaned; staff uploads are limited."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from accounts.models import User
from core.media import MAX_FILENAME, MEDIA_CSP, filename_clean, served_type
from emulators.meta import MetaEmulator
from inbox.ingest import drain_batch
from inbox.models import Message
from inbox.services import media_store
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.messaging import meta_envelope, meta_messages_value, open_conversation, post_meta

pytestmark = pytest.mark.django_db

HTML = b"<html><script>fetch('/api/v1/contacts/').then(r => r.text()).then(alert)</script></html>"


def _receive_document(tenant: Tenant, meta_emulator: MetaEmulator, filename: str, content: bytes, mime: str) -> Message:
    media_id = str(uuid.uuid4().int % 10**15)
    meta_emulator.media[media_id] = (content, mime)
    wamid = f"wamid.doc.{uuid.uuid4().hex}"
    message = {
        "from": "5511987650101",
        "id": wamid,
        "timestamp": "1717000000",
        "type": "document",
        "document": {"id": media_id, "mime_type": mime, "sha256": "x", "filename": filename},
    }
    assert post_meta(meta_envelope(meta_messages_value(messages=[message], sender="5511987650101"))).status_code == 200
    drain_batch()
    connection.set_tenant(tenant)
    stored = Message.objects.get(provider_message_id=wamid)
    media_store(message_id=stored.pk)
    stored.refresh_from_db()
    return stored


def test_a_customer_html_document_downloads_and_never_renders(
    tenant_a: Tenant, agent_a: User, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    message = _receive_document(tenant_a, meta_emulator, "../../static/fatura.html", HTML, "text/html")
    assert message.media_filename == "fatura.html"  # no directories
    assert "/static/" not in message.media.name and message.media.name.endswith(".html")
    response = tenant_client(tenant_a, agent_a).get(message.media.url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert 'filename="fatura' in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == MEDIA_CSP
    assert b"".join(response.streaming_content) == HTML  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "content_type", "inline"),
    [
        ("image-1.jpg", "image/jpeg", True),
        ("photo.PNG", "image/png", True),
        ("sticker.webp", "image/webp", True),
        ("voice.ogg", "audio/ogg", True),
        ("clip.mp4", "video/mp4", True),
        ("drawing.svg", "application/octet-stream", False),
        ("page.htm", "application/octet-stream", False),
        ("page.xhtml", "application/octet-stream", False),
        ("boleto.pdf", "application/octet-stream", False),
        ("noextension", "application/octet-stream", False),
    ],
)
def test_only_the_allow_list_is_served_inline(
    name: str,
    content_type: str,
    inline: bool,
    in_tenant_a: Tenant,
    agent_a: User,
    channels: dict[str, int],
) -> None:
    conversation = open_conversation(channels["whatsapp"], "+5511987650102")
    message = Message.objects.create(
        conversation=conversation, channel_id=channels["whatsapp"], direction="in", type="document", body=""
    )
    message.media.save(name, ContentFile(b"<svg onload=alert(1)>"), save=True)
    response = tenant_client(in_tenant_a, agent_a).get(message.media.url)
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"].startswith("inline" if inline else "attachment")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert served_type(name) == (content_type, inline)


def test_non_ascii_names_use_rfc_6266(in_tenant_a: Tenant, agent_a: User, channels: dict[str, int]) -> None:
    conversation = open_conversation(channels["whatsapp"], "+5511987650103")
    message = Message.objects.create(
        conversation=conversation, channel_id=channels["whatsapp"], direction="in", type="document", body=""
    )
    message.media.save("cotação.pdf", ContentFile(b"%PDF"), save=True)
    response = tenant_client(in_tenant_a, agent_a).get(message.media.url)
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment; filename*=utf-8''cota%C3%A7%C3%A3o") and disposition.endswith(".pdf")


def test_other_tenants_and_strangers_get_nothing(
    in_tenant_a: Tenant, tenant_b: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    conversation = open_conversation(channels["whatsapp"], "+5511987650104")
    message = Message.objects.create(
        conversation=conversation, channel_id=channels["whatsapp"], direction="in", type="image", body=""
    )
    message.media.save("p.jpg", ContentFile(b"\xff\xd8"), save=True)
    assert tenant_client(in_tenant_a).get(message.media.url).status_code in (302, 403)
    assert tenant_client(tenant_b, agent_a).get(message.media.url).status_code in (302, 403, 404)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("fatura.pdf", "fatura.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ana\\boleto.pdf", "boleto.pdf"),
        ("fatura\u202efdp.exe", "faturafdp.exe"),  # right-to-left override hiding ".exe"
        ("a\x00b\r\nc.txt", "ab c.txt"),
        ("   ...hidden  ", "hidden"),
        ("...", ""),
        ("nota   fiscal\t2024.pdf", "nota fiscal 2024.pdf"),
    ],
)
def test_customer_file_names_are_cleaned(raw: str, clean: str) -> None:
    assert filename_clean(raw) == clean


@given(st.text(max_size=600))
@settings(max_examples=300, deadline=None)
def test_any_file_name_cleans_to_something_safe(raw: str) -> None:
    clean = filename_clean(raw)
    assert len(clean) <= MAX_FILENAME
    assert "/" not in clean and "\\" not in clean and "\x00" not in clean
    assert not clean.startswith((".", " "))
    assert all(ord(ch) >= 32 and ch not in "\u202e\u202d\u2066\u2067\u2068" for ch in clean)
    assert filename_clean(clean) == clean  # idempotent


def test_long_names_keep_their_extension() -> None:
    clean = filename_clean("x" * 500 + ".pdf")
    assert len(clean) == MAX_FILENAME and clean.endswith(".pdf")


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("page.html", b"<script>", "cannot be sent"),
        ("drawing.svg", b"<svg/>", "cannot be sent"),
        ("run.exe", b"MZ", "cannot be sent"),
        ("big.pdf", b"%PDF" + b"x" * 2048, "too large"),
    ],
)
def test_staff_uploads_are_limited_by_type_and_size(
    name: str,
    content: bytes,
    error: str,
    in_tenant_a: Tenant,
    agent_a: User,
    channels: dict[str, int],
    settings: Any,
) -> None:
    settings.MEDIA_UPLOAD_MAX_BYTES = 1024
    conversation = open_conversation(channels["whatsapp"], "+5511987650105")
    client = tenant_client(in_tenant_a, agent_a, lang="en")
    upload = SimpleUploadedFile(name, content, content_type="image/png")  # what the browser claims is ignored
    response = client.post(f"/conversations/{conversation.pk}/", {"body": "", "attachment": upload})
    assert response.status_code == 400 and error in response.content.decode()
    assert not Message.objects.filter(conversation=conversation).exists()


def test_an_allowed_upload_is_sent_with_our_type_and_a_clean_name(
    in_tenant_a: Tenant, agent_a: User, channels: dict[str, int]
) -> None:
    conversation = open_conversation(channels["whatsapp"], "+5511987650106")
    client = tenant_client(in_tenant_a, agent_a, lang="en")
    upload = SimpleUploadedFile("Boleto\u202e.pdf", b"%PDF-1.4", content_type="text/html")
    assert client.post(f"/conversations/{conversation.pk}/", {"body": "", "attachment": upload}).status_code == 302
    message = Message.objects.get(conversation=conversation)
    assert (message.type, message.media_mime, message.media_filename) == ("document", "application/pdf", "Boleto.pdf")


def test_imports_are_limited_in_size(in_tenant_a: Tenant, owner_a: User, settings: Any) -> None:
    settings.IMPORT_MAX_BYTES = 100
    client = tenant_client(in_tenant_a, owner_a, lang="en")
    upload = SimpleUploadedFile("contacts.csv", b"phone,name\n" + b"11987650000,Ana\n" * 20, content_type="text/csv")
    response = client.post("/contacts/import/", {"file": upload})
    assert response.status_code == 400 and "larger than" in response.content.decode()
