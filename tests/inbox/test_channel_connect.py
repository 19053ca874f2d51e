"""Connecting a number: ownership is proved with the provider before any webhook route points at it, a
route held by another channel is never moved, and routes are removed by kind and owner."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.utils import translation

from emulators.meta import App, MetaEmulator, PhoneNumber
from emulators.twilio import TwilioEmulator
from inbox.models import Channel
from inbox.services import channel_create, channel_delete
from intake.models import ChannelRoute, WebhookEvent
from intake.services import route_register
from tenants.models import Tenant
from tests.conftest import WA_PNID, WA_TOKEN, tenant_client
from tests.messaging import inbound, meta_envelope, meta_messages_value
from voice.services import ROUTE_KIND as VOICE_ROUTE

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _in_english() -> Any:
    with translation.override("en"):  # the messages below are matched in English
        yield


NEW_PNID, NEW_WABA, NEW_NUMBER = "100000000000077", "200000000000077", "+5511977770077"


@pytest.fixture
def new_number(meta_emulator: MetaEmulator) -> Any:
    meta_emulator.numbers[NEW_PNID] = PhoneNumber(NEW_WABA, "+55 11 97777-0077", "new-token")
    meta_emulator.numbers["100000000000088"] = PhoneNumber("200000000000088", "+5511977770088", "new-token")
    yield NEW_PNID
    meta_emulator.numbers.pop(NEW_PNID, None)
    meta_emulator.numbers.pop("100000000000088", None)


def _cloud(pnid: str = NEW_PNID, waba: str = NEW_WABA, token: str = "new-token", **creds: str) -> Channel:  # noqa: S107
    return channel_create(
        kind="whatsapp_cloud",
        name="Vendas",
        phone_number=NEW_NUMBER,
        credentials={"access_token": token, **creds},
        waba_id=waba,
        phone_number_id=pnid,
    )


def test_cloud_number_connects_only_when_the_token_can_use_it(in_tenant_a: Tenant, new_number: str) -> None:
    with pytest.raises(ValidationError, match="refused the access token"):
        _cloud(token="no-such-token")
    with pytest.raises(ValidationError, match="cannot use phone number ID"):
        _cloud(token=WA_TOKEN)  # a valid token, of another business
    with pytest.raises(ValidationError, match="not part of WABA"):
        _cloud(waba="200000000000088")  # a WABA the token sees, but not this number's
    assert not ChannelRoute.objects.filter(external_id=NEW_PNID).exists()
    assert not Channel.objects.filter(phone_number_id=NEW_PNID).exists()

    channel = _cloud()
    route = ChannelRoute.objects.get(kind="whatsapp_cloud", external_id=NEW_PNID)
    assert (route.tenant_id, route.channel_id) == (connection.tenant.pk, channel.pk)


def test_the_number_typed_must_be_the_one_meta_shows(in_tenant_a: Tenant, new_number: str) -> None:
    with pytest.raises(ValidationError, match="belongs to \\+5511977770077"):
        channel_create(
            kind="whatsapp_cloud",
            name="x",
            phone_number="+5511966660000",
            credentials={"access_token": "new-token"},
            waba_id=NEW_WABA,
            phone_number_id=NEW_PNID,
        )


@pytest.mark.parametrize("pnid", ["http://169.254.169.254/latest", "../me", "12 34", "", "1" * 21, "١٢٣"], ids=repr)
def test_meta_ids_must_be_digits(in_tenant_a: Tenant, meta_emulator: MetaEmulator, pnid: str) -> None:
    with pytest.raises(ValidationError, match="digits only"):
        _cloud(pnid=pnid)


def test_another_tenant_cannot_take_over_a_connected_number(
    tenant_b: Tenant, channels: dict[str, int], meta_emulator: MetaEmulator
) -> None:
    """Beta types Alpha's phone number id: without Alpha's token Meta does not show it; with it (say a
    leaked token, or the number moved between workspaces) the route is still Alpha's."""
    connection.set_tenant(tenant_b)
    before = ChannelRoute.objects.get(kind="whatsapp_cloud", external_id=WA_PNID)
    meta_emulator.numbers["100000000000055"] = PhoneNumber("200000000000055", "+5511955550055", "beta-token")
    for token, message in (("beta-token", "cannot use phone number ID"), (WA_TOKEN, "already connected")):
        with pytest.raises(ValidationError, match=message):
            channel_create(
                kind="whatsapp_cloud",
                name="Hijack",
                phone_number="+5511911110000",
                credentials={"access_token": token},
                waba_id="200000000000001",
                phone_number_id=WA_PNID,
            )
    after = ChannelRoute.objects.get(kind="whatsapp_cloud", external_id=WA_PNID)
    assert (after.tenant_id, after.channel_id) == (before.tenant_id, before.channel_id)
    assert not Channel.objects.filter(name="Hijack").exists()  # rolled back with the refused route


def test_route_register_never_moves_a_route(tenant_a: Tenant, tenant_b: Tenant, db: Any) -> None:
    from intake.services import RouteTaken

    route_register(kind="sms_twilio", external_id="AC1:+551100", tenant_id=tenant_a.pk, channel_id=7)
    route_register(kind="sms_twilio", external_id="AC1:+551100", tenant_id=tenant_a.pk, channel_id=7)  # same owner
    with pytest.raises(RouteTaken):
        route_register(kind="sms_twilio", external_id="AC1:+551100", tenant_id=tenant_b.pk, channel_id=7)
    with pytest.raises(RouteTaken):
        route_register(kind="sms_twilio", external_id="AC1:+551100", tenant_id=tenant_a.pk, channel_id=8)
    route = ChannelRoute.objects.get(external_id="AC1:+551100")
    assert (route.tenant_id, route.channel_id) == (tenant_a.pk, 7)


