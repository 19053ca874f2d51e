from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_tenants.models import DomainMixin, TenantMixin

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


class Metric(models.TextChoices):
    """What a plan limits. The first five are metered per day (UsageDay) and limited per calendar month;
    seats, channels and contacts are counted as they are (how many exist now)."""

    MESSAGES_WHATSAPP_CLOUD = "messages.whatsapp_cloud", _("WhatsApp Cloud messages")
    MESSAGES_WHATSAPP_WEB = "messages.whatsapp_web", _("WhatsApp (QR) messages")
    MESSAGES_SMS = "messages.sms", _("SMS messages")
    AI_TOKENS = "ai.tokens", _("AI tokens")
    VOICE_MINUTES = "voice.minutes", _("voice minutes")
    SEATS = "seats", _("seats")
    CHANNELS = "channels", _("channels")
    CONTACTS = "contacts", _("contacts")


METERED = (
    Metric.MESSAGES_WHATSAPP_CLOUD,
    Metric.MESSAGES_WHATSAPP_WEB,
    Metric.MESSAGES_SMS,
    Metric.AI_TOKENS,
    Metric.VOICE_MINUTES,
)


class Feature(models.TextChoices):
    VOICE = "voice", _("Voice calls")
    AI = "ai", _("AI assistants")
    QR = "qr", _("WhatsApp (QR) channels")
    API = "api", _("REST API")
    WEBHOOKS = "webhooks", _("Outgoing webhooks")


def _limit(label: StrOrPromise) -> models.PositiveBigIntegerField:  # type: ignore[type-arg]
    return models.PositiveBigIntegerField(label, null=True, blank=True, help_text=_("Blank: unlimited."))


class Plan(models.Model):  # type: ignore[django-manager-missing]  # Tenant's base class is untyped
    """What a tenant may use. A blank limit is unlimited; a tenant without a plan has no limits at all."""

    code = models.SlugField(_("code"), unique=True)
    name = models.CharField(_("name"), max_length=80)
    price_monthly = models.DecimalField(_("monthly price"), max_digits=10, decimal_places=2, default=Decimal("0"))
    currency = models.CharField(_("currency"), max_length=3, default="BRL")
    max_users = _limit(_("seats"))
    max_channels = _limit(_("channels"))
    max_contacts = _limit(_("contacts"))
    messages_whatsapp_cloud = _limit(_("WhatsApp Cloud messages per month"))
    messages_whatsapp_web = _limit(_("WhatsApp (QR) messages per month"))
    messages_sms = _limit(_("SMS messages per month"))
    ai_tokens = _limit(_("AI tokens per month"))
    voice_minutes = _limit(_("voice minutes per month"))
    feature_voice = models.BooleanField(_("voice calls"), default=True)
    feature_ai = models.BooleanField(_("AI assistants"), default=True)
    feature_qr = models.BooleanField(_("WhatsApp (QR) channels"), default=True)
    feature_api = models.BooleanField(_("REST API"), default=True)
    feature_webhooks = models.BooleanField(_("outgoing webhooks"), default=True)
    is_default = models.BooleanField(
        _("default for new sign-ups"), default=False, help_text=_("The plan a new workspace starts on.")
    )
    is_active = models.BooleanField(_("active"), default=True)

    LIMIT_FIELDS = {
        Metric.SEATS: "max_users",
        Metric.CHANNELS: "max_channels",
        Metric.CONTACTS: "max_contacts",
        Metric.MESSAGES_WHATSAPP_CLOUD: "messages_whatsapp_cloud",
        Metric.MESSAGES_WHATSAPP_WEB: "messages_whatsapp_web",
        Metric.MESSAGES_SMS: "messages_sms",
        Metric.AI_TOKENS: "ai_tokens",
        Metric.VOICE_MINUTES: "voice_minutes",
    }

    class Meta:
        ordering = ["price_monthly", "code"]
        verbose_name = _("plan")
        verbose_name_plural = _("plans")

    def __str__(self) -> str:
        return self.name

    def limit(self, metric: str) -> int | None:
        value = getattr(self, self.LIMIT_FIELDS[Metric(metric)])
        return None if value is None else int(value)

    def has_feature(self, feature: str) -> bool:
        return bool(getattr(self, f"feature_{Feature(feature).value}"))


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


class UsageDay(models.Model):
    """How much of a metered metric a tenant used on a day (its own time zone's day). One row per tenant,
    metric and day, added to by one INSERT ... ON CONFLICT DO UPDATE at the point each event is recorded."""

    tenant = models.ForeignKey(Tenant, verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="usage_days")
    day = models.DateField(_("day"))
    metric = models.CharField(_("metric"), max_length=40, choices=Metric.choices)
    amount = models.PositiveBigIntegerField(_("amount"), default=0)

    class Meta:
        ordering = ["-day", "tenant", "metric"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "metric", "day"], name="usage_one_row_per_tenant_metric_day")
        ]
        verbose_name = _("usage day")
        verbose_name_plural = _("usage")

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.day} {self.metric} {self.amount}"


class LimitOverride(models.Model):
    """The superadmin's extension of one limit for one tenant: replaces the plan's limit until `until`
    (inclusive; blank: until removed). A blank limit is unlimited. The newest one in force wins."""

    tenant = models.ForeignKey(
        Tenant, verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="limit_overrides"
    )
    metric = models.CharField(_("metric"), max_length=40, choices=Metric.choices)
    limit = models.PositiveBigIntegerField(_("limit"), null=True, blank=True, help_text=_("Blank: unlimited."))
    until = models.DateField(_("until"), null=True, blank=True, help_text=_("Last day it applies; blank: no end."))
    reason = models.CharField(_("reason"), max_length=200)
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("set by"), null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "metric", "-created_at"], name="limit_override_recent")]
        verbose_name = _("limit override")
        verbose_name_plural = _("limit overrides")

    def __str__(self) -> str:
        return f"{self.tenant} {self.metric} -> {self.limit if self.limit is not None else '∞'}"
