"""Malformed but validly signed voice webhooks (Retell's call events, Twilio's incoming call): a 4xx or a
2xx that keeps nothing odd, never a 500. Property-based (hypothesis) over mutated real call objects."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tenants.models import Tenant
from tests.conftest import TWILIO_TOKEN
from tests.messaging import post_twilio
from tests.voice.conftest import in_schema, post_retell, retell_event
from tests.voice.test_webhooks import twilio_call_params
from voice.models import Call, VoiceSettings

pytestmark = pytest.mark.django_db

scalars = st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    scalars | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=15,
)
CALL_KEYS = st.sampled_from(
    ["call_id", "call_status", "direction", "from_number", "to_number", "agent_id", "metadata", "start_timestamp",
     "end_timestamp", "duration_ms", "disconnection_reason", "transcript", "transcript_object", "recording_url",
     "call_analysis", "call_cost"]
)  # fmt: skip


@given(
    event=st.sampled_from(["call_started", "call_ended", "call_analyzed", "call_weird"]),
    changes=st.dictionaries(CALL_KEYS, json_values, max_size=6),
)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(event="call_ended", changes={"duration_ms": -5})
@example(event="call_ended", changes={"duration_ms": 10**15, "call_cost": {"combined_cost": 10**20}})
@example(event="call_ended", changes={"start_timestamp": "abc", "end_timestamp": [1]})
@example(event="call_ended", changes={"metadata": "not a dict", "call_analysis": 3, "transcript_object": "x"})
@example(event="call_ended", changes={"call_id": {"nested": True}})
@example(event="call_ended", changes={"call_id": "c" * 500})
@example(event="call_ended", changes={"recording_url": "javascript:alert(1)"})
@example(event="call_ended", changes={"transcript": "nul\x00inside"})
def test_signed_odd_call_events_never_get_a_500(
    event: str, changes: dict[str, Any], voice_a: VoiceSettings, tenant_a: Tenant
) -> None:
    payload = retell_event(event if event != "call_weird" else "call_ended", "call_" + uuid.uuid4().hex[:12])
    payload["event"] = event
    payload["call"] = {**copy.deepcopy(payload["call"]), **changes}
    response = post_retell(voice_a.webhook_route, payload, voice_a.api_key)
    assert response.status_code in (204, 400), response.content
    in_schema(tenant_a)
    call = Call.objects.filter(retell_call_id=str(payload["call"].get("call_id"))[:80]).first()
    if call is not None:
        assert call.recording_url == "" or call.recording_url.startswith(("https://", "http://"))
        assert call.duration_ms is None or 0 <= call.duration_ms < 2**31


@pytest.mark.parametrize("body", [b"[]", b'"x"', b"null", b"{", b"[" * 20000 + b"]" * 20000])
def test_signed_retell_bodies_that_are_not_objects_get_400(body: bytes, voice_a: VoiceSettings) -> None:
    assert post_retell(voice_a.webhook_route, body, voice_a.api_key).status_code == 400


@pytest.mark.parametrize("call_sid", [None, "", "CA" + "x" * 100])
def test_twilio_voice_without_a_usable_call_sid_is_400(
    call_sid: str | None, voice_a: VoiceSettings, channels: dict[str, int]
) -> None:
    params = twilio_call_params("+5511987007777")
    if call_sid is None:
        del params["CallSid"]
    else:
        params["CallSid"] = call_sid
    response = post_twilio(f"/webhooks/twilio/voice/{voice_a.webhook_route}/", params, TWILIO_TOKEN)
    assert response.status_code == 400
