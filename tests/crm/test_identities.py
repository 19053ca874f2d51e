"""Contacts without a phone: known by a WhatsApp user id (BSUID) in a business portfolio. Export and
import carry them, the API shows their identities and takes contacts without a phone, and SMS (or a
WhatsApp number of another portfolio) skips them saying why."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import translation

from accounts.models import User
from accounts.services import api_token_create
from campaigns.models import CampaignRecipient, RecipientStatus
from campaigns.services import campaign_launch, campaign_save
from crm.export import contacts_csv_rows
from crm.imports import import_configure, import_run, import_start
from crm.models import Contact, ContactIdentity, ContactImport, IdentityKind, Tag
from crm.services import contact_merge, contact_resolve
from inbox.models import Channel, Conversation
from inbox.services import message_send
from tenants.models import Tenant
from tests.dispatching import send_queued

pytestmark = pytest.mark.django_db

PORTFOLIO = "412300000000001"


@pytest.fixture(autouse=True)
def _english() -> Any:
    """The reasons are checked in English (pt-BR has them too)."""
    with translation.override("en"):
        yield


def _bsuid() -> str:
    return f"BR.{uuid.uuid4().int % 10**16}"


def _run(upload: ContactImport, *, update: bool = True) -> ContactImport:
    import_configure(upload=upload, mapping=upload.mapping, update_existing=update, tag_ids=[])
    return import_run(import_id=upload.pk)


def _csv(contacts: Any) -> str:
    return "".join(contacts_csv_rows(contacts))


def test_a_contact_without_phone_is_exported_and_imported_back_by_its_bsuid(in_tenant_a: Any) -> None:
    bsuid = _bsuid()
    bia = contact_resolve(scope=PORTFOLIO, bsuid=bsuid, username="bia.doces", profile_name="Bia")
    assert bia is not None and bia.phone is None
    caio = Contact.objects.create(phone="+5511987650101", name="Caio")
    text = _csv(Contact.objects.filter(pk__in=[bia.pk, caio.pk]).order_by("pk"))
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert (rows[0]["phone"], rows[0]["whatsapp_bsuid"], rows[0]["whatsapp_portfolio"]) == ("", bsuid, PORTFOLIO)
    assert rows[0]["whatsapp_username"] == "bia.doces" and rows[1]["phone"] == "+5511987650101"

    Contact.objects.filter(pk__in=[bia.pk, caio.pk]).delete()
    upload = import_start(file=ContentFile(text.encode()), original_name="export.csv")
    assert upload.mapping["whatsapp_bsuid"] == "wa_bsuid" and upload.mapping["whatsapp_portfolio"] == "wa_portfolio"
    done = _run(upload)
    assert (done.created_count, done.failed_count) == (2, 0)
    back = Contact.objects.get(identities__value=bsuid)
    assert (back.phone, back.wa_username, back.identities.get().scope) == (None, "bia.doces", PORTFOLIO)
    # The same file again updates both, makes nobody twice.
    again = _run(import_start(file=ContentFile(text.encode()), original_name="export.csv"))
    assert (again.created_count, again.updated_count) == (0, 2)
    assert ContactIdentity.objects.filter(value=bsuid).count() == 1 and Contact.objects.count() == 2


def test_import_of_a_bsuid_needs_its_portfolio_when_it_is_not_obvious(in_tenant_a: Any) -> None:
    contact_resolve(scope=PORTFOLIO, bsuid=_bsuid())
    contact_resolve(scope="412300000000002", bsuid=_bsuid())
    sheet = f"nome,whatsapp_bsuid\nDora,{_bsuid()}\nEli,not-an-id\n"
    done = _run(import_start(file=ContentFile(sheet.encode()), original_name="ids.csv"))
    assert (done.created_count, done.failed_count) == (0, 2)
    with done.error_report.open("rb") as fh:
        report = fh.read().decode("utf-8-sig")
    assert "whatsapp_portfolio" in report and "not a WhatsApp user id" in report


def test_sms_and_another_portfolio_skip_a_contact_without_phone_saying_why(
    in_tenant_a: Any, channels: dict[str, int]
) -> None:
    contact = contact_resolve(scope=PORTFOLIO, bsuid=_bsuid(), username="sem.fone", profile_name="Sem Fone")
    assert contact is not None
    sms = Channel.objects.get(pk=channels["sms"])
    with pytest.raises(ValidationError) as refused:
        message_send(conversation=Conversation.objects.create(contact=contact, channel=sms), body="oi")
    assert refused.value.code == "no_address" and "no phone number" in refused.value.messages[0]
    # On WhatsApp Cloud the BSUID must be of that number's portfolio (ours here is another one).
    whatsapp = Channel.objects.get(pk=channels["whatsapp"])
    with pytest.raises(ValidationError) as refused:
        message_send(conversation=Conversation.objects.create(contact=contact, channel=whatsapp), body="oi")
    assert refused.value.code == "no_address" and "portfolio" in refused.value.messages[0]

    tag = Tag.objects.create(name=f"sf-{uuid.uuid4().hex[:6]}")
    phoned = Contact.objects.create(phone="+5511987650202", name="Com Fone")
    for person in (contact, phoned):
        person.tags.add(tag)
    campaign = campaign_save(
        name="Aviso",
        channel=sms,
        audience={"tags": [tag.pk]},
        kind="text",
        body="Oi {{first_name}}",
        respect_quiet_hours=False,
    )
    campaign_launch(campaign=campaign)
    send_queued(sms.pk)  # the dispatcher's runner builds and sends the campaign
    skipped = CampaignRecipient.objects.get(campaign=campaign, contact=contact)
    assert skipped.status == RecipientStatus.SKIPPED and "no phone number" in skipped.reason
    assert CampaignRecipient.objects.get(campaign=campaign, contact=phoned).status == RecipientStatus.SENT


def test_merge_moves_identities_and_keeps_a_record(in_tenant_a: Any) -> None:
    bsuid = _bsuid()
    by_id = contact_resolve(scope=PORTFOLIO, bsuid=bsuid, username="gi")
    by_phone = Contact.objects.create(phone="+5511987650303", name="Gi")
    assert by_id is not None
    kept = contact_merge(primary=by_phone, duplicate=by_id, reason="test")
    assert ContactIdentity.objects.get(value=bsuid).contact_id == kept.pk and kept.wa_username == "gi"
    assert kept.merges.get().merged_identities == [  # type: ignore[attr-defined]
        {"kind": IdentityKind.WHATSAPP_BSUID, "scope": PORTFOLIO, "value": bsuid}
    ]


@pytest.fixture
def api(in_tenant_a: Any, tenant_a: Tenant, agent_a: User) -> Client:
    _token, raw = api_token_create(user=agent_a, tenant=tenant_a, name="ids")
    return Client(HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION=f"Token {raw}")


def test_api_shows_identities_read_only_and_takes_a_contact_without_phone(api: Client) -> None:
    bsuid = _bsuid()
    contact = contact_resolve(scope=PORTFOLIO, bsuid=bsuid, username="api.user")
    assert contact is not None
    shown = api.get(f"/api/v1/contacts/{contact.pk}/").json()
    assert shown["phone"] is None and shown["wa_username"] == "api.user"
    assert {"kind": "wa_bsuid", "scope": PORTFOLIO, "value": bsuid} in shown["identities"]
    found = api.get("/api/v1/contacts/", {"q": "@api.user"}).json()
    assert [c["id"] for c in found["results"]] == [contact.pk]
    made = api.post(
        "/api/v1/contacts/",
        {"name": "Sem Telefone", "identities": [{"kind": "wa_bsuid"}]},
        content_type="application/json",
    )
    assert made.status_code == 201, made.content
    assert made.json()["phone"] is None and made.json()["identities"] == []  # identities are read-only
