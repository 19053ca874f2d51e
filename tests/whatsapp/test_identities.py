"""Customers known by a business-scoped user id (BSUID): the Meta emulator plays them (a username user
whose phone is withheld, a phone change), its webhooks go through the real intake (post_meta -> drain)
and replies go out through the real Graph client."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection

from crm.models import ConsentStatus, Contact, ContactConsent, ContactIdentity, ContactMerge, IdentityKind
from crm.selectors import contacts_filter
from crm.services import contact_resolve
from emulators.meta import MetaEmulator
from inbox.ingest import drain_batch
from inbox.models import Channel, Conversation, Message, MessageStatus
from inbox.selectors import channel_identity_scope, conversations_search
from inbox.services import message_dispatch, message_send
from tenants.models import Tenant
from tests.conftest import WA_PNID, WA_WABA, tenant_client
from tests.messaging import open_conversation, post_meta

pytestmark = pytest.mark.django_db


def _unique_phone() -> str:
    return f"55119{uuid.uuid4().int % 10**8:08d}"


def _deliver(hooks: list[dict[str, Any]], tenant: Tenant) -> None:
    """Post what the emulator would have posted, through the ASGI intake, then apply it."""
    for body in hooks:
        assert post_meta(body).status_code == 200
    drain_batch()
    connection.set_tenant(tenant)


def _value(body: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = body["entry"][0]["changes"][0]["value"]
    return value


def test_username_customer_is_received_answered_by_bsuid_found_and_merged_when_the_phone_shows(
    tenant_a: Tenant, channels: dict[str, int], meta_emulator: MetaEmulator, owner_a: Any
) -> None:
    connection.set_tenant(tenant_a)
    channel = Channel.objects.get(pk=channels["whatsapp"])
    # The portfolio was asked of Graph (owner_business_info) when the channel connected.
    assert channel.business_portfolio_id == meta_emulator.portfolio_of_waba(WA_WABA)
    phone, username = _unique_phone(), f"doces.{uuid.uuid4().hex[:8]}"
    known = Contact.objects.create(phone=f"+{phone}", name="Ana (planilha)")  # the business's own record

    # 1. A username customer writes; Meta withholds the phone: no wa_id, no `from`, only the BSUID.
    with meta_emulator.capture() as hooks:
        meta_emulator.inject_inbound(
            phone_number_id=WA_PNID, from_phone=phone, username=username, withhold_phone=True, name="Ana", text="Oi!"
        )
    wire = _value(hooks[0])
    assert "from" not in wire["messages"][0] and "wa_id" not in wire["contacts"][0]
    bsuid = wire["messages"][0]["from_user_id"]
    assert wire["contacts"][0]["user_id"] == bsuid and wire["contacts"][0]["profile"]["username"] == username
    _deliver(hooks, tenant_a)
    first = Message.objects.get(provider_message_id=wire["messages"][0]["id"])
    customer = first.conversation.contact
    assert customer.pk != known.pk and customer.phone is None
    assert (customer.wa_username, customer.wa_profile_name, first.body) == (username, "Ana", "Oi!")
    assert ContactIdentity.objects.filter(
        contact=customer, kind=IdentityKind.WHATSAPP_BSUID, scope=channel.business_portfolio_id, value=bsuid
    ).exists()

    # 2. Found by username (with or without @) and by BSUID, in the contacts list and in the inbox.
    assert list(contacts_filter({"q": f"@{username}"})) == [customer]
    assert list(contacts_filter({"q": bsuid})) == [customer]
    assert list(contacts_filter({"q": username[:7], "phone": "without"})) == [customer]
    found, _cursor = conversations_search(Conversation.objects.all(), q=f"@{username}")
    assert [c.pk for c in found] == [first.conversation_id]

    # 3. The reply goes to the BSUID (Meta's `recipient`, no `to`), through the real Graph client.
    reply = message_send(conversation=first.conversation, body="Tem sim!")
    with meta_emulator.capture() as statuses:
        assert message_dispatch(message_id=reply.pk) is None
    reply.refresh_from_db()
    assert reply.status == MessageStatus.SENT
    sent = meta_emulator.sent[str(reply.provider_message_id)]
    assert sent["recipient"] == bsuid and "to" not in sent
    assert [_value(s)["statuses"][0]["recipient_user_id"] for s in statuses] == [bsuid] * len(statuses)
    _deliver(statuses, tenant_a)
    reply.refresh_from_db()
    assert reply.status == MessageStatus.READ  # statuses matched by the provider's message id

    # 4. Meta later shows the phone: the BSUID contact and the phone-keyed one are one person.
    with meta_emulator.capture() as hooks:
        meta_emulator.inject_inbound(
            phone_number_id=WA_PNID, from_phone=phone, username=username, withhold_phone=False, name="Ana", text="É eu"
        )
    assert _value(hooks[0])["messages"][0]["from"] == phone
    _deliver(hooks, tenant_a)
    assert not Contact.objects.filter(pk=customer.pk).exists()
    known.refresh_from_db()
    assert (known.phone, known.wa_username, known.name) == (f"+{phone}", username, "Ana (planilha)")
    assert ContactIdentity.objects.get(kind=IdentityKind.WHATSAPP_BSUID, value=bsuid).contact_id == known.pk
    conversation = Conversation.objects.get(contact=known, channel=channel)
    assert list(conversation.messages.values_list("body", flat=True)) == ["Oi!", "Tem sim!", "É eu"]
    merge = ContactMerge.objects.get(contact=known)
    assert merge.merged_contact_id == customer.pk and merge.merged_identities[0]["value"] == bsuid
    page = tenant_client(tenant_a, owner_a, lang="en").get(f"/contacts/{known.pk}/")
    text = page.content.decode()
    assert page.status_code == 200 and f"@{username}" in text and bsuid in text and "Merged with" in text

    # 5. With a phone known, replies go to the phone again.
    again = message_send(conversation=conversation, body="Anotado")
    with meta_emulator.capture():
        message_dispatch(message_id=again.pk)
    again.refresh_from_db()
    assert meta_emulator.sent[str(again.provider_message_id)]["to"] == phone


@pytest.mark.parametrize("form", ["user_id_update", "system"])
def test_a_phone_change_rekeys_the_contact(
    form: str, tenant_a: Tenant, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    connection.set_tenant(tenant_a)
    phone, new_phone = _unique_phone(), _unique_phone()
    with meta_emulator.capture() as hooks:
        meta_emulator.inject_inbound(phone_number_id=WA_PNID, from_phone=phone, text="oi")
    old_bsuid = _value(hooks[0])["messages"][0]["from_user_id"]
    _deliver(hooks, tenant_a)
    contact = Contact.objects.get(phone=f"+{phone}")
    with meta_emulator.capture() as hooks:
        new_bsuid = meta_emulator.phone_change(phone_number_id=WA_PNID, phone=phone, new_phone=new_phone, form=form)
    change = hooks[0]["entry"][0]["changes"][0]
    assert change["field"] == ("user_id_update" if form == "user_id_update" else "messages")
    _deliver(hooks, tenant_a)
    contact.refresh_from_db()
    assert contact.phone == f"+{new_phone}"
    values = set(ContactIdentity.objects.filter(contact=contact).values_list("value", flat=True))
    assert new_bsuid in values and old_bsuid not in values
    # A later message from the new id alone (phone withheld) is the same contact.
    with meta_emulator.capture() as hooks:
        meta_emulator.inject_inbound(phone_number_id=WA_PNID, from_phone=new_phone, withhold_phone=True, text="eu")
    _deliver(hooks, tenant_a)
    assert (
        Message.objects.get(provider_message_id=_value(hooks[0])["messages"][0]["id"]).conversation.contact == contact
    )
    assert Contact.objects.filter(pk=contact.pk).count() == 1


def test_a_bsuid_change_without_a_phone_keeps_the_phone(
    tenant_a: Tenant, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    connection.set_tenant(tenant_a)
    phone, new_phone = _unique_phone(), _unique_phone()
    with meta_emulator.capture() as hooks:
        meta_emulator.inject_inbound(phone_number_id=WA_PNID, from_phone=phone, text="oi")
    _deliver(hooks, tenant_a)
    with meta_emulator.capture() as hooks:
        new_bsuid = meta_emulator.phone_change(
            phone_number_id=WA_PNID, phone=phone, new_phone=new_phone, form="system", share_phone=False
        )
    assert _value(hooks[0])["messages"][0]["system"]["type"] == "user_changed_user_id"
    _deliver(hooks, tenant_a)
    contact = Contact.objects.get(identities__value=new_bsuid)
    assert contact.phone == f"+{phone}"


def test_failed_status_without_contacts_is_matched_by_message_id(
    tenant_a: Tenant, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    connection.set_tenant(tenant_a)
    phone = _unique_phone()
    meta_emulator.undeliverable[phone] = 131026
    try:
        message = message_send(conversation=open_conversation(channels["whatsapp"], f"+{phone}"), body="oi")
        with meta_emulator.capture() as hooks:
            message_dispatch(message_id=message.pk)
    finally:
        meta_emulator.undeliverable.pop(phone, None)
    value = _value(hooks[0])
    failed = value["statuses"][0]
    # Meta: a failed status has no contacts, and no recipient_user_id when the send went to a phone.
    assert "contacts" not in value and "recipient_user_id" not in failed and failed["status"] == "failed"
    _deliver(hooks, tenant_a)
    message.refresh_from_db()
    assert (message.status, message.error_code) == (MessageStatus.FAILED, "131026")


def test_statuses_teach_the_recipient_bsuid(
    tenant_a: Tenant, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    connection.set_tenant(tenant_a)
    phone = _unique_phone()
    conversation = open_conversation(channels["whatsapp"], f"+{phone}")
    message = message_send(conversation=conversation, body="Seu pedido saiu")
    with meta_emulator.capture() as hooks:
        message_dispatch(message_id=message.pk)
    bsuid = _value(hooks[0])["statuses"][0]["recipient_user_id"]
    _deliver(hooks, tenant_a)
    assert ContactIdentity.objects.get(value=bsuid).contact_id == conversation.contact_id


def test_preference_with_only_a_bsuid_is_matched(
    tenant_a: Tenant, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    connection.set_tenant(tenant_a)
    phone, username = _unique_phone(), f"pref.{uuid.uuid4().hex[:6]}"
    with meta_emulator.capture() as hooks:
        meta_emulator.inject_inbound(
            phone_number_id=WA_PNID, from_phone=phone, username=username, withhold_phone=True, text="oi"
        )
    _deliver(hooks, tenant_a)
    contact = Contact.objects.get(wa_username=username)
    with meta_emulator.capture() as hooks:
        meta_emulator.preference(phone_number_id=WA_PNID, phone=phone, value="stop")
    pref = _value(hooks[0])["user_preferences"][0]
    assert "wa_id" not in pref and pref["user_id"]
    _deliver(hooks, tenant_a)
    consent = ContactConsent.objects.get(contact=contact, medium="whatsapp")
    assert consent.status == ConsentStatus.MARKETING_OPTED_OUT
    assert Contact.objects.filter(wa_username=username).count() == 1


def test_parent_bsuid_is_looked_up_first_and_scopes_keep_portfolios_apart(
    tenant_a: Tenant, channels: dict[str, int]
) -> None:
    connection.set_tenant(tenant_a)
    channel = Channel.objects.get(pk=channels["whatsapp"])
    scope = channel_identity_scope(channel)
    parent = f"BR.ENT.{uuid.uuid4().int % 10**12}"
    first = contact_resolve(scope=scope, bsuid=f"BR.{uuid.uuid4().int % 10**15}", parent_bsuid=parent)
    # Another portfolio linked to the same parent: a different BSUID, the same parent, the same person.
    other = contact_resolve(scope="999000111", bsuid=f"BR.{uuid.uuid4().int % 10**15}", parent_bsuid=parent)
    assert first is not None and other == first
    # The same BSUID in another portfolio is somebody else.
    lone = f"BR.{uuid.uuid4().int % 10**15}"
    a = contact_resolve(scope=scope, bsuid=lone)
    b = contact_resolve(scope="999000222", bsuid=lone)
    assert a is not None and b is not None and a != b
    # A malformed id is no key: nothing is made from it.
    assert contact_resolve(scope=scope, bsuid="not-a-bsuid") is None
