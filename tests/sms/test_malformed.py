"""Malformed but validly signed Twilio SMS callbacks: 400 without MessageSid, never a 500, and a stored
callback the provider cannot read is recorded once, not retried. Property-based (hypothesis) over
arbitrary form fields, through the webhook as registered and through the provider's parse_event."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from inbox.providers import InboundMessage, PayloadError, StatusUpdate
from intake.models import WebhookEvent
from sms.providers import MAX_MEDIA, TwilioSmsProvider
from tests.conftest import TWILIO_TOKEN
from tests.messaging import post_twilio
from tests.sms.test_webhooks import inbound_params

pytestmark = pytest.mark.django_db

# Form values as Twilio's signature covers them: any text but NUL-free keys (a form cannot carry others).
FIELDS = st.sampled_from(
    ["MessageSid", "SmsSid", "From", "To", "Body", "NumMedia", "MediaUrl0", "MediaContentType0", "MediaUrl1",
     "MessageStatus", "ErrorCode", "AccountSid", "OptOutType", "ProfileName"]
)  # fmt: skip
forms = st.dictionaries(FIELDS | st.text(min_size=1, max_size=10), st.text(max_size=40), max_size=8)


@pytest.mark.parametrize("path", ["/webhooks/twilio/inbound/", "/webhooks/twilio/status/"])
def test_a_signed_callback_without_message_sid_is_400_and_stores_nothing(path: str, channels: dict[str, int]) -> None:
    params = {k: v for k, v in inbound_params("oi", MessageStatus="delivered").items() if k != "MessageSid"}
    if path.endswith("status/"):
        params["From"], params["To"] = params["To"], params["From"]  # a status is from our number
    before = WebhookEvent.objects.count()
    response = post_twilio(path, params, TWILIO_TOKEN)
    assert response.status_code == 400 and b"MessageSid" in response.content
    assert WebhookEvent.objects.count() == before


def test_a_status_without_its_status_is_400(channels: dict[str, int]) -> None:
    params = inbound_params("x")
    params["From"], params["To"] = params["To"], params["From"]
    assert post_twilio("/webhooks/twilio/status/", params, TWILIO_TOKEN).status_code == 400


@given(extra=forms)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(extra={"MessageSid": "{0}", "Body": "{MessageSid}"})
@example(extra={"MessageSid": "SM" + "x" * 400})
@example(extra={"MessageSid": "SM1", "NumMedia": "99999999999"})
@example(extra={"MessageSid": "SM1\x00", "Body": "nul\x00"})
def test_signed_odd_forms_never_get_a_500(extra: dict[str, str], channels: dict[str, int]) -> None:
    base = inbound_params("x")
    params = {**base, **{k: v for k, v in extra.items() if k not in {"AccountSid", "To"}}}
    for path in ("/webhooks/twilio/inbound/", "/webhooks/twilio/status/"):
        response = post_twilio(path, params, TWILIO_TOKEN)
        assert response.status_code in (200, 400, 403), response.content


@given(forms, st.sampled_from(["inbound", "status"]))
@settings(max_examples=400, deadline=None)
@example({"MessageSid": "SM1", "From": "+1", "NumMedia": "-3"}, "inbound")
@example({"MessageSid": "SM1", "From": "+1", "NumMedia": "1" * 50}, "inbound")
@example({"MessageStatus": "delivered"}, "status")
def test_parse_event_returns_events_or_payload_error(form: dict[str, str], kind: str) -> None:
    try:
        events = TwilioSmsProvider.parse_event({"kind": kind, "form": form})
    except PayloadError:
        return
    assert all(isinstance(e, InboundMessage | StatusUpdate) for e in events)
    for event in events:
        if isinstance(event, InboundMessage):
            assert len(event.payload.get("media", [])) <= MAX_MEDIA


@pytest.mark.parametrize(
    "payload",
    [{}, {"form": "x"}, {"kind": "status", "form": {"MessageStatus": "read"}}, {"form": {"MessageSid": "SM"}}],
)
def test_unreadable_stored_callbacks_are_payload_errors(payload: dict[str, Any]) -> None:
    with pytest.raises(PayloadError):
        TwilioSmsProvider.parse_event(payload)


def test_a_nul_in_our_number_is_refused_not_500(channels: dict[str, int]) -> None:
    params = inbound_params("x", MessageStatus="delivered")
    params["From"], params["To"] = "\x00", params["From"]
    assert post_twilio("/webhooks/twilio/status/", params, TWILIO_TOKEN).status_code == 403
