"""The daily beat task, sent as beat sends it (by name, with the schedule's options) to the real worker."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connection

from alerts import kinds
from alerts.models import Alert
from tenants.models import Metric, Plan, Tenant, UsageDay
from tenants.usage import month_key, tenant_today
from tests.conftest import Worker
from tests.support import wait_until
from tests.test_beat_tasks import beat_send


def test_the_daily_refresh_raises_the_alert_of_a_limit_reached(
    celery_worker: Worker, tenants: tuple[Tenant, Tenant], committed: Any
) -> None:
    beta = tenants[1]
    connection.set_schema_to_public()
    plan = Plan.objects.create(code=f"beat-{uuid.uuid4().hex[:6]}", name="Beat", messages_sms=10)
    today = tenant_today(beta)
    key = f"{Metric.MESSAGES_SMS}:{month_key(today)}"
    try:
        Tenant.objects.filter(pk=beta.pk).update(plan=plan)
        UsageDay.objects.update_or_create(  # earlier tests metered beta's SMS today, committed
            tenant=beta, metric=Metric.MESSAGES_SMS, day=today, defaults={"amount": 10}
        )
        assert beat_send("tenants.usage_alerts_refresh_all").get(timeout=30) >= 1

        def raised() -> bool:
            connection.set_tenant(beta)
            return Alert.objects.filter(kind=kinds.USAGE_LIMIT_REACHED, key=key, resolved_at=None).exists()

        wait_until(raised, timeout=30, what="the limit-reached alert in beta")
    finally:
        connection.set_tenant(beta)
        Alert.objects.filter(key=key).delete()
        connection.set_schema_to_public()
        UsageDay.objects.filter(tenant=beta).delete()
        Tenant.objects.filter(pk=beta.pk).update(plan=None)
        plan.delete()
