from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone
from django_tenants.utils import get_tenant_model, schema_context

from analytics.rollups import rollups_backfill


class Command(BaseCommand):
    help = "Rebuild the analytics rollups from the raw rows (every tenant, or the one named)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="the tenant's slug (default: every tenant)")
        parser.add_argument("--days", type=int, help="only the last N days (default: everything)")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenants = get_tenant_model().objects.exclude(schema_name="public")
        if opts["tenant"]:
            tenants = tenants.filter(slug=opts["tenant"])
            if not tenants.exists():
                self.stderr.write(f"no tenant with the slug {opts['tenant']!r}")
                raise SystemExit(1)
        since = timezone.now() - timedelta(days=opts["days"]) if opts["days"] else None
        for tenant in tenants:
            with schema_context(tenant.schema_name):
                counts = rollups_backfill(since=since)
            hours = ", ".join(f"{kind} {n}" for kind, n in counts.items())
            self.stdout.write(f"{tenant.slug}: hours rebuilt: {hours}")
