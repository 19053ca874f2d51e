from __future__ import annotations

import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Role, User
from accounts.services import membership_ensure, user_create
from tenants.services import tenant_create, tenant_url


class Command(BaseCommand):
    help = "Create a tenant (schema, domain) and its owner."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--owner-password", help="generated and printed when omitted")
        parser.add_argument("--owner-name", default="")
        parser.add_argument("--plan", default="free")
        parser.add_argument("--language", default="pt-br", choices=["pt-br", "en"])

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            tenant = tenant_create(
                name=opts["name"], slug=opts["slug"], plan_code=opts["plan"], language=opts["language"]
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        password = opts["owner_password"]
        user = User.objects.filter(email=opts["owner_email"].lower()).first()
        if user is None:
            password = password or secrets.token_urlsafe(12)
            user = user_create(email=opts["owner_email"], password=password, name=opts["owner_name"])
        membership_ensure(user=user, tenant=tenant, role=Role.OWNER)
        self.stdout.write(self.style.SUCCESS(f"tenant {tenant.slug} ready at {tenant_url(tenant)}"))
        self.stdout.write(f"owner: {user.email}" + (f" / password: {password}" if password else " (existing account)"))
