"""Twilio's MediaUrl0 arrives in a webhook signed with the tenant's own auth token, so a tenant can make it
point anywhere: it is fetched through the URL guard, from Twilio's hosts (here: the emulator's) only."""

from __future__ import annotations

import re
import secrets

import pytest
from django.db import connection

from emulators.twilio import TwilioEmulator
from inbox.ingest import drain_batch
from inbox.models import Message
from inbox.providers import ErrorKind, ProviderError
from inbox.services import media_store
from sms.providers import media_redirect_hosts, media_source_hosts
from tenants.models import Tenant
from tests.conftest import TWILIO_TOKEN
from tests.messaging import post_twilio
from tests.sms.test_webhooks import inbound_params

pytestmark = pytest.mark.django_db


def _inbound_with_media(tenant: Tenant, media_url: str, mime: str = "image/jpeg") -> Message:
    params = inbound_params("foto", NumMedia="1", MediaUrl0=media_url, MediaContentType0=mime)
    assert post_twilio("/webhooks/twilio/inbound/", params, TWILIO_TOKEN).status_code == 200
    drain_batch()
    connection.set_tenant(tenant)
    return Message.objects.get(provider_message_id=params["MessageSid"])


def test_media_from_twilio_is_fetched_with_the_account_credentials(
    tenant_a: Tenant, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    media_id = "ME" + secrets.token_hex(16)
    twilio_emulator.media[media_id] = (b"\xff\xd8\xff\xe0jpeg", "image/jpeg")
    message = _inbound_with_media(tenant_a, f"{twilio_emulator.base_url}/media/{media_id}")
    media_store(message_id=message.pk)
    message.refresh_from_db()
    assert message.media.read() == b"\xff\xd8\xff\xe0jpeg"
    assert re.search(rf"/image-{message.pk}(_\w+)?\.jpg$", message.media.name)  # our name, the type's extension


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://10.0.0.5/internal",
        "https://attacker.example/collect",  # a public host, but not Twilio's: the credentials stay home
        "file:///etc/passwd",
    ],
)
def test_media_urls_outside_twilio_are_never_fetched(url: str, tenant_a: Tenant, channels: dict[str, int]) -> None:
    message = _inbound_with_media(tenant_a, url)
    assert message.provider_media_id == url  # the message itself is kept
    with pytest.raises(ProviderError) as refused:
        media_store(message_id=message.pk)
    assert refused.value.kind == ErrorKind.PERMANENT
    assert TWILIO_TOKEN not in str(refused.value)
    message.refresh_from_db()
    assert not message.media


def test_loopback_names_other_than_the_configured_api_host_are_refused(
    tenant_a: Tenant, channels: dict[str, int], twilio_emulator: TwilioEmulator
) -> None:
    """With loopback allowed for the emulators, another loopback service is still not Twilio."""
    media_id = "ME" + secrets.token_hex(16)
    twilio_emulator.media[media_id] = (b"secret", "text/plain")
    port = twilio_emulator.server_address[1]
    message = _inbound_with_media(tenant_a, f"http://localhost:{port}/media/{media_id}")
    with pytest.raises(ProviderError):
        media_store(message_id=message.pk)


def test_twilio_hosts_are_allowed_and_their_cdn_only_after_a_redirect() -> None:
    assert "api.twilio.com" in media_source_hosts()
    assert "127.0.0.1" in media_source_hosts()  # TWILIO_API_BASE_URL: the emulator
    assert ".twiliocdn.com" in media_redirect_hosts() and ".twiliocdn.com" not in media_source_hosts()
