"""The cadence tick under real concurrency (outside the test transaction, real commits): two ticks at
once and a restarted worker run each (enrollment, step) exactly once; one tenant's error never stops the
tick for the others; the benchmark's smoke runs."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from campaigns import cadences
from campaigns.cadences import cadence_enroll, cadence_save
from campaigns.models import Cadence, Enrollment, EnrollmentStatus, StepRun
from campaigns.tasks import cadence_tick, tick
from crm.models import Contact
from crm.services import contact_get_or_create
from inbox.models import Channel, Message
from tenants.models import Tenant
from tests.conftest import BASE_DIR


def _keys(cadence: Cadence) -> Counter[str]:
    ids = list(Enrollment.objects.filter(cadence=cadence).values_list("pk", flat=True))
    return Counter(
        key
        for key in Message.objects.filter(idempotency_key__startswith="cadence:").values_list(
            "idempotency_key", flat=True
        )
        if int(key.split(":")[1]) in ids
    )


def test_two_concurrent_ticks_and_a_restarted_worker_run_each_step_once(
    tenants: tuple[Tenant, Tenant], channels: dict[str, int], committed: Any
) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    mark = uuid.uuid4().hex[:6]
    cadence = cadence_save(
        name=f"Corrida {mark}",
        channel=Channel.objects.get(pk=channels["sms"]),
        respect_quiet_hours=False,
        # a first wait, so enrolling wakes no worker: the two ticks below are the only ones
        steps=[{"body": "Primeiro", "delay_minutes": 5}, {"body": "Segundo"}],
    )
    base = int(mark, 16) % 10**6
    contacts = [contact_get_or_create(phone=f"+55119{base:06d}{i:02d}") for i in range(60)]
    cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk__in=[c.pk for c in contacts]))
    try:
        Enrollment.objects.filter(cadence=cadence).update(next_run_at=timezone.now() - datetime.timedelta(seconds=1))
        barrier = threading.Barrier(2)
        handed: list[int] = []
        errors: list[BaseException] = []

        def beat() -> None:
            connection.set_tenant(alpha)
            try:
                barrier.wait(timeout=10)
                for _round in range(3):  # both steps are due at once (the second has no wait)
                    handed.append(cadence_tick())
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=beat) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        connection.set_tenant(alpha)
        assert not errors, errors
        assert sum(handed) == 120
        keys = _keys(cadence)
        assert len(keys) == 120 and set(keys.values()) == {1}
        assert StepRun.objects.filter(enrollment__cadence=cadence).count() == 120
        assert set(Enrollment.objects.filter(cadence=cadence).values_list("status", flat=True)) == {"completed"}
        # A restarted worker that lost the enrollments' progress: their pointers back on the first step.
        first = cadences.steps_live(cadence).first()
        Enrollment.objects.filter(cadence=cadence).update(
            status=EnrollmentStatus.ACTIVE, next_step=first, next_run_at=timezone.now(), steps_sent=0
        )
        assert cadence_tick() == 0
        assert len(_keys(cadence)) == 120 and set(_keys(cadence).values()) == {1}
        assert set(Enrollment.objects.filter(cadence=cadence).values_list("status", flat=True)) == {"completed"}
    finally:
        Message.objects.filter(idempotency_key__in=list(_keys(cadence))).delete()  # never sent by a later test
        cadence.delete()
        Contact.objects.filter(pk__in=[c.pk for c in contacts]).delete()
        connection.set_schema_to_public()


@pytest.mark.django_db
def test_one_tenants_error_never_stops_the_tick_for_the_others(
    tenants: tuple[Tenant, Tenant], channels: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    alpha, beta = tenants
    made: dict[str, Cadence] = {}
    for tenant in (alpha, beta):
        connection.set_tenant(tenant)
        channel = (
            Channel.objects.get(pk=channels["sms"])
            if tenant == alpha
            else Channel.objects.create(
                kind="sms_twilio",
                name="SMS Beta",
                phone_number="+5511930000077",
                credentials={"account_sid": "ACbeta", "auth_token": "beta"},
            )
        )
        made[tenant.schema_name] = cadence = cadence_save(
            name="Por tenant", channel=channel, respect_quiet_hours=False, steps=[{"body": "Oi", "delay_minutes": 5}]
        )
        contact = contact_get_or_create(phone="+5511930000078")
        cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contact.pk))
        Enrollment.objects.filter(cadence=cadence).update(next_run_at=timezone.now() - datetime.timedelta(seconds=1))
    failed: list[str] = []
    original = cadences._runs_insert

    def broken_in_beta(pairs: Any, now: Any) -> Any:
        if connection.schema_name == beta.schema_name:
            failed.append(connection.schema_name)
            connection.cursor().execute("SELECT 1/0")  # a database error inside the batch's transaction
        return original(pairs, now)

    monkeypatch.setattr(cadences, "_runs_insert", broken_in_beta)
    tick()
    assert failed == [beta.schema_name]
    connection.set_tenant(alpha)
    assert Enrollment.objects.get(cadence=made[alpha.schema_name]).steps_sent == 1  # alpha went on
    connection.set_tenant(beta)
    stuck = Enrollment.objects.get(cadence=made[beta.schema_name])  # beta's batch rolled back, still due
    assert stuck.steps_sent == 0 and stuck.status == EnrollmentStatus.ACTIVE
    assert not StepRun.objects.filter(enrollment=stuck).exists()
    monkeypatch.setattr(cadences, "_runs_insert", original)
    tick()
    stuck.refresh_from_db()
    assert stuck.steps_sent == 1  # once the fault is gone, beta's step runs
    connection.set_schema_to_public()


def test_the_cadence_tick_benchmark_smoke_runs() -> None:
    # the benchmark takes its database and Redis from var/local.env, never the test suite's
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    done = subprocess.run(
        [sys.executable, "bench/cadence_tick.py", "--smoke"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bench"] == "cadence_tick" and result["errors"] == 0
    assert {"wall_s", "per_s", "target", "target_met", "due", "enrolments"} <= set(result)
    assert result["due"] == result["messages_queued"] == result["step_runs"] == 100
    assert result["second_tick_handed"] == 0
