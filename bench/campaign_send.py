"""Benchmark: a campaign at the provider's full speed.

A campaign to N contacts on a WhatsApp Cloud channel whose rate limit is R messages/s is launched and run
by the Procfile's worker (two Celery processes, as in production) against the Graph API emulator on
loopback. Measured: messages/s from launch until the last one is `sent`, queued→sent latency, and, from
what the emulator received, lost and duplicate messages. The ceiling measured in the same run is the
channel's rate limit (what Meta allows the number) capped by the raw speed of our provider client
against the emulator (two threads sending back to back, no queue, no database).

    make bench-campaign_send            # 3,000 contacts at 100 messages/s
    python bench/campaign_send.py --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
from _support import BASE_DIR, bench_channel, bench_env, database_ensure, free_port, start, stop, wait_http

TARGET_RATIO = 0.85  # of the ceiling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=100, help="the channel's messages per second")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the benchmark runs")
    args = parser.parse_args()
    if args.smoke:
        args.contacts, args.rate = 60, 30

    meta_port = free_port()
    env = bench_env("campaign_send", free_port())
    env["META_GRAPH_BASE_URL"] = f"http://127.0.0.1:{meta_port}"
    env["WORKER_CONCURRENCY"] = "2"
    database_ensure(env)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connection
    from django.db.models import Max, Min

    from campaigns.models import Campaign, CampaignStatus
    from campaigns.services import campaign_launch, campaign_save
    from crm.models import Contact, Tag
    from inbox.models import Channel, Message, MessageStatus
    from inbox.providers import OutboundMessage, provider_for
    from tenants.models import Tenant
    from tenants.services import tenant_create

    # The emulator in its own process, as the real API is. Status callbacks go to a closed port: this
    # measures sending, not intake (bench/webhook_intake.py does).
    emulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulators.meta",
            "--port",
            str(meta_port),
            "--app-secret",
            env["META_APP_SECRET"],
            "--webhook",
            f"http://127.0.0.1:{free_port()}/",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{meta_port}/_emulator/state")

    def received() -> Counter[str]:
        return Counter(httpx.get(f"http://127.0.0.1:{meta_port}/_emulator/state").json()["sent_to"])

    tenant = Tenant.objects.filter(slug="bench").first() or tenant_create(name="Bench", slug="bench")
    connection.set_tenant(tenant)  # type: ignore[attr-defined]
    channel = bench_channel(
        kind="whatsapp_cloud",
        name="Bench campaign",
        phone_number="+5511999990001",
        credentials={"access_token": "x"},
        waba_id="200000000009002",
        phone_number_id="100000000009002",
    )
    run = uuid.uuid4().hex[:8]
    tag = Tag.objects.create(name=f"bench-{run}")
    base = int(uuid.uuid4().int % 10**4) * 10**4
    contacts = Contact.objects.bulk_create(
        Contact(phone=f"+55119{(base + i) % 10**8:08d}", name=f"Bench {i}") for i in range(args.contacts)
    )
    tag.contacts.add(*contacts)

    # The ceiling: our provider client alone, two threads, back to back.
    channel.rate_limit_per_s = 10**6
    provider = provider_for(channel)
    probe = OutboundMessage(to="5511900000000", type="template", template_name="bench", template_language="pt_BR")
    count, stop_at = [0, 0], time.monotonic() + 3

    def hammer(slot: int) -> None:
        while time.monotonic() < stop_at:
            provider.send(probe)
            count[slot] += 1

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client_ceiling = sum(count) / 3
    before = received()

    Channel.objects.filter(pk=channel.pk).update(rate_limit_per_s=args.rate)
    channel.refresh_from_db()
    campaign = campaign_save(
        name=f"Bench {run}",
        channel=channel,
        audience={"tags": [tag.pk]},
        kind="template",
        template_name="bench_offer",
        template_language="pt_BR",
        template_variables=["{{first_name}}"],
        respect_quiet_hours=False,
    )
    log = BASE_DIR / "var" / "bench-campaign-worker.log"
    worker = start("worker", env, log)
    try:
        time.sleep(4)  # the worker connects
        started = time.monotonic()
        campaign_launch(campaign=campaign)
        deadline = started + max(120, 4 * args.contacts / args.rate)
        keys = Message.objects.filter(idempotency_key__startswith=f"campaign:{campaign.pk}:")
        while time.monotonic() < deadline:
            done = keys.filter(status=MessageStatus.SENT).count()
            if done >= args.contacts and Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.COMPLETED:
                break
            time.sleep(0.2)
        wall = time.monotonic() - started
    finally:
        stop(worker)
    sent = keys.filter(status=MessageStatus.SENT)
    span = sent.aggregate(first=Min("sent_at"), last=Max("sent_at"))
    latencies = sorted(
        (m.sent_at - m.queued_at).total_seconds() * 1000
        for m in sent.only("sent_at", "queued_at")
        if m.sent_at and m.queued_at
    )
    wanted = {(c.phone or "").lstrip("+") for c in contacts}
    got = received() - before
    emulator.terminate()
    got = Counter({to: n for to, n in got.items() if to in wanted})

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2) if latencies else 0.0

    per_s = sent.count() / wall if wall else 0.0
    ceiling = min(float(args.rate), client_ceiling)
    sending_span = (span["last"] - span["first"]).total_seconds() if span["first"] and span["last"] else 0
    result = {
        "bench": "campaign_send",
        "contacts": args.contacts,
        "rate_limit_per_s": args.rate,
        "per_s": round(per_s, 1),
        "sending_span_per_s": round(sent.count() / sending_span, 1) if sending_span else 0.0,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "wall_s": round(wall, 2),
        "errors": keys.filter(status__in=[MessageStatus.FAILED, MessageStatus.UNKNOWN]).count(),
        "lost": len(wanted - set(got)),
        "duplicates": sum(n - 1 for n in got.values()),
        "client_ceiling_per_s": round(client_ceiling, 1),
        "ceiling_per_s": round(ceiling, 1),
        "ratio_to_ceiling": round(per_s / ceiling, 3) if ceiling else 0.0,
        "target": f"per_s >= {TARGET_RATIO} x ceiling, 0 lost, 0 duplicates",
    }
    result["target_met"] = (
        result["ratio_to_ceiling"] >= TARGET_RATIO and result["lost"] == 0 and result["duplicates"] == 0
    )
    Path(BASE_DIR / "var").mkdir(exist_ok=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
