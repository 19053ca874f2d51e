"""Plans for the usage tests: a plan given to a suite tenant inside the test (rolled back with it)."""

from __future__ import annotations

import uuid
from typing import Any

from tenants.models import Plan, Tenant, UsageDay
from tenants.usage import tenant_today


def plan_give(tenant: Tenant, **limits: Any) -> Plan:
    """A plan with these limits and features (the rest unlimited and on), given to the tenant."""
    plan = Plan.objects.create(code=f"t-{uuid.uuid4().hex[:8]}", name="Teste", **limits)
    Tenant.objects.filter(pk=tenant.pk).update(plan=plan)
    tenant.plan = plan
    return plan


def used(tenant: Tenant, metric: str) -> int:
    row = UsageDay.objects.filter(tenant=tenant, metric=metric, day=tenant_today(tenant)).first()
    return row.amount if row else 0
