"""The superadmin's usage per tenant: a read-only list over each tenant's rollups."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from analytics.models import TenantUsage
from analytics.selectors import tenant_usage


@admin.register(TenantUsage)
class TenantUsageAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "slug", "messages_in", "messages_out", "contacts", "calls", "voice_minutes")
    search_fields = ("name", "slug")
    list_per_page = 50

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).exclude(schema_name="public").order_by("name")

    def _usage(self, obj: TenantUsage) -> dict[str, Any]:
        cached = getattr(obj, "_usage_row", None)
        if cached is None:
            cached = tenant_usage(obj.schema_name)
            obj._usage_row = cached  # type: ignore[attr-defined]
        return cached

    @admin.display(description=_("messages in (30 days)"))
    def messages_in(self, obj: TenantUsage) -> int:
        return int(self._usage(obj)["messages_in"])

    @admin.display(description=_("messages out (30 days)"))
    def messages_out(self, obj: TenantUsage) -> int:
        return int(self._usage(obj)["messages_out"])

    @admin.display(description=_("contacts"))
    def contacts(self, obj: TenantUsage) -> int:
        return int(self._usage(obj)["contacts"])

    @admin.display(description=_("calls (30 days)"))
    def calls(self, obj: TenantUsage) -> int:
        return int(self._usage(obj)["calls"])

    @admin.display(description=_("voice minutes (30 days)"))
    def voice_minutes(self, obj: TenantUsage) -> float:
        return float(self._usage(obj)["voice_minutes"])

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)  # type: ignore[union-attr]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)  # type: ignore[union-attr]
