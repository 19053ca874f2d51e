"""Embedded Signup (v4) against the Meta emulator: its popup answers as Meta's window does (the session-info
message and a code), the browser's relay is posted to our endpoint, and the endpoint exchanges the code,
checks every id with Meta, creates the channel, registers the number (not for coexistence) and subscribes
the platform's app. Nothing the browser relays is trusted."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import translation

from accounts.models import AuditAction, AuditEntry, User
from emulators.meta import MetaEmulator
from emulators.meta_signup import SignupNumber
from inbox.models import Channel, ChannelOnboarding
from intake.models import ChannelRoute
from tenants.models import Tenant
from tests.conftest import WA_PNID, WA_WABA, tenant_client
from whatsapp.client import GraphClient, GraphError

pytestmark = pytest.mark.django_db

SIGNUP_URL = "/channels/whatsapp/signup/"
PLAIN = SignupNumber("100000000000301", "200000000000301", "+55 11 93000-0301", "Padaria Sol", "400000000000301")
BIZ_APP = SignupNumber(
    "100000000000302", "200000000000302", "+55 11 93000-0302", "Loja Lua", "400000000000302", business_app=True
)
ORIGIN = "http://alpha.localhost"


@pytest.fixture(autouse=True)
def _in_english() -> Iterator[None]:
    with translation.override("en"):
        yield


@pytest.fixture
def signup(meta_emulator: MetaEmulator) -> Iterator[MetaEmulator]:
    """Two numbers a business can pick in Meta's window; what onboarding left on the emulator is removed."""
    meta_emulator.signup.catalog = [PLAIN, BIZ_APP]
    yield meta_emulator
    meta_emulator.signup.catalog = []
    meta_emulator.signup.code_ttl_s = 30.0
    for number in (PLAIN, BIZ_APP):
        meta_emulator.numbers.pop(number.phone_number_id, None)
        meta_emulator.signup.registered.pop(number.phone_number_id, None)
        meta_emulator.signup.subscribed.pop(number.waba_id, None)


def _stringified(page: str) -> list[dict[str, Any]]:
    """The messages the popup's script posts to its opener (JSON.stringify({...}) literals)."""
    decoder, found, start = json.JSONDecoder(), [], 0
    while (at := page.find("JSON.stringify(", start)) != -1:
        value, end = decoder.raw_decode(page, at + len("JSON.stringify("))
        found.append(value)
        start = end
    return found


def meta_window(
    emulator: MetaEmulator, *, action: str = "finish", number: SignupNumber = PLAIN, keep_app: bool = False
) -> tuple[dict[str, Any], str | None]:
    """Go through the emulator's Embedded Signup window over HTTP as FB.login opens it: (session-info
    message, code)."""
    version = settings.META_GRAPH_VERSION
    query = {
        "app_id": settings.META_APP_ID,
        "config_id": settings.META_ES_CONFIG_ID,
        "response_type": "code",
        "override_default_response_type": "true",
        "extras": json.dumps(
            {"setup": {}, "featureType": "whatsapp_business_app_onboarding", "sessionInfoVersion": "3", "version": "v4"}
        ),
        "origin": ORIGIN,
    }
    page = httpx.get(f"{emulator.base_url}/{version}/dialog/oauth", params=query)
    assert page.status_code == 200 and number.display_phone_number in page.text
    assert "Keep using the WhatsApp Business app" in page.text  # offered: featureType asks for it
    form = {
        "app_id": settings.META_APP_ID,
        "origin": ORIGIN,
        "coexistence_offered": "True",
        "number": number.phone_number_id,
        "action": action,
    }
    if keep_app:
        form["business_app"] = "1"
    answer = httpx.post(f"{emulator.base_url}/{version}/dialog/oauth", data=form)
    session, login = _stringified(answer.text)
    assert session["type"] == "WA_EMBEDDED_SIGNUP" and login["type"] == "EMULATOR_FB_LOGIN"
    return session, login["code"]


def relay(client: Client, session: dict[str, Any], code: str | None, **override: str) -> Any:
    """What static/js/embedded_signup.js posts: the code and the session-info message's event and ids."""
    data = session.get("data") or {}
    body = {
        "code": code or "",
        "event": session["event"],
        "waba_id": data.get("waba_id", ""),
        "phone_number_id": data.get("phone_number_id", ""),
        "business_id": data.get("business_id", ""),
        **override,
    }
    return client.post(SIGNUP_URL, body)


