from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Contact(models.Model):
    """A customer, known by an E.164 phone number."""

    phone = models.CharField(_("phone"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=150, blank=True)
    email = models.EmailField(_("email"), blank=True)
    wa_profile_name = models.CharField(_("WhatsApp profile name"), max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "phone"]
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.name or self.wa_profile_name or self.phone


class Medium(models.TextChoices):
    """What consent is given for: every WhatsApp channel shares one, SMS another."""

    WHATSAPP = "whatsapp", "WhatsApp"
    SMS = "sms", "SMS"


class ConsentStatus(models.TextChoices):
    OPTED_IN = "opted_in", _("Opted in")
    MARKETING_OPTED_OUT = "marketing_opted_out", _("Opted out of marketing")
    OPTED_OUT = "opted_out", _("Opted out")


class ContactConsent(models.Model):
    """The latest consent of a contact for one medium, with where and when it came from.
    No row means no explicit choice yet (marketing allowed where the business has a legal basis)."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="consents")
    medium = models.CharField(max_length=10, choices=Medium.choices)
    status = models.CharField(max_length=20, choices=ConsentStatus.choices)
    source = models.CharField(_("source"), max_length=80)  # e.g. "keyword:STOP", "whatsapp:user_preferences"
    changed_at = models.DateTimeField(_("changed at"))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contact", "medium"], name="consent_one_per_medium")]

    def __str__(self) -> str:
        return f"{self.contact_id} {self.medium}: {self.status}"