def test_twilio_number_connects_only_with_its_own_account(in_tenant_a: Tenant, twilio_emulator: TwilioEmulator) -> None:
    sid, token, number = "AC" + "c3" * 16, "own-token", "+5511955550001"
    twilio_emulator.accounts[sid] = token
    twilio_emulator.numbers[number] = sid
    twilio_emulator.numbers["+5511955550002"] = "AC" + "a1" * 16  # somebody else's number

    def connect(**overrides: str) -> Channel:
        fields = {"account_sid": sid, "auth_token": token, "phone_number": number, **overrides}
        return channel_create(
            kind="sms_twilio",
            name="SMS",
            phone_number=fields["phone_number"],
            credentials={"account_sid": fields["account_sid"], "auth_token": fields["auth_token"]},
        )

    with pytest.raises(ValidationError, match="starts with AC"):
        connect(account_sid="ACnot-a-sid")
    with pytest.raises(ValidationError, match="refused this Account SID"):
        connect(auth_token="wrong")
    with pytest.raises(ValidationError, match="is not a number of this Twilio account"):
        connect(phone_number="+5511955550002")
    channel = connect()
    assert ChannelRoute.objects.filter(kind="sms_twilio", external_id=f"{sid}:{number}", channel_id=channel.pk).exists()


def test_deleting_a_channel_keeps_the_voice_route_that_shares_its_id(
    in_tenant_a: Tenant, tenant_a: Tenant, new_number: str
) -> None:
    channel = _cloud()
    voice_key = f"voice-{uuid.uuid4().hex[:8]}"
    ChannelRoute.objects.create(kind=VOICE_ROUTE, external_id=voice_key, tenant=tenant_a, channel_id=channel.pk)
    channel_delete(channel=channel)
    assert not ChannelRoute.objects.filter(kind="whatsapp_cloud", external_id=NEW_PNID).exists()
    assert ChannelRoute.objects.filter(kind=VOICE_ROUTE, external_id=voice_key).exists()


def _signed_post(client: Client, url: str, body: dict[str, Any], secret: str) -> Any:
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return client.post(url, data=raw, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=signature)


def test_own_meta_app_has_its_own_webhook_secret_and_signs_only_for_its_numbers(
    in_tenant_a: Tenant, tenant_a: Tenant, owner_a: Any, new_number: str, meta_emulator: MetaEmulator
) -> None:
    meta_emulator.apps["300000000000077"] = App(
        secret="own-app-secret", webhook_url="unused", tokens=frozenset({"new-token"})
    )
    with pytest.raises(ValidationError, match="refused the app ID and app secret"):
        _cloud(app_id="300000000000077", app_secret="wrong", verify_token="vt")
    meta_emulator.numbers["100000000000078"] = PhoneNumber(NEW_WABA, "+55 11 97777-0077", "other-token")
    with pytest.raises(ValidationError, match="not issued by app"):
        _cloud(
            "100000000000078",
            token="other-token",
            app_id="300000000000077",
            app_secret="own-app-secret",
            verify_token="v",
        )
    channel = _cloud(app_id="300000000000077", app_secret="own-app-secret", verify_token="own-verify")
    key = channel.credentials["webhook_key"]
    assert ChannelRoute.objects.filter(kind="whatsapp_app", external_id=key, channel_id=channel.pk).exists()

    page = tenant_client(tenant_a, owner_a, lang="en").get("/channels/").content.decode()
    assert f"/webhooks/whatsapp/app/{key}/" in page and "own-app-secret" not in page

    public = Client(HTTP_HOST="localhost")
    url = f"/webhooks/whatsapp/app/{key}/"
    verify = {"hub.mode": "subscribe", "hub.challenge": "42"}
    assert public.get(url, {**verify, "hub.verify_token": "own-verify"}).content == b"42"
    assert public.get(url, {**verify, "hub.verify_token": "test-verify-token"}).status_code == 403
    assert public.get("/webhooks/whatsapp/app/nope/", verify).status_code == 404

    ours = meta_envelope(
        meta_messages_value(messages=[inbound("text", "wamid.own-1")], pnid=NEW_PNID), entry_id=NEW_WABA
    )
    theirs = meta_envelope(meta_messages_value(messages=[inbound("text", "wamid.own-2")], pnid=WA_PNID))
    assert _signed_post(public, url, ours, "test-app-secret").status_code == 403  # the platform's secret is not its
    both = {"object": "whatsapp_business_account", "entry": ours["entry"] + theirs["entry"]}
    assert _signed_post(public, url, both, "own-app-secret").status_code == 200
    assert WebhookEvent.objects.filter(event_id="msg:wamid.own-1", route_key=NEW_PNID).exists()
    assert not WebhookEvent.objects.filter(event_id="msg:wamid.own-2").exists()  # Alpha's other number: dropped
    meta_emulator.numbers.pop("100000000000078", None)
    meta_emulator.apps.pop("300000000000077", None)