def test_a_business_connects_its_number_through_embedded_signup(
    in_tenant_a: Tenant, owner_a: User, signup: MetaEmulator
) -> None:
    session, code = meta_window(signup)
    assert session["event"] == "FINISH" and code
    assert session["data"] == {
        "phone_number_id": PLAIN.phone_number_id,
        "waba_id": PLAIN.waba_id,
        "business_id": PLAIN.business_id,
    }

    response = relay(tenant_client(in_tenant_a, owner_a, lang="en"), session, code)
    assert response.status_code == 200, response.content
    assert response.json()["redirect"] == "/channels/"
    channel = Channel.objects.get(phone_number_id=PLAIN.phone_number_id)
    assert (channel.name, channel.phone_number, channel.waba_id) == ("Padaria Sol", "+5511930000301", PLAIN.waba_id)
    assert (channel.onboarding, channel.coexistence) == (ChannelOnboarding.EMBEDDED_SIGNUP, False)
    token = channel.credentials["access_token"]
    assert signup.signup.grants[token].waba_id == PLAIN.waba_id  # the business token Meta issued for the code
    assert re.fullmatch(r"[0-9]{6}", signup.signup.registered[PLAIN.phone_number_id])
    assert signup.signup.registered[PLAIN.phone_number_id] == channel.credentials["pin"]
    assert signup.signup.subscribed[PLAIN.waba_id] == {settings.META_APP_ID}
    audit = AuditEntry.objects.filter(tenant=in_tenant_a, action=AuditAction.CHANNEL_CREDENTIALS, actor=owner_a)
    assert audit.get().metadata == {"kind": "whatsapp_cloud", "change": "created", "onboarding": "embedded_signup"}
    routes = ChannelRoute.objects.filter(channel_id=channel.pk, tenant_id=in_tenant_a.pk)
    assert set(routes.values_list("kind", "external_id")) == {
        ("whatsapp_cloud", PLAIN.phone_number_id),
        ("whatsapp_waba", PLAIN.waba_id),
    }


def test_coexistence_is_recorded_and_the_number_is_not_registered(
    in_tenant_a: Tenant, owner_a: User, signup: MetaEmulator
) -> None:
    """Keeping the WhatsApp Business app: the number is already registered there; registering it for Cloud
    API would take it away from the app, so only the webhooks are subscribed."""
    session, code = meta_window(signup, number=BIZ_APP, keep_app=True)
    assert session["event"] == "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING"
    response = relay(tenant_client(in_tenant_a, owner_a, lang="en"), session, code)
    assert response.status_code == 200, response.content
    channel = Channel.objects.get(phone_number_id=BIZ_APP.phone_number_id)
    assert (channel.onboarding, channel.coexistence) == (ChannelOnboarding.EMBEDDED_SIGNUP, True)
    assert BIZ_APP.phone_number_id not in signup.signup.registered
    assert signup.signup.subscribed[BIZ_APP.waba_id] == {settings.META_APP_ID}


def test_coexistence_is_what_meta_says_not_what_the_browser_relays(
    in_tenant_a: Tenant, owner_a: User, signup: MetaEmulator
) -> None:
    session, code = meta_window(signup)  # a plain Cloud API number
    response = relay(
        tenant_client(in_tenant_a, owner_a), session, code, event="FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING"
    )
    assert response.status_code == 200, response.content
    assert not Channel.objects.get(phone_number_id=PLAIN.phone_number_id).coexistence
    assert PLAIN.phone_number_id in signup.signup.registered


def test_cancel_and_error_connect_nothing(in_tenant_a: Tenant, owner_a: User, signup: MetaEmulator) -> None:
    client = tenant_client(in_tenant_a, owner_a, lang="en")
    for action, event in (("cancel", "CANCEL"), ("error", "ERROR")):
        session, code = meta_window(signup, action=action)
        assert session["event"] == event and code is None
        response = relay(client, session, code)
        assert response.status_code == 400 and "did not finish" in response.json()["error"]
    assert session["data"]["error_message"]
    assert not Channel.objects.filter(phone_number_id=PLAIN.phone_number_id).exists()


