"""Malformed but validly signed Meta deliveries: a 4xx or a 200 that stores nothing, never a 500 (Meta
redelivers a 500 for days). Property-based (hypothesis) over arbitrary JSON and over mutations of the
real fixtures, for split_events, the provider's parse_event, the stored row, and the ASGI intake path
production serves (uvicorn, POST /webhooks/whatsapp/); then the drain over odd stored payloads."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import os
import uuid
from typing import Any

import httpx
import pytest
from django.db import connection
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from inbox.ingest import drain_batch
from inbox.providers import Event, PayloadError
from intake.models import WebhookEvent
from intake.services import RawEvent, insert_statement
from tests.conftest import WA_PNID
from tests.messaging import fixture, inbound, meta_envelope, meta_messages_value, status
from tests.support import wait_until
from whatsapp.providers import CloudProvider
from whatsapp.webhooks import json_loads_strict, split_events

# Any JSON value (numbers jsonb can hold; NaN and overflow are 400s, tested below).
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
# Text includes what JSON can carry but PostgreSQL cannot store as is: lone surrogates and NUL.
odd_text = st.text(st.characters(codec=None, categories=["Cs", "Cc", "Zs", "Lu", "Ll", "Nd", "So"]), max_size=12)
json_values = st.recursive(
    scalars | st.text(max_size=30) | odd_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)
META_KEYS = st.sampled_from(
    ["entry", "changes", "field", "value", "messages", "statuses", "id", "status", "metadata", "phone_number_id",
     "contacts", "profile", "wa_id", "type", "text", "timestamp", "errors", "user_preferences", "from", "context"]
)  # fmt: skip


def _real_envelopes() -> list[dict[str, Any]]:
    """Whole deliveries built from the fixtures, for a number no channel has (nothing fuzzed is applied)."""
    wamid = "wamid.fuzz"
    kinds = list(fixture("inbound_messages.json"))
    messages = [inbound(kind, f"{wamid}.{kind}") for kind in kinds]
    statuses = [status(kind, f"{wamid}.st") for kind in fixture("statuses.json")]
    pnid, waba = "pnid-fuzz-unrouted", "waba-fuzz-unrouted"
    preferences = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "5511911110000", "phone_number_id": pnid},
        "user_preferences": [fixture("user_preferences.json")],
    }
    return [
        meta_envelope(meta_messages_value(messages=messages, pnid=pnid), entry_id=waba),
        meta_envelope(meta_messages_value(statuses=statuses, pnid=pnid), entry_id=waba),
        meta_envelope(fixture("template_status.json"), field="message_template_status_update", entry_id=waba),
        meta_envelope(preferences, field="user_preferences", entry_id=waba),
        *(  # coexistence: echoes, history chunks and its decline, the app's address book
            meta_envelope(
                {**value, "metadata": {"phone_number_id": pnid}}, field=field.removesuffix("_declined"), entry_id=waba
            )
            for field, value in fixture("coexistence.json").items()
        ),
    ]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated_envelopes(draw: st.DrawFn) -> Any:
    """A real delivery with a few subtrees replaced, removed, or given Meta keys with odd values."""
    body = copy.deepcopy(draw(st.sampled_from(_real_envelopes())))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(body)
        path = draw(st.sampled_from(paths))
        if not path:
            body = draw(json_values)
            continue
        parent = body
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(META_KEYS)] = draw(json_values)
        if not isinstance(body, dict | list):
            break
    return body


def _parse_all(body: Any) -> list[Event]:
    """split_events, then each stored event through the provider, as the drain would."""
    raw = split_events(body)
    assert all(isinstance(e, RawEvent) for e in raw)
    insert_statement(raw, "meta")  # the row is storable: ids bounded, no NUL, no NaN
    events: list[Event] = []
    for item in raw:
        stored = json.loads(json.dumps(item.payload))  # what jsonb gives back
        with contextlib.suppress(PayloadError):  # the one documented refusal
            events += CloudProvider.parse_event(stored)
    return events


@given(json_values)
@settings(max_examples=400, deadline=None)
@example({"entry": {"id": "not a list"}})
@example({"entry": [{"changes": [{"field": "messages", "value": {"messages": [{"type": "text"}]}}]}]})
@example({"entry": [{"changes": [{"field": "messages", "value": {"statuses": [{"id": "w"}]}}]}]})
@example({"entry": [None, 1, "x", {"changes": "nope"}]})
@example([1, 2, 3])
@example("just a string")
def test_split_events_is_total_over_any_json(body: Any) -> None:
    _parse_all(body)


@given(mutated_envelopes())
@settings(max_examples=400, deadline=None)
def test_mutated_real_deliveries_parse_or_are_refused_as_bad_payload(body: Any) -> None:
    _parse_all(body)


def test_items_without_their_ids_are_skipped_not_errors() -> None:
    good = inbound("text", "wamid.good")
    no_id = {k: v for k, v in inbound("text", "wamid.x").items() if k != "id"}
    odd_ids = [dict(good, id=None), dict(good, id={"a": 1}), dict(good, id=["x"]), dict(good, id=True)]
    body = meta_envelope(meta_messages_value(messages=[no_id, *odd_ids, good], statuses=[{"status": "read"}]))
    assert [e.event_id for e in split_events(body)] == ["msg:wamid.good"]


def test_storable_rows_even_for_hostile_ids() -> None:
    long_id = "w" * 5000
    body = meta_envelope(meta_messages_value(messages=[inbound("text", long_id)], pnid="p" * 500))
    body["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "nul\x00inside"
    (event,) = split_events(body)
    _sql, params = insert_statement([event], "meta")
    _provider, event_id, _kind, route_key, payload = params
    assert len(event_id) <= 200 and event_id.startswith("sha256:")
    assert route_key == ""  # longer than any route: stored, routed nowhere
    assert "\\u0000" not in payload and "nulinside" in payload


@pytest.mark.parametrize("raw", [b"NaN", b'{"entry": [{"id": Infinity}]}', b"[1e400]", b"[" * 100000 + b"]" * 100000])
def test_json_that_jsonb_cannot_hold_is_not_json(raw: bytes) -> None:
    with pytest.raises(ValueError, match=r"not JSON|out of range|too deeply"):
        json_loads_strict(raw)


# --- the HTTP endpoint, as production serves it ----------------------------------------------------


def _post(app_server: str, raw: bytes) -> httpx.Response:
    signature = "sha256=" + hmac.new(os.environ["META_APP_SECRET"].encode(), raw, hashlib.sha256).hexdigest()
    return httpx.post(
        f"{app_server}/webhooks/whatsapp/", content=raw, headers={"X-Hub-Signature-256": signature}, timeout=20
    )


@given(st.one_of(json_values, mutated_envelopes()))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_signed_malformed_bodies_never_get_a_500(app_server: str, body: Any) -> None:
    response = _post(app_server, json.dumps(body).encode())
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{not json",
        b"NaN",
        b'{"entry": [{"changes": [{"field": "x", "value": {"n": 1e999}}]}]}',
        b"\xff\xfe garbage",
        b"[" * 50000 + b"]" * 50000,
    ],
)
def test_signed_bodies_that_are_not_json_get_400(app_server: str, raw: bytes) -> None:
    assert _post(app_server, raw).status_code == 400


def test_entry_not_a_list_and_message_without_id_get_200_and_store_nothing(
    app_server: str, channels: dict[str, int], committed: Any
) -> None:
    marker = uuid.uuid4().hex
    no_id = {k: v for k, v in inbound("text", "unused").items() if k != "id"}
    no_id["text"] = {"body": marker}
    bodies = [
        {"object": "whatsapp_business_account", "entry": {"id": marker}},
        {"object": "whatsapp_business_account", "entry": [{"id": marker, "changes": {"field": "messages"}}]},
        meta_envelope(meta_messages_value(messages=[no_id])),
        meta_envelope(meta_messages_value(statuses=[{"id": f"wamid.{marker}"}])),  # a status without its status
    ]
    connection.set_schema_to_public()
    before = WebhookEvent.objects.count()
    for body in bodies:
        assert _post(app_server, json.dumps(body).encode()).status_code == 200
    assert WebhookEvent.objects.count() == before
    assert not WebhookEvent.objects.filter(payload__icontains=marker).exists()


def test_nul_characters_and_huge_ids_are_stored_once_not_500(
    app_server: str, channels: dict[str, int], committed: Any
) -> None:
    wamid = f"wamid.{uuid.uuid4().hex}" + "x" * 400
    message = inbound("text", wamid)
    message["text"]["body"] = "a\x00b"
    raw = json.dumps(meta_envelope(meta_messages_value(messages=[message]))).encode()
    assert _post(app_server, raw).status_code == 200
    assert _post(app_server, raw).status_code == 200  # a redelivery dedupes on the digest id
    connection.set_schema_to_public()
    digest = "sha256:" + hashlib.sha256(f"msg:{wamid}".encode()).hexdigest()
    stored = WebhookEvent.objects.get(provider="meta", event_id=digest)
    assert stored.payload["message"]["text"]["body"] == "ab"


# --- the drain over odd stored payloads ------------------------------------------------------------


ODD_PAYLOADS: list[dict[str, Any]] = [
    {"kind": "message", "message": "not an object"},
    {"kind": "message", "message": {"type": "text"}},  # no id
    {"kind": "message", "message": {"id": "wamid.odd0", "from": {"a": 1}, "timestamp": 10**30, "type": "text"}},
    {"kind": "message", "message": {"id": "wamid.odd1", "from": "", "type": "text", "text": "not an object"}},
    {"kind": "message", "message": {"id": "w" * 300, "from": "5511987650999", "type": "text"}},  # too long to keep
    {"kind": "status", "status": {"id": "wamid.nothing"}},
    {"kind": "status", "status": None},
    {"kind": "template", "value": []},
    {"kind": "preference", "preference": {"category": "marketing_messages"}},
    {"kind": "message"},
]


def test_the_drain_records_odd_payloads_once_and_never_retries_them(
    tenants: Any, channels: dict[str, int], committed: Any
) -> None:
    connection.set_schema_to_public()
    ids = []
    for payload in ODD_PAYLOADS:
        row = WebhookEvent.objects.create(
            provider="meta",
            event_id=f"odd:{uuid.uuid4().hex}",
            route_kind="whatsapp_cloud",
            route_key=WA_PNID,
            payload=payload,
        )
        ids.append(row.pk)
    drain_batch()  # or a running worker's drain claimed some first: either way, each once
    connection.set_schema_to_public()
    wait_until(  # rows a worker's drain holds are settled when its batch commits
        lambda: not WebhookEvent.objects.filter(pk__in=ids, processed_at=None).exists() or drain_batch() < 0,
        timeout=30,
        what="every odd payload settled",
    )
    rows = list(WebhookEvent.objects.filter(pk__in=ids).order_by("pk"))
    assert [row.outcome.split(":")[0] for row in rows] == ["bad payload"] * len(ODD_PAYLOADS), [
        (r.payload, r.outcome) for r in rows
    ]
    assert all(row.processed_at is not None and row.attempts == 0 for row in rows)


@given(st.dictionaries(st.sampled_from(["kind", "message", "status", "value", "preference", "contacts"]), json_values))
@settings(max_examples=300, deadline=None)
@example({"kind": "message", "message": {"id": 1, "type": "interactive", "interactive": {"button_reply": 5}}})
@example({"kind": "message", "message": {"id": 1, "type": "contacts", "contacts": [1, {"name": "x"}]}})
@example({"kind": "message", "message": {"id": 1}, "contacts": [{"wa_id": "", "profile": "x"}]})
@example({"kind": "status", "status": {"id": 1, "status": "failed", "errors": [None]}})
@example({"kind": "template", "value": {"message_template_id": [1]}})
def test_parse_event_returns_events_or_payload_error(payload: dict[str, Any]) -> None:
    try:
        events = CloudProvider.parse_event(payload)
    except PayloadError:
        return
    assert isinstance(events, list)


def test_lone_surrogates_are_stored_not_500(app_server: str, channels: dict[str, int], committed: Any) -> None:
    """JSON may escape half of a UTF-16 pair ("\\ud800"); Python keeps it, PostgreSQL refuses it."""
    marker = uuid.uuid4().hex
    message = inbound("text", f"wamid.{marker}\\ud800")
    message["text"]["body"] = "half \\udc00 a pair"
    raw = json.dumps(meta_envelope(meta_messages_value(messages=[message], pnid="pnid-fuzz-unrouted")))
    raw = raw.replace("\\\\ud800", "\\ud800").replace("\\\\udc00", "\\udc00")  # real escapes, not backslashes
    assert _post(app_server, raw.encode()).status_code == 200
    connection.set_schema_to_public()
    stored = WebhookEvent.objects.get(provider="meta", event_id__startswith=f"msg:wamid.{marker}")
    assert stored.payload["message"]["text"]["body"] == "half \ufffd a pair"
