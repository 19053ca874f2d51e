"""Benchmark: the dashboard API over 1,000,000 messages, 100,000 conversations and 20,000 calls in one
tenant, and the rollup lag after a burst of 10,000 domain events.

Data is generated once with bulk SQL in a benchmark database of its own (reused on later runs), the
rollups are built by the backfill, the app and a worker are started from the Procfile, and every
dashboard endpoint is called over loopback, one request at a time, with and without filters.
Then 10,000 new messages are written and their `message.created` events announced through the real
bus (the analytics subscriber notes the hours, the worker's refresh task rebuilds them): the lag is the
time from the last event to the API showing all of them. Targets: p95 under 100 ms, lag under 5 s.

    make bench-analytics
    python bench/analytics.py --conversations 5000 --requests 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from _support import Filling, bench_channel, bench_env, bench_tenant, database_ensure, free_port, start, stop, wait_http

TARGET_P95_MS = 100.0
TARGET_LAG_S = 5.0
AGENTS = 6


def _seed(cursor: Any, channel_id: int, agent_ids: list[int], conversations: int, each: int, calls: int) -> None:
    agents = "ARRAY[" + ",".join(str(a) for a in agent_ids) + "]"
    for table in ("voice_call", "inbox_message", "inbox_conversation", "analytics_resolution"):
        cursor.execute(f"DELETE FROM {table}")
    cursor.execute("DELETE FROM crm_contact WHERE phone LIKE '+55118%%'")
    cursor.execute(
        "INSERT INTO crm_contact (phone, name, email, wa_profile_name, custom_fields, created_at, updated_at)"
        " SELECT '+55118' || lpad(i::text, 8, '0'), 'Bench ' || i, '', '', '{}', now(), now()"
        " FROM generate_series(1, %s) i",
        [conversations],
    )
    # Conversations opened over the last 30 days, a third resolved, each with an assignee.
    cursor.execute(
        "INSERT INTO inbox_conversation (contact_id, channel_id, status, assignee_id, last_message_at,"
        " unread_count, created_at)"
        f" SELECT c.id, %s, (ARRAY['open','pending','resolved'])[1 + c.id %% 3], ({agents})[1 + c.id %% {AGENTS}],"
        " now(), 0, now() - ((c.id * 7919) %% (30 * 86400) || ' seconds')::interval - interval '3 hours'"
        " FROM crm_contact c WHERE c.phone LIKE '+55118%%'",
        [channel_id],
    )
    # Alternating customer questions and agent replies, minutes apart; replies delivered, most read.
    cursor.execute(
        "INSERT INTO inbox_message (conversation_id, channel_id, direction, type, body, payload, media, media_mime,"
        " media_filename, media_url, provider_media_id, template_name, template_language, template_variables,"
        " is_marketing, status, reply_to_provider_id, error_code, error_text, idempotency_key, attempts,"
        " author_id, sent_at, delivered_at, read_at, failed_at, created_at)"
        " SELECT v.id, %s, d.direction, 'text', 'mensagem ' || k, '{}', '', '', '', '', '', '', '', '{}', false,"
        "  CASE WHEN d.direction = 'in' THEN 'received' ELSE d.status END, '', '', '', 'bench-' || v.id || '-' || k,"
        "  0, CASE WHEN d.direction = 'out' THEN v.assignee_id END,"
        "  CASE WHEN d.direction = 'out' AND d.status <> 'failed' THEN t.at END,"
        "  CASE WHEN d.direction = 'out' AND d.status IN ('delivered', 'read') THEN t.at END,"
        "  CASE WHEN d.direction = 'out' AND d.status = 'read' THEN t.at END,"
        "  CASE WHEN d.direction = 'out' AND d.status = 'failed' THEN t.at END, t.at"
        " FROM inbox_conversation v, generate_series(1, %s) k,"
        " LATERAL (SELECT CASE WHEN k %% 2 = 1 THEN 'in' ELSE 'out' END AS direction,"
        "   (ARRAY['read','read','read','delivered','delivered','sent','failed'])[1 + (v.id + k) %% 7] AS status) d,"
        " LATERAL (SELECT v.created_at + (k * (30 + (v.id * k) %% 600) || ' seconds')::interval AS at) t"
        " WHERE v.channel_id = %s",
        [channel_id, each, channel_id],
    )
    cursor.execute(
        "INSERT INTO voice_call (direction, from_number, to_number, status, started_at, ended_at, duration_ms,"
        " disconnection_reason, transcript, transcript_object, recording_url, summary, sentiment, created_at,"
        " updated_at, contact_id)"
        " SELECT (ARRAY['in','out'])[1 + i %% 2], '', '', s.status, s.at, s.at, s.duration,"
        "  (ARRAY['user_hangup','agent_hangup','dial_no_answer'])[1 + i %% 3], '', '[]', '', '',"
        "  (ARRAY['Positive','Neutral','Negative'])[1 + i %% 3], s.at, s.at, NULL"
        " FROM generate_series(1, %s) i,"
        " LATERAL (SELECT (ARRAY['ended','ended','ended','not_connected'])[1 + i %% 4] AS status,"
        "   now() - ((i * 104729) %% (30 * 86400) || ' seconds')::interval AS at,"
        "   CASE WHEN i %% 4 < 3 THEN 20000 + (i * 37) %% 400000 END AS duration) s",
        [calls],
    )
    cursor.execute("ANALYZE crm_contact; ANALYZE inbox_conversation; ANALYZE inbox_message; ANALYZE voice_call;")


def prepare(env: dict[str, str], conversations: int, each: int, calls: int) -> dict[str, Any]:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connection

    from accounts.models import Membership, User
    from accounts.services import api_token_create
    from analytics.rollups import rollups_backfill
    from inbox.models import Conversation, Message
    from kanban.models import Board
    from kanban.services import board_create

    tenant = bench_tenant("bench", "Bench")
    user = User.objects.filter(email="bench@bench.test").first() or User.objects.create_user(
        "bench@bench.test", "x-bench-pass-1"
    )
    Membership.objects.get_or_create(user=user, tenant=tenant, defaults={"role": "owner"})
    agent_ids = []
    for n in range(AGENTS):
        agent = User.objects.filter(email=f"agent{n}@bench.test").first() or User.objects.create_user(
            f"agent{n}@bench.test", "x-bench-pass-1", name=f"Agente {n}"
        )
        Membership.objects.get_or_create(user=agent, tenant=tenant, defaults={"role": "agent"})
        agent_ids.append(agent.pk)
    _token, raw = api_token_create(user=user, tenant=tenant, name=f"bench-{int(time.time())}")
    connection.set_tenant(tenant)
    channel = bench_channel(
        kind="sms_twilio",
        name="Bench SMS",
        phone_number="+5511999992222",
        credentials={"account_sid": "ACb0b0b0b0b0b0b0b0b0b0b0b0b0b0b002", "auth_token": "x"},
    )
    if not Board.objects.exists():
        board_create(name="Vendas")
    seeded_s = backfill_s = 0.0
    wanted = (conversations, conversations * each)
    have = (Conversation.objects.filter(channel=channel).count(), Message.objects.filter(channel=channel).count())
    if have != wanted:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            _seed(Filling(cursor), channel.pk, agent_ids, conversations, each, calls)
        seeded_s = time.perf_counter() - started
        started = time.perf_counter()
        rollups_backfill()
        backfill_s = time.perf_counter() - started
    connection.set_schema_to_public()
    return {
        "token": raw,
        "tenant": tenant,
        "channel_id": channel.pk,
        "agent_id": agent_ids[0],
        "seed_s": round(seeded_s, 1),
        "backfill_s": round(backfill_s, 1),
    }


def measure(client: httpx.Client, path: str, params: dict[str, Any], count: int) -> list[float]:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path, params=params)
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return timings


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def burst(tenant: Any, channel_id: int, events_n: int) -> float:
    """Write `events_n` inbound messages now and announce each one's event; returns when the last was
    announced (time.monotonic())."""
    from django.db import connection
    from django.utils import timezone

    from core import events

    connection.set_tenant(tenant)
    now = timezone.now()
    with connection.cursor() as raw:
        cursor = Filling(raw)
        cursor.execute(
            "SELECT id FROM inbox_conversation WHERE channel_id = %s ORDER BY id LIMIT %s", [channel_id, 500]
        )
        conversation_ids = [row[0] for row in cursor.fetchall()]
        cursor.execute(
            "INSERT INTO inbox_message (conversation_id, channel_id, direction, type, body, payload, media,"
            " media_mime, media_filename, media_url, provider_media_id, template_name, template_language,"
            " template_variables, is_marketing, status, reply_to_provider_id, error_code, error_text,"
            " idempotency_key, attempts, created_at)"
            " SELECT (%s::bigint[])[1 + i %% %s], %s, 'in', 'text', 'burst', '{}', '', '', '', '', '', '', '', '{}',"
            " false, 'received', '', '', '', 'burst-' || %s || '-' || i, 0, %s"
            " FROM generate_series(1, %s) i RETURNING id",
            [conversation_ids, len(conversation_ids), channel_id, int(time.time()), now, events_n],
        )
        ids = [row[0] for row in cursor.fetchall()]
    created = now.isoformat()

    def announce(chunk: list[int]) -> None:
        try:
            for message_id in chunk:
                events.announce(
                    events.MESSAGE_CREATED,
                    tenant.schema_name,
                    {
                        "id": message_id,
                        "conversation_id": conversation_ids[0],
                        "contact_id": None,
                        "direction": "in",
                        "type": "text",
                        "body": "burst",
                        "status": "received",
                        "error_code": "",
                        "error_text": "",
                        "created_at": created,
                        "contact": "Bench",
                    },
                )
        finally:
            connection.close()

    # Several announcers at once, as several ingest workers would be (every subscriber runs: live push,
    # cadence exits, analytics).
    threads = 4
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(announce, [ids[n::threads] for n in range(threads)]))
    done = time.monotonic()
    connection.set_schema_to_public()
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages-each", type=int, default=10)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--burst", type=int, default=10_000)
    args = parser.parse_args()
    port = free_port()
    env = bench_env("analytics", port)
    database_ensure(env)
    prepared = prepare(env, args.conversations, args.messages_each, args.calls)
    logs = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    web = start("web", env, logs / "web.log")
    worker = start("worker", env, logs / "worker.log")
    tenant = prepared["tenant"]
    try:
        wait_http(f"http://127.0.0.1:{port}/livez")
        headers = {"Host": f"bench.localhost:{port}", "Authorization": f"Token {prepared['token']}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
            for report in ("summary", "series", "agents", "funnel", "campaigns", "calls"):
                client.get(f"/api/v1/analytics/{report}/").raise_for_status()  # warm up each worker's code path
            n = args.requests
            variants: dict[str, dict[str, Any]] = {
                "": {},
                "_by_channel_week": {"channel": prepared["channel_id"], "interval": "week"},
                "_by_agent": {"agent": prepared["agent_id"]},
            }
            kinds: dict[str, list[float]] = {}
            for report in ("summary", "series", "agents", "funnel", "campaigns", "calls"):
                for suffix, params in variants.items():
                    kinds[f"{report}{suffix}"] = measure(client, f"/api/v1/analytics/{report}/", params, n)
            hourly_day = {"interval": "hour", "start": time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))}
            kinds["series_hourly"] = measure(client, "/api/v1/analytics/series/", hourly_day, n)
            # Rollup lag: the API's today count before, the burst, then poll until all of it shows.
            today = {"start": time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))}

            def received() -> int:
                body = client.get("/api/v1/analytics/summary/", params=today).json()
                return int(body["kpis"]["messages_received"]["value"])

            before = received()
            burst_started = time.monotonic()
            burst_done = burst(tenant, prepared["channel_id"], args.burst)
            lag = None
            deadline = burst_done + 120
            while time.monotonic() < deadline:
                if received() >= before + args.burst:
                    lag = time.monotonic() - burst_done
                    break
                time.sleep(0.05)
    finally:
        stop(worker)
        stop(web)
    every = [t for values in kinds.values() for t in values]
    p95 = p(every, 0.95)
    result = {
        "bench": "analytics",
        "messages": args.conversations * args.messages_each,
        "conversations": args.conversations,
        "calls": args.calls,
        "seed_s": prepared["seed_s"],
        "backfill_s": prepared["backfill_s"],
        "requests": len(every),
        "p50_ms": round(statistics.median(every), 2),
        "p95_ms": round(p95, 2),
        "p99_ms": round(p(every, 0.99), 2),
        "p95_by_kind_ms": {k: round(p(v, 0.95), 2) for k, v in kinds.items()},
        "burst_events": args.burst,
        "burst_announce_s": round(burst_done - burst_started, 2),
        "rollup_lag_s": round(lag, 2) if lag is not None else None,
        "target": f"p95 < {TARGET_P95_MS:.0f} ms, rollup lag < {TARGET_LAG_S:.0f} s",
        "target_met": p95 < TARGET_P95_MS and lag is not None and lag < TARGET_LAG_S,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
