"""Writes on contacts and consent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import phonenumbers
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from core.contributions import CONTACT_MERGE_GUARD, collect
from core.roles import Action, permission_check
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
    number = _with_ninth_digit(number)
    if not phonenumbers.is_possible_number(number):
        raise ValidationError(_("%(phone)s is not a valid phone number.") % {"phone": raw})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_spellings(e164: str) -> list[str]:
    """The digits of a phone as providers write it: `5511987654321`, and for a Brazilian mobile also
    without the ninth digit (`551187654321`, as WhatsApp ids of older accounts are)."""
    digits = e164.lstrip("+")
    if not digits.isdigit():
        return []
    spellings = [digits]
    if digits.startswith("55") and len(digits) == 13 and digits[4] == "9":
        spellings.append(digits[:4] + digits[5:])
    return spellings


def _with_ninth_digit(number: phonenumbers.PhoneNumber) -> phonenumbers.PhoneNumber:
    """Brazilian mobiles gained a leading 9 (2012-2016); old 8-digit mobile numbers still circulate in
    spreadsheets. `(11) 8765-4321` becomes `+55 11 98765-4321` when that is a valid mobile."""
    national = str(number.national_number)
    if number.country_code != 55 or len(national) != 10 or national[2] not in "6789":
        return number
    if phonenumbers.is_valid_number(number):
        return number
    candidate = phonenumbers.PhoneNumber(country_code=55, national_number=int(national[:2] + "9" + national[2:]))
    return candidate if phonenumbers.is_valid_number(candidate) else number


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


# --- custom fields, tags, edits ---------------------------------------------------------------


def custom_fields_clean(values: dict[str, Any]) -> dict[str, Any]:
    """Validate values against the field definitions; returns them typed for JSON. Raises ValidationError."""
    from crm.models import CustomField, FieldKind

    definitions = {f.key: f for f in CustomField.objects.all()}
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, raw in values.items():
        field = definitions.get(key)
        if field is None:
            errors[key] = _("There is no custom field %(key)s.") % {"key": key}
            continue
        if raw in (None, ""):
            cleaned[key] = None
            continue
        try:
            cleaned[key] = _coerce(field.kind, raw, field.choices)
        except (TypeError, ValueError):
            messages: dict[str, str] = {
                FieldKind.NUMBER: _("Enter a number."),
                FieldKind.DATE: _("Enter a date as YYYY-MM-DD."),
                FieldKind.CHOICE: _("Choose one of: %(choices)s.") % {"choices": ", ".join(map(str, field.choices))},
                FieldKind.BOOLEAN: _("Enter yes or no."),
            }
            errors[key] = messages.get(str(field.kind), _("Enter a valid value."))
    if errors:
        raise ValidationError(errors)
    return cleaned


def _coerce(kind: str, raw: Any, choices: list[Any]) -> Any:
    from datetime import date
    from decimal import Decimal, InvalidOperation

    if kind == "number":
        try:
            number = Decimal(str(raw).replace(",", "."))
        except InvalidOperation as exc:
            raise ValueError from exc
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "date":
        return date.fromisoformat(str(raw)).isoformat()
    if kind == "choice":
        if raw not in choices:
            raise ValueError
        return raw
    if kind == "boolean":
        text = str(raw).strip().lower()
        if text in {"true", "1", "yes", "sim", "s", "y"} or raw is True:
            return True
        if text in {"false", "0", "no", "nao", "não", "n"} or raw is False:
            return False
        raise ValueError
    return str(raw)[:500]


def contact_update(*, contact: Contact, **changes: Any) -> Contact:
    """Edit a contact's name, email, custom fields (merged, validated) and tags (replaced)."""
    from crm.models import Tag

    if "phone" in changes:
        contact.phone = phone_normalize(changes["phone"])
    for attr in ("name", "email"):
        if attr in changes:
            setattr(contact, attr, changes[attr] or "")
    if "custom_fields" in changes:
        merged = {**contact.custom_fields, **custom_fields_clean(changes["custom_fields"] or {})}
        contact.custom_fields = {k: v for k, v in merged.items() if v is not None}
    contact.full_clean(exclude=["tags"])
    contact.save()
    if "tags" in changes:
        contact.tags.set(Tag.objects.filter(pk__in=changes["tags"]))
    return contact


