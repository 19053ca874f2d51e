from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils.translation import gettext_lazy as _
from django_tenants.models import DomainMixin, TenantMixin


class Plan(models.Model):  # type: ignore[django-manager-missing]  # Tenant's base class is untyped
    code = models.SlugField(_("code"), unique=True)
    name = models.CharField(_("name"), max_length=80)
    price_monthly = models.DecimalField(_("monthly price"), max_digits=10, decimal_places=2, default=Decimal("0"))
    currency = models.CharField(_("currency"), max_length=3, default="BRL")
    max_users = models.PositiveIntegerField(_("max users"), default=3)
    max_channels = models.PositiveIntegerField(_("max channels"), default=1)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["price_monthly", "code"]
        verbose_name = _("plan")
        verbose_name_plural = _("plans")

    def __str__(self) -> str:
        return self.name


class Tenant(TenantMixin):
    """A customer business. Its data lives in its own PostgreSQL schema."""

    name = models.CharField(_("name"), max_length=120)
    slug = models.SlugField(_("subdomain"), max_length=40, unique=True)
    plan = models.ForeignKey(
        Plan, verbose_name=_("plan"), null=True, blank=True, on_delete=models.PROTECT, related_name="tenants"
    )
    timezone = models.CharField(_("timezone"), max_length=64, default="America/Sao_Paulo")
    language = models.CharField(_("language"), max_length=10, default="pt-br")
    is_active = models.BooleanField(_("active"), default=True)
    suspended_at = models.DateTimeField(_("suspended at"), null=True, blank=True)
    suspended_reason = models.CharField(_("suspension reason"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    auto_create_schema = True
    auto_drop_schema = False  # deleting a row never silently drops a customer's data

    class Meta:
        ordering = ["name"]
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")

    def __str__(self) -> str:
        return self.name


class Domain(DomainMixin):
    class Meta:
        verbose_name = _("domain")
        verbose_name_plural = _("domains")
