from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet, Sum
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django_tenants.admin import TenantAdminMixin

from tenants import usage
from tenants.models import Domain, LimitOverride, Metric, Plan, Tenant, UsageDay
from tenants.services import tenant_reactivate, tenant_suspend


class DomainInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Domain
    extra = 0


@admin.register(Tenant)
class TenantAdmin(TenantAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "slug", "schema_name", "plan", "is_active", "created_at")
    list_filter = ("is_active", "plan")
    search_fields = ("name", "slug", "schema_name")
    readonly_fields = ("schema_name", "created_at", "suspended_at", "usage_this_month")
    inlines = [DomainInline]
    actions = ["suspend", "reactivate"]

    @admin.display(description=_("usage this month"))
    def usage_this_month(self, tenant: Tenant) -> str:
        """The month's use of every metered metric against the limit in force (overrides included)."""
        if tenant.pk is None:
            return "-"
        rows = []
        for metric in usage.METERED:
            limit = usage.limit_of(metric=metric, tenant=tenant)
            rows.append(
                (
                    Metric(metric).label,
                    usage.usage_month(metric=metric, tenant=tenant),
                    "∞" if limit.limit is None else limit.limit,
                    _(" (extended)") if limit.override is not None else "",
                )
            )
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}{}</td></tr>", rows)
        return format_html(
            "<table><tr><th>{}</th><th>{}</th><th>{}</th></tr>{}</table>", _("metric"), _("used"), _("limit"), body
        )

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        """A changed plan goes through tenant_plan_change (audited, the usage alerts follow)."""
        if change and "plan" in form.changed_data:
            new_plan = obj.plan
            obj.plan = usage.plan_of(obj)  # saved unchanged here; the service moves it
            super().save_model(request, obj, form, change)
            usage.tenant_plan_change(tenant=obj, plan=new_plan, actor=request.user)
            return
        super().save_model(request, obj, form, change)

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
    list_display = (
        "code",
        "name",
        "price_monthly",
        "currency",
        "max_users",
        "max_channels",
        "max_contacts",
        "messages_whatsapp_cloud",
        "ai_tokens",
        "voice_minutes",
        "is_default",
        "is_active",
    )
    fieldsets = (
        (None, {"fields": ("code", "name", "price_monthly", "currency", "is_default", "is_active")}),
        (_("Counts"), {"fields": ("max_users", "max_channels", "max_contacts")}),
        (
            _("Per month"),
            {
                "fields": (
                    "messages_whatsapp_cloud",
                    "messages_whatsapp_web",
                    "messages_sms",
                    "ai_tokens",
                    "voice_minutes",
                )
            },
        ),
        (_("Features"), {"fields": ("feature_voice", "feature_ai", "feature_qr", "feature_api", "feature_webhooks")}),
    )

    def save_model(self, request: HttpRequest, obj: Plan, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change:
            usage.plan_saved(plan=obj)  # the tenants on it: cached features drop at once


@admin.register(UsageDay)
class UsageDayAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Usage across tenants, day by day (read only: the meters write it)."""

    list_display = ("day", "tenant", "metric", "amount")
    list_filter = ("metric", "day", "tenant__plan", "tenant")
    search_fields = ("tenant__name", "tenant__slug")
    date_hierarchy = "day"
    list_select_related = ("tenant",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        """The filtered rows' total per metric above the list."""
        response = super().changelist_view(request, extra_context)
        try:
            queryset = response.context_data["cl"].queryset  # type: ignore[attr-defined]
        except (AttributeError, KeyError):
            return response
        totals = queryset.order_by().values("metric").annotate(total=Sum("amount")).order_by("metric")
        response.context_data["totals"] = [(Metric(t["metric"]).label, t["total"]) for t in totals]  # type: ignore[attr-defined]
        return response


class LimitOverrideForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = LimitOverride
        fields = ("tenant", "metric", "limit", "until", "reason")


@admin.register(LimitOverride)
class LimitOverrideAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Extend one limit of one tenant: saved through limit_override_set (audited, alerts follow)."""

    form = LimitOverrideForm
    list_display = ("tenant", "metric", "limit", "until", "reason", "set_by", "created_at")
    list_filter = ("metric", "tenant")
    search_fields = ("tenant__name", "tenant__slug", "reason")
    readonly_fields = ("set_by", "created_at")

    def save_model(self, request: HttpRequest, obj: LimitOverride, form: Any, change: bool) -> None:
        saved = usage.limit_override_set(
            tenant=obj.tenant,
            metric=obj.metric,
            limit=obj.limit,
            until=obj.until,
            reason=obj.reason,
            actor=request.user,
            override=obj if change else None,
        )
        obj.pk = saved.pk
