"""Benchmark: webhook intake. Meta sends sent, delivered and read per message, so intake must absorb 3x
the send rate.

Signed status webhooks for messages that exist are posted by wrk (a second process, loopback only) to the
app started as in production (the Procfile's web process, its default worker count) while the Procfile's
worker drains the ingest queue. The same request rate is measured in the same run against /livez, a bare
endpoint of the same server that only answers 200 (the ceiling). Then the ingest queue is drained and
every posted event is checked: applied, or lost.

    make bench-webhook_intake            # full size
    python bench/webhook_intake.py --smoke
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import tempfile
import time
from pathlib import Path

from _support import bench_channel, bench_env, bench_tenant, database_ensure, free_port, start, stop, wait_http, wrk

TARGET_PER_S, TARGET_P99_MS = 1500.0, 200.0


def prepare(env: dict[str, str], messages: int, run: str) -> list[tuple[str, str]]:
    """Tenant, channel and `messages` outbound messages; returns (event id, signed body line) per status."""
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connection

    from inbox.models import Conversation, Direction, Message, MessageStatus
    from intake.models import WebhookEvent

    tenant = bench_tenant("bench", "Bench")
    WebhookEvent.objects.filter(route_key="100000000009001").delete()
    connection.set_tenant(tenant)
    channel = bench_channel(
        kind="whatsapp_cloud",
        name="Bench",
        phone_number="+5511999990000",
        credentials={"access_token": "x"},
        waba_id="200000000009001",
        phone_number_id="100000000009001",
        rate_limit_per_s=1000,
    )
    from crm.models import Contact

    contact, _ = Contact.objects.get_or_create(phone="+5511988887777")
    conversation, _ = Conversation.objects.get_or_create(contact=contact, channel=channel)
    Message.objects.filter(channel=channel).delete()
    Message.objects.bulk_create(
        Message(
            conversation=conversation,
            channel=channel,
            direction=Direction.OUTBOUND,
            body=f"m{i}",
            status=MessageStatus.QUEUED,
            provider_message_id=f"wamid.{run}.{i}",
            idempotency_key=f"{run}-{i}",
        )
        for i in range(messages)
    )
    secret = env["META_APP_SECRET"].encode()
    lines: list[tuple[str, str]] = []
    now = int(time.time())
    for i in range(messages):
        for step, status in enumerate(("sent", "delivered", "read")):
            value = {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "5511999990000", "phone_number_id": "100000000009001"},
                "statuses": [
                    {
                        "id": f"wamid.{run}.{i}",
                        "status": status,
                        "timestamp": str(now + step),
                        "recipient_id": "5511988887777",
                    }
                ],
            }
            body = json.dumps(
                {
                    "object": "whatsapp_business_account",
                    "entry": [{"id": "200000000009001", "changes": [{"field": "messages", "value": value}]}],
                },
                separators=(",", ":"),
            )
            signature = "sha256=" + hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
            lines.append((f"st:wamid.{run}.{i}:{status}", f"{signature}\t{body}"))
    # Mostly in order, some out of order, as Meta delivers them.
    for k in range(0, len(lines) - 1, 7):
        lines[k], lines[k + 1] = lines[k + 1], lines[k]
    connection.set_schema_to_public()
    return lines


def outcome(run: str, event_ids: list[str], drain_timeout_s: float) -> tuple[int, int, float]:
    # Lost: a posted event not stored and applied, or a message whose three statuses were all posted
    # that did not end read.
    """(lost, pending, drain seconds): posted events not applied once the ingest queue drained."""
    from django.db import connection

    from inbox.models import Message, MessageStatus
    from intake.models import WebhookEvent
    from tenants.models import Tenant

    started = time.monotonic()
    while time.monotonic() - started < drain_timeout_s:
        if not WebhookEvent.objects.filter(route_key="100000000009001", processed_at=None).exists():
            break
        time.sleep(0.5)
    drained_s = time.monotonic() - started
    stored = set(
        WebhookEvent.objects.filter(route_key="100000000009001")
        .exclude(processed_at=None)
        .values_list("event_id", flat=True)
    )
    pending = WebhookEvent.objects.filter(route_key="100000000009001", processed_at=None).count()
    lost_events = sum(1 for event_id in event_ids if event_id not in stored)
    connection.set_tenant(Tenant.objects.get(slug="bench"))
    complete = {e.split(":")[1] for e in event_ids if e.endswith(":read")} & {
        e.split(":")[1] for e in event_ids if e.endswith(":sent")
    }
    complete &= {e.split(":")[1] for e in event_ids if e.endswith(":delivered")}
    wrong = Message.objects.filter(provider_message_id__in=complete).exclude(status=MessageStatus.READ).count()
    connection.set_schema_to_public()
    return lost_events + wrong, pending, drained_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # 3 events a message; sized so the run posts every event at least once (then Meta-style redeliveries)
    parser.add_argument("--messages", type=int, default=6_000)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for the test suite")
    args = parser.parse_args()
    if args.smoke:
        args.messages, args.duration, args.connections = 60, 2, 8

    port = free_port()
    env = bench_env("intake", port)
    database_ensure(env)
    run = f"r{int(time.time())}{random.randrange(1000)}"
    lines = prepare(env, args.messages, run)
    logs = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    body_file = logs / "bodies.tsv"
    body_file.write_text("\n".join(line for _, line in lines) + "\n")
    script = Path(__file__).with_name("intake.lua")

    web = start("web", env, logs / "web.log")
    worker = start("worker", env, logs / "worker.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/livez")
        base = f"http://127.0.0.1:{port}"
        wrk(
            f"{base}/livez", duration_s=1, connections=args.connections, script=script, args=["/dev/null", "/livez"]
        )  # warm-up
        ceiling = wrk(
            f"{base}/livez",
            duration_s=args.duration,
            connections=args.connections,
            script=script,
            args=["/dev/null", "/livez"],
        )
        load = wrk(
            f"{base}/webhooks/whatsapp/",
            duration_s=args.duration,
            connections=args.connections,
            script=script,
            args=[str(body_file), "/webhooks/whatsapp/"],
        )
        # Requests still in flight when wrk stopped (at most one per connection) may or may not have landed.
        posted = [event_id for event_id, _ in lines][: max(0, int(load["requests"]) - args.connections)]
        lost, pending, drained_s = outcome(run, posted, drain_timeout_s=max(60.0, args.messages / 50))
    finally:
        stop(web)
        stop(worker)

    seconds = load["duration_us"] / 1e6
    errors = int(load["socket_errors"] + load["status_errors"])
    per_s = (load["requests"] - load["status_errors"]) / seconds
    ceiling_per_s = ceiling["requests"] / (ceiling["duration_us"] / 1e6)
    p99_ms = load["p99_us"] / 1000
    result = {
        "bench": "webhook_intake",
        "per_s": round(per_s, 1),
        "p50_ms": round(load["p50_us"] / 1000, 2),
        "p95_ms": round(load["p95_us"] / 1000, 2),
        "p99_ms": round(p99_ms, 2),
        "wall_s": round(seconds, 2),
        "errors": errors,
        "lost": lost,
        "duplicates": max(0, int(load["requests"]) - len(lines)),
        "events_posted": min(int(load["requests"]), len(lines)),
        "drain_s": round(drained_s, 1),
        "pending_after_drain": pending,
        "ceiling_per_s": round(ceiling_per_s, 1),
        "ratio_to_ceiling": round(per_s / ceiling_per_s, 3) if ceiling_per_s else None,
        "target": f">= {TARGET_PER_S:.0f}/s accepted, p99 < {TARGET_P99_MS:.0f} ms, 0 errors, 0 lost",
        "target_met": per_s >= TARGET_PER_S and p99_ms < TARGET_P99_MS and errors == 0 and lost == 0,
        "logs": str(logs),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
