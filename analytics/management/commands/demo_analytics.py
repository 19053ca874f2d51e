from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from accounts.models import User
from analytics.demo import demo_analytics
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Give the demo tenant some weeks of activity for the dashboard (once) and rebuild its rollups."

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.get(slug="demo")
        agents = list(User.objects.filter(memberships__tenant=tenant, is_active=True).order_by("pk"))
        with schema_context(tenant.schema_name):
            filled, counts = demo_analytics(agents=agents)
        state = "six weeks of history written" if filled else "history already there"
        self.stdout.write(f" analytics   : {state}; rollup hours rebuilt: {sum(counts.values())}")
