"""Benchmark: the cadence tick (campaigns/cadences.py) handing due steps to the dispatcher.

100,000 active enrolments of a two-step SMS cadence, 10,000 of them due: `wall_s` is the time the tick
(the `campaigns.cadence_tick` task's own function, in this process, in the tenant's schema) takes to hand
every due step to the dispatcher, i.e. to queue its message (a `StepRun` row, a queued `Message` row, the
enrolment moved on to its next step). Target: under 10 s. Checked, not only timed: every due enrolment
has exactly one run and one message, no enrolment that was not due has any, and a second tick at once
hands nothing (`second_tick_handed`).

Its own database (`bench_cadence_tick`, migrated by the run) and a Redis namespace of its own; loopback
only. The tenant's cadence, contact and message tables are emptied at the start of each run.

    python bench/cadence_tick.py            # 100,000 enrolments, 10,000 due
    python bench/cadence_tick.py --smoke    # 1,000 and 100: checks it runs (a test runs it)
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from typing import Any

from _support import bench_channel, bench_env, bench_tenant, database_ensure, free_port

TARGET_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--enrolments", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the benchmark runs")
    parser.add_argument("--profile", default="", help="write a cProfile of the timed tick to this file")
    args = parser.parse_args()
    if args.smoke:
        args.enrolments, args.due = 1_000, 100
    args.due = min(args.due, args.enrolments)

    env = bench_env("cadence_tick", free_port())
    run_id = uuid.uuid4().hex[:8]
    # the dispatcher kicks land in a broker namespace of our own (nobody consumes them: only the hand-off
    # to the dispatcher is measured here; bench/dispatch.py measures the sending)
    env["CELERY_BROKER_KEY_PREFIX"] = f"bench-cadence-{run_id}-broker:"
    env["CELERY_RESULT_KEY_PREFIX"] = f"bench-cadence-{run_id}-results:"
    database_ensure(env)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from campaigns.cadences import cadence_save
    from campaigns.models import CadenceStep, Enrollment, QuietHours, StepRun
    from campaigns.tasks import cadence_tick
    from crm.models import Contact
    from inbox.models import Conversation, Message

    tenant = bench_tenant("bench", "Bench")
    connection.set_tenant(tenant)  # type: ignore[attr-defined]
    schema = tenant.schema_name
    with connection.cursor() as cursor:  # a clean slate for this run (our own database)
        cursor.execute(
            f'TRUNCATE "{schema}".campaigns_steprun, "{schema}".campaigns_enrollment, '
            f'"{schema}".campaigns_cadencestep, "{schema}".campaigns_cadence, "{schema}".inbox_message, '
            f'"{schema}".inbox_conversation, "{schema}".crm_contact CASCADE'
        )
    quiet = QuietHours.current()
    quiet.enabled = False  # the run measures the tick, whatever the hour
    quiet.save()
    channel = bench_channel(
        kind="sms_twilio",
        name="Bench cadence SMS",
        phone_number="+5511999990077",
        credentials={"account_sid": "ACbench", "auth_token": "bench-token"},
    )
    result: dict[str, Any] = {"bench": "cadence_tick", "enrolments": args.enrolments, "due": args.due}

    setup_started = time.monotonic()
    cadence = cadence_save(
        name=f"Bench {run_id}",
        channel=channel,
        respect_quiet_hours=False,
        stop_on_reply=True,
        steps=[
            {"kind": "text", "body": "{Oi|Olá} {{first_name}}, tudo bem? Temos novidades."},
            {"kind": "text", "body": "{{first_name}}, ainda tem interesse?", "delay_minutes": 1440},
        ],
    )
    first = CadenceStep.objects.filter(cadence=cadence).order_by("position").first()
    assert first is not None
    base = 10**9 + int(run_id, 16) % 10**8
    contacts = Contact.objects.bulk_create(
        (Contact(phone=f"+5511{base + i}", name=f"Cliente {i}") for i in range(args.enrolments)), batch_size=5000
    )
    Conversation.objects.bulk_create(
        (Conversation(contact_id=c.pk, channel_id=channel.pk) for c in contacts), batch_size=5000
    )
    with connection.cursor() as cursor:
        # the first `due` enrolments are due now; the rest a day later
        cursor.execute(
            f'INSERT INTO "{schema}".campaigns_enrollment (cadence_id, contact_id, status, next_step_id, '
            "next_run_at, steps_sent, exit_reason, exit_detail, started_at) "
            "SELECT %s, id, 'active', %s, CASE WHEN row_number() OVER (ORDER BY id) <= %s "
            "THEN now() - interval '1 minute' ELSE now() + interval '1 day' END, 0, '', '', now() "
            f'FROM "{schema}".crm_contact',
            [cadence.pk, first.pk, args.due],
        )
        for table in ("crm_contact", "inbox_conversation", "campaigns_enrollment"):  # stats, as autovacuum keeps
            cursor.execute(f'ANALYZE "{schema}".{table}')
    result["setup_s"] = round(time.monotonic() - setup_started, 1)

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.monotonic()
    handed = cadence_tick()
    wall = time.monotonic() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    second = cadence_tick()

    now = timezone.now()
    messages = Message.objects.filter(idempotency_key__startswith="cadence:").count()
    runs = StepRun.objects.filter(step=first).count()
    moved = Enrollment.objects.filter(cadence=cadence, steps_sent=1, next_run_at__gt=now).count()
    duplicates = StepRun.objects.values(
        "enrollment_id", "step_id"
    ).distinct().count() != StepRun.objects.count() or messages != len(
        set(Message.objects.values_list("idempotency_key", flat=True))
    )
    untouched = Enrollment.objects.filter(cadence=cadence, steps_sent=0).count()
    result.update(
        wall_s=round(wall, 3),
        per_s=round(args.due / wall, 1) if wall > 0 else None,
        handed=handed,
        messages_queued=messages,
        step_runs=runs,
        enrolments_moved_on=moved,
        enrolments_not_due_untouched=untouched,
        second_tick_handed=second,
        duplicates=bool(duplicates),
        conversations=Conversation.objects.count(),
        contacts=Contact.objects.count(),
    )
    errors = abs(args.due - handed) + abs(args.due - messages) + abs(args.due - runs) + abs(args.due - moved)
    errors += second + abs((args.enrolments - args.due) - untouched) + int(bool(duplicates))
    result["errors"] = errors
    result["target"] = {"wall_s": f"< {TARGET_S:g}", "errors": 0}
    result["target_met"] = wall < TARGET_S and errors == 0
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    print(json.dumps(result))
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
