from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class TemplateStatus(models.TextChoices):
    APPROVED = "APPROVED", _("Approved")
    PENDING = "PENDING", _("Pending review")
    REJECTED = "REJECTED", _("Rejected")
    PAUSED = "PAUSED", _("Paused")
    DISABLED = "DISABLED", _("Disabled")
    IN_APPEAL = "IN_APPEAL", _("In appeal")
    PENDING_DELETION = "PENDING_DELETION", _("Pending deletion")
    ARCHIVED = "ARCHIVED", _("Archived")


class TemplateCategory(models.TextChoices):
    MARKETING = "MARKETING", _("Marketing")
    UTILITY = "UTILITY", _("Utility")
    AUTHENTICATION = "AUTHENTICATION", _("Authentication")


class MessageTemplate(models.Model):
    """A WhatsApp message template of a WhatsApp Business Account, mirrored from Meta."""

    waba_id = models.CharField(max_length=40)
    template_id = models.CharField(max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=512)
    language = models.CharField(_("language"), max_length=15)
    category = models.CharField(_("category"), max_length=20, choices=TemplateCategory.choices)
    status = models.CharField(_("status"), max_length=20, default=TemplateStatus.PENDING)
    parameter_format = models.CharField(max_length=12, default="POSITIONAL")
    components = models.JSONField(default=list)
    reason = models.CharField(max_length=300, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "language"]
        constraints = [models.UniqueConstraint(fields=["waba_id", "name", "language"], name="template_name_language")]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"

    def component(self, kind: str) -> dict[str, object]:
        return next((c for c in self.components if str(c.get("type", "")).upper() == kind), {})

    @property
    def body_text(self) -> str:
        return str(self.component("BODY").get("text", ""))

    @property
    def body_variable_count(self) -> int:
        import re

        return len(set(re.findall(r"\{\{\s*(\w+)\s*\}\}", self.body_text)))
