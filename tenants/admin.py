from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django_tenants.admin import TenantAdminMixin

from tenants.models import Domain, Plan, Tenant
from tenants.services import tenant_reactivate, tenant_suspend


class DomainInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Domain
    extra = 0


@admin.register(Tenant)
class TenantAdmin(TenantAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "slug", "schema_name", "plan", "is_active", "created_at")
    list_filter = ("is_active", "plan")
    search_fields = ("name", "slug", "schema_name")
    readonly_fields = ("schema_name", "created_at", "suspended_at")
    inlines = [DomainInline]
    actions = ["suspend", "reactivate"]

    @admin.action(description=_("Suspend selected tenants"))
    def suspend(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset.exclude(schema_name="public"):
            tenant_suspend(tenant=tenant, reason="suspended by superadmin")
            self.log_change(request, tenant, "suspended")  # the audit log hooks on admin log entries
        self.message_user(request, _("Tenants suspended."), messages.SUCCESS)

    @admin.action(description=_("Reactivate selected tenants"))
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_reactivate(tenant=tenant)
            self.log_change(request, tenant, "reactivated")
        self.message_user(request, _("Tenants reactivated."), messages.SUCCESS)


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("domain", "tenant", "is_primary")
    search_fields = ("domain",)


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("code", "name", "price_monthly", "currency", "max_users", "max_channels", "is_active")
