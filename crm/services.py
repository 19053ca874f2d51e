"""Writes on contacts and consent."""

from __future__ import annotations

from datetime import datetime

import phonenumbers
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.models import ConsentStatus, Contact, ContactConsent, Medium


def phone_normalize(raw: str, default_region: str = "BR") -> str:
    """E.164 for a phone typed by a person or sent by a provider (`5511...`, `+55 (11) 9...`, `whatsapp:+55...`)."""
    text = raw.strip().removeprefix("whatsapp:")
    if text.isdigit() and len(text) >= 12 and not text.startswith("0"):
        text = "+" + text  # providers send bare international numbers: 5511987654321
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(_("%(phone)s is not a phone number.") % {"phone": raw}) from exc
    if not phonenumbers.is_possible_number(number):
        raise ValidationError(_("%(phone)s is not a valid phone number.") % {"phone": raw})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def contact_get_or_create(*, phone: str, name: str = "", wa_profile_name: str = "") -> Contact:
    """The contact with this phone, made if new; a newer WhatsApp profile name is kept."""
    e164 = phone_normalize(phone)
    contact, created = Contact.objects.get_or_create(
        phone=e164, defaults={"name": name, "wa_profile_name": wa_profile_name}
    )
    if not created and wa_profile_name and contact.wa_profile_name != wa_profile_name:
        contact.wa_profile_name = wa_profile_name
        contact.save(update_fields=["wa_profile_name", "updated_at"])
    return contact


def consent_record(
    *, contact: Contact, medium: str, status: str, source: str, at: datetime | None = None
) -> ContactConsent:
    consent, _created = ContactConsent.objects.update_or_create(
        contact=contact,
        medium=medium,
        defaults={"status": status, "source": source, "changed_at": at or timezone.now()},
    )
    return consent


def consent_allows(*, contact: Contact, medium: str, marketing: bool) -> bool:
    """May we send to this contact on this medium? Marketing needs no opt-out of any kind; a reply in a
    conversation is refused only after a full opt-out."""
    status = ContactConsent.objects.filter(contact=contact, medium=medium).values_list("status", flat=True).first()
    if status is None or status == ConsentStatus.OPTED_IN:
        return True
    if status == ConsentStatus.MARKETING_OPTED_OUT:
        return not marketing
    return False


MEDIUM_OF_KIND = {"whatsapp_cloud": Medium.WHATSAPP, "whatsapp_web": Medium.WHATSAPP, "sms_twilio": Medium.SMS}


OPT_OUT_KEYWORDS = frozenset(
    {
        "stop",
        "stopall",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
        "sair",
        "parar",
        "cancelar",
        "descadastrar",
    }
)
OPT_IN_KEYWORDS = frozenset({"start", "unstop"})
SMS_ONLY_OPT_IN = frozenset({"yes"})


def _fold(text: str) -> str:
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def consent_keyword(text: str, medium: str) -> str | None:
    """'out' or 'in' when the whole message is a consent keyword (any case, accents ignored), else None."""
    word = _fold(text).strip(" .!")
    if word in OPT_OUT_KEYWORDS:
        return "out"
    if word in OPT_IN_KEYWORDS or (medium == Medium.SMS and word in SMS_ONLY_OPT_IN):
        return "in"
    return None
