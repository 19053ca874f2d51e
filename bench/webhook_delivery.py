"""Benchmark: outgoing webhook delivery. Events are published at a steady rate (as domain events would
publish them) for one endpoint whose loopback receiver (its own process) fails half of the first attempts
with 500; the Procfile's worker and beat deliver them and retry. Every webhook id the receiver answered
200 is counted: lost (never delivered), duplicated (answered 200 twice).

Keys: per_s (deliveries completed per second over the run), p99_ms / p50_ms (event to its first attempt),
lost, duplicates, target {per_s >= 500, p99_ms < 1000}. shape_bound_per_s is what the run's shape allows
at best: every event delivered by the time the last one's retry (5 s, +20% jitter) is due, events /
(publish time + 6 s); at 600 events/s that is 508/s, so the default rate is 700/s (the engine then takes
about 1,050 attempts/s at the peak: 700 first attempts and 350 retries). ceiling_per_s is measured in the
same run: the SSRF guard's pooled client alone, on as many threads as a runner, posting to the same
receiver with no database; ratio_to_ceiling compares our attempts/s with it (the machine drifts).

    make bench-webhook_delivery
    python bench/webhook_delivery.py --events 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _support import BASE_DIR, bench_env, bench_tenant, database_ensure, free_port, start, stop

TARGET_PER_S, TARGET_P99_MS = 500.0, 1000.0

RECEIVER = r"""
import hashlib, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
seen, lock, log = set(), threading.Lock(), open(sys.argv[2], "a", buffering=1)
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as any real server: no 40 ms delayed-ACK stall between headers and body
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        wid = self.headers.get("webhook-id", "")
        with lock:
            first = wid not in seen
            seen.add(wid)
        fail = first and hashlib.sha256(wid.encode()).digest()[0] % 2 == 0
        code = 500 if fail else 200
        log.write(f"{wid} {time.time():.6f} {code} {int(first)}\n")
        self.send_response(code); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
ThreadingHTTPServer.request_queue_size = 1024
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def ceiling(url: str, seconds: float = 3.0) -> float:
    """Requests/s of the guard's pooled client alone, THREADS at once, against the receiver (no database)."""
    import threading

    from core.urlguard import guarded_client
    from webhooks.delivery import THREADS

    client, done, stop_at = guarded_client(), [0] * THREADS, time.monotonic() + seconds
    body = b'{"type":"lead.won","timestamp":"2026-12-04T00:00:00+00:00","data":{"card_id":0}}'

    def post(slot: int) -> None:
        while time.monotonic() < stop_at:
            headers = {"content-type": "application/json", "webhook-id": f"ceiling_{slot}_{done[slot]}"}
            client.post(url, content=body, headers=headers)
            done[slot] += 1

    threads = [threading.Thread(target=post, args=(slot,)) for slot in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=700.0, help="events published per second")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    env = bench_env("hooks", free_port())
    env["OUTBOUND_URL_ALLOW_LOOPBACK"] = "true"
    database_ensure(env)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connection, transaction

    from core.redis import redis_client
    from webhooks.models import Delivery, DeliveryStatus, Endpoint
    from webhooks.services import endpoint_create, event_publish

    tenant = bench_tenant("bench", "Bench")
    connection.set_tenant(tenant)  # type: ignore[attr-defined]
    Endpoint.objects.all().delete()
    for key in redis_client().scan_iter("hooks:*"):
        redis_client().delete(key)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="bench-hooks-"))
    received_log = workdir / "received.log"
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port), str(received_log)], start_new_session=True)
    endpoint_create(url=f"http://127.0.0.1:{port}/in", events=["lead.won"])
    time.sleep(0.5)  # the receiver listening
    ceiling_per_s = round(ceiling(f"http://127.0.0.1:{port}/ceiling"), 1)
    worker = start("worker", env, workdir / "worker.log")
    beat = start("beat", env, workdir / "beat.log")
    try:
        time.sleep(8)  # worker and beat up
        started = time.time()
        per_tick = 25
        published = 0
        while published < args.events:
            due = started + published / args.rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            with transaction.atomic():
                for i in range(min(per_tick, args.events - published)):
                    event_publish("lead.won", {"card_id": published + i})
            published += min(per_tick, args.events - published)
        publish_s = time.time() - started
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            if not Delivery.objects.filter(status=DeliveryStatus.PENDING).exists():
                break
            time.sleep(0.5)
        rows = list(Delivery.objects.values_list("webhook_id", "created_at", "status"))
    finally:
        for proc in (beat, worker):
            stop(proc)
        receiver.terminate()
        receiver.wait(timeout=10)
    first: dict[str, float] = {}
    ok: dict[str, int] = {}
    last_ok = 0.0
    attempts = 0
    for line in received_log.read_text().splitlines():
        wid, at, code, _is_first = line.split()
        if wid.startswith("ceiling_"):
            continue
        attempts += 1
        first.setdefault(wid, float(at))
        if code == "200":
            ok[wid] = ok.get(wid, 0) + 1
            last_ok = max(last_ok, float(at))
    latencies = sorted((first[w] - created.timestamp()) * 1000 for w, created, _s in rows if w in first)
    lost = sum(1 for w, _c, _s in rows if w not in ok)
    duplicates = sum(n - 1 for n in ok.values() if n > 1)

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 1) if latencies else 0.0

    wall = max(last_ok - started, 1e-6)
    per_s = round(len(ok) / wall, 1)
    from webhooks.delivery import JITTER, RETRY_DELAYS_S

    shape_bound = round(len(rows) / (publish_s + RETRY_DELAYS_S[0] * (1 + JITTER)), 1)
    attempts_per_s = round(attempts / wall, 1)
    result = {
        "bench": "webhook_delivery",
        "events": len(rows),
        "publish_per_s": round(published / publish_s, 1),
        "per_s": per_s,
        "shape_bound_per_s": shape_bound,
        "attempts_per_s": attempts_per_s,
        "ceiling_per_s": ceiling_per_s,
        "ratio_to_ceiling": round(attempts_per_s / ceiling_per_s, 3) if ceiling_per_s else 0.0,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "wall_s": round(wall, 2),
        "first_attempt_failures": sum(
            1 for line in received_log.read_text().splitlines() if line.endswith(" 500 1") and "ceiling_" not in line
        ),
        "errors": sum(1 for _w, _c, s in rows if s == DeliveryStatus.FAILED),
        "lost": lost,
        "duplicates": duplicates,
        "target": {"per_s": TARGET_PER_S, "p99_ms": TARGET_P99_MS},
        "target_met": per_s >= TARGET_PER_S and pct(0.99) < TARGET_P99_MS and lost == 0 and duplicates == 0,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    sys.path.insert(0, str(BASE_DIR))
    main()
