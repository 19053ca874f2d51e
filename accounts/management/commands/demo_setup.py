from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.models import Role, User
from accounts.services import membership_ensure
from tenants.models import Tenant
from tenants.services import public_url, tenant_create, tenant_url

DEMO_SLUG = "demo"
OWNER_EMAIL = "owner@demo.localhost"
ADMIN_EMAIL = "admin@localhost"


class Command(BaseCommand):
    help = "Create (or reuse) the demo tenant, its owner and a superadmin, and print their logins."

    def handle(self, *args: Any, **opts: Any) -> None:
        password = self._password()
        # No plan: the demo shows everything (voice, AI, QR) without a limit in the way.
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first() or tenant_create(
            name="Demo Store", slug=DEMO_SLUG, plan_code=None
        )
        owner = self._user(OWNER_EMAIL, password, "Demo Owner", staff=False)
        membership_ensure(user=owner, tenant=tenant, role=Role.OWNER)
        self._user(ADMIN_EMAIL, password, "Superadmin", staff=True)
        line = "=" * 64
        self.stdout.write(self.style.SUCCESS(line))
        self.stdout.write(f" demo tenant : {tenant_url(tenant)}")
        self.stdout.write(f" owner login : {OWNER_EMAIL} / {password}")
        self.stdout.write(f" superadmin  : {public_url('/admin/')}  {ADMIN_EMAIL} / {password}")
        self.stdout.write(self.style.SUCCESS(line))

    def _password(self) -> str:
        """One generated demo password per checkout, kept in var/ so a rerun prints the same."""
        path = Path(settings.BASE_DIR) / "var" / "demo_password"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            path.write_text(secrets.token_urlsafe(9))
            path.chmod(0o600)
        return path.read_text().strip()

    def _user(self, email: str, password: str, name: str, *, staff: bool) -> User:
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email=email, password=password, name=name)
        elif not user.check_password(password):
            user.set_password(password)
        user.is_staff = user.is_superuser = staff
        user.save()
        return user