def test_a_waba_without_a_number_asks_for_one(in_tenant_a: Tenant, owner_a: User, signup: MetaEmulator) -> None:
    session, code = meta_window(signup, action="only_waba")
    assert session["event"] == "FINISH_ONLY_WABA" and "phone_number_id" not in session["data"] and code
    response = relay(tenant_client(in_tenant_a, owner_a, lang="en"), session, code)
    assert response.status_code == 400 and "no phone number was added" in response.json()["error"]
    assert response.json()["code"] == "no_number"


def test_a_code_works_once_and_expires(in_tenant_a: Tenant, owner_a: User, signup: MetaEmulator) -> None:
    client = tenant_client(in_tenant_a, owner_a, lang="en")
    session, code = meta_window(signup)
    assert relay(client, session, code).status_code == 200
    again = relay(client, session, code)
    assert again.status_code == 400 and again.json()["code"] == "code_expired"
    assert "Click Connect WhatsApp to try again" in again.json()["error"]
    assert Channel.objects.filter(phone_number_id=PLAIN.phone_number_id).count() == 1

    signup.signup.code_ttl_s = 0.05
    session, code = meta_window(signup, number=BIZ_APP)
    time.sleep(0.1)
    late = relay(client, session, code)
    assert late.status_code == 400 and late.json()["code"] == "code_expired"
    assert not Channel.objects.filter(phone_number_id=BIZ_APP.phone_number_id).exists()


def test_the_emulator_binds_codes_to_the_app_and_its_secret(signup: MetaEmulator) -> None:
    _session, code = meta_window(signup)
    assert code
    client = GraphClient("")
    with pytest.raises(GraphError) as wrong_secret:
        client.exchange_code(app_id=settings.META_APP_ID, app_secret="not-the-secret", code=code)
    assert (wrong_secret.value.code, wrong_secret.value.message) == (1, "Error validating client secret.")
    with pytest.raises(GraphError) as other_app:
        client.exchange_code(app_id="999999", app_secret=settings.META_APP_SECRET, code=code)
    assert other_app.value.code == 101
    token = client.exchange_code(app_id=settings.META_APP_ID, app_secret=settings.META_APP_SECRET, code=code)
    assert token  # the failed attempts did not use the code up
    with pytest.raises(GraphError) as used:
        client.exchange_code(app_id=settings.META_APP_ID, app_secret=settings.META_APP_SECRET, code=code)
    assert (used.value.code, used.value.subcode) == (100, 36009)


def test_ids_the_token_was_not_granted_are_refused(in_tenant_a: Tenant, owner_a: User, signup: MetaEmulator) -> None:
    """A relay that swaps in another business's ids (the fixture's number, another WABA) connects nothing:
    the business token Meta gave for this code was granted one WABA, and sees only its numbers."""
    client = tenant_client(in_tenant_a, owner_a, lang="en")
    session, code = meta_window(signup)
    other_waba = relay(client, session, code, waba_id=WA_WABA, phone_number_id=WA_PNID)
    assert other_waba.status_code == 400 and other_waba.json()["code"] == "waba_not_granted"
    session, code = meta_window(signup)
    other_number = relay(client, session, code, phone_number_id=WA_PNID)
    assert other_number.status_code == 400 and other_number.json()["code"] == "number_not_granted"
    link = relay(client, session, "x", phone_number_id="https://evil.example/")
    assert link.status_code == 400 and link.json()["code"] == "ids"
    assert (
        not Channel.objects.filter(phone_number_id__in=[PLAIN.phone_number_id, WA_PNID])
        .exclude(name="WhatsApp Alpha")
        .exists()
    )
    assert PLAIN.phone_number_id not in signup.signup.registered