def contacts_tag(*, contacts: Any, tag: Any) -> int:
    """Tag every contact of a queryset (a selection or all that match a filter); returns how many."""
    through = Contact.tags.through
    ids = list(contacts.values_list("pk", flat=True))
    through.objects.bulk_create([through(contact_id=i, tag_id=tag.pk) for i in ids], ignore_conflicts=True)
    return len(ids)


def contacts_untag(*, contacts: Any, tag: Any) -> int:
    return Contact.tags.through.objects.filter(contact_id__in=contacts.values("pk"), tag_id=tag.pk).delete()[0]


def contacts_delete(*, contacts: Any) -> int:
    return Contact.objects.filter(pk__in=contacts.values("pk")).delete()[1].get("crm.Contact", 0)


def contact_erase(*, contact: Contact) -> None:
    """Erase a person's data on request (LGPD): identity, custom fields, message content and media, the
    raw provider events that mention the phone; other apps wipe what they hold on `contact.erased`
    (voice: transcripts and recordings). The row stays, anonymous, so counts and audit trails add up."""
    from django.db import connection, transaction

    from accounts.audit import audit_record
    from accounts.models import AuditAction
    from core import events
    from intake.services import events_erase_mentioning
    from tenants.selectors import tenant_current

    with transaction.atomic():
        if not contact.phone.startswith("erased:"):
            events_erase_mentioning(tenant_id=tenant_current().pk, needles=phone_spellings(contact.phone))
        for conversation in contact.conversations.all():  # type: ignore[attr-defined]
            for message in conversation.messages.exclude(media=""):
                message.media.delete(save=False)
            conversation.messages.update(body="", payload={}, media="", media_filename="", template_variables={})
        contact.tags.clear()
        Contact.objects.filter(pk=contact.pk).update(
            phone=f"erased:{contact.pk}",
            name="",
            email="",
            wa_profile_name="",
            custom_fields={},
            erased_at=timezone.now(),
        )
        audit_record(
            action=AuditAction.ERASE, target_type="crm.contact", target_id=contact.pk, target_label=f"#{contact.pk}"
        )
        events.announce(events.CONTACT_ERASED, connection.schema_name, {"contact_id": contact.pk})  # type: ignore[attr-defined]


def contact_merge(*, primary: Contact, duplicate: Contact, user: Any = None, role: str | None = None) -> Contact:
    """Fold `duplicate` into `primary`: conversations and messages, tags, empty fields, consent (the most
    recent choice per medium wins). The duplicate is deleted.

    When a member asks (`user`, `role`), the role table must allow it and the member must be able to see
    every conversation of both contacts (the inbox's guard), else PermissionDenied: a merge would otherwise
    pull messages they may not read into a conversation they can."""
    from django.db import transaction

    if primary.pk == duplicate.pk:
        raise ValidationError(_("Choose two different contacts."))
    if user is not None:
        permission_check(role, Action.CONTACT_MERGE)
        refusals = collect(CONTACT_MERGE_GUARD, contacts=[primary, duplicate], user=user, role=role)
        if refusals:
            raise PermissionDenied(" ".join(refusals))
    with transaction.atomic():
        for conversation in duplicate.conversations.all():  # type: ignore[attr-defined]
            existing = primary.conversations.filter(channel_id=conversation.channel_id).first()  # type: ignore[attr-defined]
            if existing is None:
                conversation.contact = primary
                conversation.save(update_fields=["contact"])
            else:
                conversation.messages.update(conversation=existing)
                conversation.delete()
        primary.tags.add(*duplicate.tags.all())
        primary.name = primary.name or duplicate.name
        primary.email = primary.email or duplicate.email
        primary.wa_profile_name = primary.wa_profile_name or duplicate.wa_profile_name
        primary.custom_fields = {**duplicate.custom_fields, **primary.custom_fields}
        for consent in duplicate.consents.all():
            mine = primary.consents.filter(medium=consent.medium).first()
            if mine is None or mine.changed_at < consent.changed_at:
                consent_record(
                    contact=primary,
                    medium=consent.medium,
                    status=consent.status,
                    source=consent.source,
                    at=consent.changed_at,
                )
        duplicate.delete()
        primary.save()
    return primary
