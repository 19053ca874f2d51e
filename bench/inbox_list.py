"""Benchmark: the inbox list and search API over 100,000 conversations and 1,000,000 messages.

Data is generated once in a benchmark database of its own (reused on later runs), the app is started
from the Procfile (uvicorn, its default workers), and the API is called over loopback, one request at a
time, for the first page, deeper cursor pages, and searches by name, phone and message words.
Target: p95 under 100 ms.

    make bench-inbox_list
    python bench/inbox_list.py --conversations 2000 --requests 40
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _support import bench_channel, bench_env, bench_tenant, database_ensure, free_port, start, stop, wait_http

TARGET_P95_MS = 100.0
WORDS = [
    "pedido",
    "entrega",
    "boleto",
    "pix",
    "troca",
    "horario",
    "endereco",
    "frete",
    "cancelar",
    "obrigado",
    "tamanho",
    "cor",
    "desconto",
    "cupom",
    "nota",
    "fiscal",
    "prazo",
    "estoque",
    "garantia",
    "retirada",
]


def prepare(env: dict[str, str], conversations: int, per_conversation: int) -> tuple[str, int]:
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connection

    from accounts.models import Membership, User
    from accounts.services import api_token_create
    from inbox.models import Conversation

    tenant = bench_tenant("bench", "Bench")
    user = User.objects.filter(email="bench@bench.test").first() or User.objects.create_user(
        "bench@bench.test", "x-bench-pass-1"
    )
    Membership.objects.get_or_create(user=user, tenant=tenant, defaults={"role": "owner"})
    _token, raw = api_token_create(user=user, tenant=tenant, name=f"bench-{int(time.time())}")
    connection.set_tenant(tenant)
    channel = bench_channel(
        kind="sms_twilio",
        name="Bench SMS",
        phone_number="+5511999991111",
        credentials={"account_sid": "ACb0b0b0b0b0b0b0b0b0b0b0b0b0b0b001", "auth_token": "x"},
    )
    from inbox.models import Message

    wanted = (conversations, conversations * per_conversation)
    if (
        Conversation.objects.filter(channel=channel).count(),
        Message.objects.filter(channel=channel).count(),
    ) != wanted:
        words = "(ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "])"
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM inbox_message WHERE channel_id = %s", [channel.pk])
            cursor.execute("DELETE FROM inbox_conversation WHERE channel_id = %s", [channel.pk])
            cursor.execute("DELETE FROM crm_contact WHERE phone LIKE '+55119%%' AND name LIKE 'Bench %%'")
            cursor.execute(
                "INSERT INTO crm_contact (phone, name, email, wa_profile_name, custom_fields, created_at, updated_at)"
                " SELECT '+55119' || lpad(i::text, 8, '0'), 'Bench ' || i, '', '', '{}', now(), now()"
                " FROM generate_series(1, %s) i",
                [conversations],
            )
            cursor.execute(
                "INSERT INTO inbox_conversation (contact_id, channel_id, status, last_message_at, unread_count, created_at)"
                " SELECT c.id, %s, (ARRAY['open','pending','resolved'])[1 + c.id %% 3],"
                " now() - (c.id || ' seconds')::interval, c.id %% 4, now()"
                " FROM crm_contact c WHERE c.name LIKE 'Bench %%'",
                [channel.pk],
            )
            cursor.execute(
                "INSERT INTO inbox_message (conversation_id, channel_id, direction, type, body, payload, media, media_mime,"
                " media_filename, media_url, provider_media_id, template_name, template_language, template_variables,"
                " is_marketing, status, reply_to_provider_id, error_code, error_text, idempotency_key, attempts, created_at)"
                f" SELECT v.id, %s, 'in', 'text', {words}[1 + (v.id * 7 + k) %% 20] || ' ' || {words}[1 + (v.id + k * 3) %% 20]"
                " || ' do cliente ' || v.id, '{}', '', '', '', '', '', '', '', '{}', false, 'received', '', '', '',"
                " 'bench-' || v.id || '-' || k, 0, now() - ((v.id + k) || ' seconds')::interval"
                " FROM inbox_conversation v, generate_series(1, %s) k WHERE v.channel_id = %s",
                [channel.pk, per_conversation, channel.pk],
            )
            cursor.execute("ANALYZE crm_contact; ANALYZE inbox_conversation; ANALYZE inbox_message;")
    messages = connection.cursor()
    messages.execute("SELECT count(*) FROM inbox_message WHERE channel_id = %s", [channel.pk])
    total_messages = int(messages.fetchone()[0])
    connection.set_schema_to_public()
    return raw, total_messages


def measure(client: httpx.Client, path: str, count: int) -> list[float]:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return timings


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages-each", type=int, default=10)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    port = free_port()
    env = bench_env("inbox", port)
    database_ensure(env)
    token, total_messages = prepare(env, args.conversations, args.messages_each)
    logs = Path(tempfile.mkdtemp(prefix="bench-inbox-"))
    web = start("web", env, logs / "web.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/livez")
        headers = {"Host": f"bench.localhost:{port}", "Authorization": f"Token {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
            first = client.get("/api/v1/conversations/?limit=30").json()
            deep = first["next_cursor"]
            for _ in range(20):  # twenty pages down
                deep = client.get("/api/v1/conversations/", params={"cursor": deep}).json()["next_cursor"] or deep
            n = args.requests
            kinds = {
                "list_first_page": measure(client, "/api/v1/conversations/?limit=30", n),
                "list_deep_page": measure(client, f"/api/v1/conversations/?cursor={deep}", n),
                "list_unassigned_open": measure(client, "/api/v1/conversations/?view=unassigned&status=open", n),
                "search_name": measure(client, "/api/v1/conversations/?q=Bench%2012345", n),
                "search_phone": measure(client, "/api/v1/conversations/?q=00012345", n),
                "search_message_words": measure(client, "/api/v1/conversations/?q=entrega%20boleto", n),
            }
    finally:
        stop(web)
    every = [t for values in kinds.values() for t in values]
    p95 = p(every, 0.95)
    result = {
        "bench": "inbox_list",
        "conversations": args.conversations,
        "messages": total_messages,
        "requests": len(every),
        "per_s": round(len(every) / (sum(every) / 1000), 1),
        "p50_ms": round(statistics.median(every), 2),
        "p95_ms": round(p95, 2),
        "p99_ms": round(p(every, 0.99), 2),
        "p95_by_kind_ms": {k: round(p(v, 0.95), 2) for k, v in kinds.items()},
        "errors": 0,
        "target": f"p95 < {TARGET_P95_MS:.0f} ms",
        "target_met": p95 < TARGET_P95_MS,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