def test_a_number_another_workspace_holds_is_refused(
    tenant_a: Tenant, tenant_b: Tenant, owner_a: User, signup: MetaEmulator
) -> None:
    """Beta connected the number first. Alpha's admins can go through Meta's window for it too (say the
    business has both as partners); the route stays Beta's, and the number is not registered again (a new
    PIN would lock Beta out)."""
    from accounts.models import Role
    from tests.support import make_member

    owner_b = make_member(tenant_b, f"owner-es-{time.time_ns()}@beta.test", Role.OWNER)
    connection.set_tenant(tenant_b)
    session, code = meta_window(signup)
    assert relay(tenant_client(tenant_b, owner_b), session, code).status_code == 200
    beta_channel = Channel.objects.get(phone_number_id=PLAIN.phone_number_id)
    pin = signup.signup.registered[PLAIN.phone_number_id]

    connection.set_tenant(tenant_a)
    session, code = meta_window(signup)
    refused = relay(tenant_client(tenant_a, owner_a, lang="en"), session, code)
    assert refused.status_code == 400 and "already connected to a workspace" in refused.json()["error"]
    assert not Channel.objects.filter(phone_number_id=PLAIN.phone_number_id).exists()  # none in Alpha
    assert signup.signup.registered[PLAIN.phone_number_id] == pin
    route = ChannelRoute.objects.get(kind="whatsapp_cloud", external_id=PLAIN.phone_number_id)
    assert (route.tenant_id, route.channel_id) == (tenant_b.pk, beta_channel.pk)


def test_a_number_meta_will_not_activate_leaves_nothing_connected(
    in_tenant_a: Tenant, owner_a: User, signup: MetaEmulator
) -> None:
    signup.fail_next.append(131000)  # register answers "Something went wrong"
    session, code = meta_window(signup)
    response = relay(tenant_client(in_tenant_a, owner_a, lang="en"), session, code)
    assert response.status_code == 400 and "refused to activate this number" in response.json()["error"]
    assert not Channel.objects.filter(phone_number_id=PLAIN.phone_number_id).exists()
    assert not ChannelRoute.objects.filter(external_id__in=[PLAIN.phone_number_id, PLAIN.waba_id]).exists()
    assert PLAIN.waba_id not in signup.signup.subscribed


def test_only_channel_managers_with_the_csrf_token(
    in_tenant_a: Tenant, owner_a: User, agent_a: User, signup: MetaEmulator
) -> None:
    session, code = meta_window(signup)
    assert relay(tenant_client(in_tenant_a, agent_a), session, code).status_code == 403
    strict = tenant_client(in_tenant_a, owner_a)
    strict.handler.enforce_csrf_checks = True
    assert relay(strict, session, code).status_code == 403  # no CSRF token: refused before anything is called
    assert relay(tenant_client(in_tenant_a, owner_a), session, code).status_code == 200  # the code was not spent


def test_channels_page_launches_embedded_signup(in_tenant_a: Tenant, owner_a: User, agent_a: User) -> None:
    page = tenant_client(in_tenant_a, owner_a, lang="en").get("/channels/")
    html = page.content.decode()
    assert page.status_code == 200
    for expected in (
        f'data-app-id="{settings.META_APP_ID}"',
        f'data-config-id="{settings.META_ES_CONFIG_ID}"',
        f'data-origins="{" ".join(settings.META_ES_ORIGINS)}"',
        'data-feature-type="whatsapp_business_app_onboarding"',
        'data-es-version="v4"',
        f'src="{settings.META_SDK_URL}"',
        'action="/channels/whatsapp/signup/"',
        "Advanced: your own Meta app",
    ):
        assert expected in html, expected
    sdk_origin = settings.META_SDK_URL.rsplit("/", 1)[0]
    assert sdk_origin in page["Content-Security-Policy"].split("script-src", 1)[1].split(";")[0]
    assert page["Cross-Origin-Opener-Policy"] == "same-origin-allow-popups"
    agents = tenant_client(in_tenant_a, agent_a).get("/channels/")
    assert "wa-signup" not in agents.content.decode()
    assert sdk_origin not in agents["Content-Security-Policy"]


def test_pt_br_messages(in_tenant_a: Tenant, owner_a: User, signup: MetaEmulator) -> None:
    session, code = meta_window(signup, action="only_waba")
    with translation.override("pt-br"):
        response = relay(tenant_client(in_tenant_a, owner_a, lang="pt-br"), session, code)
    assert response.status_code == 400 and "nenhum número de telefone" in response.json()["error"]
    page = tenant_client(in_tenant_a, owner_a, lang="pt-br").get("/channels/").content.decode()
    assert "Conectar WhatsApp" in page and "Avançado: seu próprio app da Meta" in page
