"""Writes on contacts and consent."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core import events
from core.contributions import CONTACT_MERGE_GUARD, collect
from core.roles import Action, permission_check
from crm.models import (
    ConsentStatus,
    Contact,
    ContactConsent,
    ContactIdentity,
    ContactMerge,
    IdentityKind,
    Medium,
    Segment,
)
from crm.phones import phone_normalize
from tenants import usage
from tenants.models import Metric

logger = logging.getLogger(__name__)


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


def contact_get_or_create(
    *, phone: str, name: str = "", wa_profile_name: str = "", from_provider: bool = False
) -> Contact:
    """The contact with this phone, made if new; a newer WhatsApp profile name is kept. A phone typed by
    a person must be a valid number; one a provider reports (`from_provider`) need only be possible."""
    e164 = phone_normalize(phone, from_provider=from_provider)
    defaults = {"name": name, "wa_profile_name": wa_profile_name}
    if not from_provider and not Contact.objects.filter(phone=e164).exists():
        # a person adds a contact: the plan's number holds, counted under the limit's lock until the new
        # row commits (a customer who writes in is never refused)
        with transaction.atomic():
            usage.count_check(metric=Metric.CONTACTS, existing=Contact.objects.count, lock=True)
            contact, created = Contact.objects.get_or_create(phone=e164, defaults=defaults)
    else:
        contact, created = Contact.objects.get_or_create(phone=e164, defaults=defaults)
    if not created and wa_profile_name and contact.wa_profile_name != wa_profile_name:
        contact.wa_profile_name = wa_profile_name
        contact.save(update_fields=["wa_profile_name", "updated_at"])
    return contact


# --- identities: phone, WhatsApp business-scoped user ids, username ---------------------------------

# Meta's BSUID: an ISO 3166 alpha-2 country code, a period, up to 128 letters and digits
# ("BR.1502576394655843"); a parent BSUID has "ENT." after the country ("US.ENT.118157...").
BSUID_RE = re.compile(r"^[A-Z]{2}\.[A-Za-z0-9]{1,128}$")
PARENT_BSUID_RE = re.compile(r"^[A-Z]{2}\.ENT\.[A-Za-z0-9]{1,128}$")
USERNAME_MAX = 64


def bsuid_valid(value: str) -> bool:
    return bool(BSUID_RE.match(value)) and not PARENT_BSUID_RE.match(value)


def _identity_keys(scope: str, bsuid: str, parent_bsuid: str) -> list[tuple[str, str, str]]:
    """(kind, scope, value) of the ids given, in lookup order (parent first), malformed ones left out."""
    keys: list[tuple[str, str, str]] = []
    if parent_bsuid:
        if PARENT_BSUID_RE.match(parent_bsuid):
            keys.append((IdentityKind.WHATSAPP_PARENT_BSUID, "", parent_bsuid))
        else:
            logger.warning("a parent BSUID of unexpected shape was ignored")
    if bsuid:
        if bsuid_valid(bsuid) and scope:
            keys.append((IdentityKind.WHATSAPP_BSUID, scope, bsuid))
        else:
            logger.warning("a BSUID of unexpected shape (or without a portfolio scope) was ignored")
    return keys


def _identity_owner(kind: str, scope: str, value: str) -> Contact | None:
    row = ContactIdentity.objects.select_related("contact").filter(kind=kind, scope=scope, value=value).first()
    return row.contact if row is not None else None


def contact_resolve(
    *,
    scope: str,
    phone: str = "",
    bsuid: str = "",
    parent_bsuid: str = "",
    username: str = "",
    profile_name: str = "",
    create: bool = True,
) -> Contact | None:
    """The one contact a WhatsApp user is, from whatever identities the provider gave. Every WhatsApp
    path (inbound messages, statuses, preferences, echoes, history, app contacts) finds contacts here.

    `scope` is the Meta business portfolio of the channel's WABA (inbox.selectors.channel_identity_scope):
    a BSUID means a person only within it. `phone` is the number as the provider wrote it (`wa_id`,
    `from`), "" when withheld. Lookup goes parent BSUID -> BSUID -> phone; when they point at two
    contacts, those are one person and are merged (the phone-keyed one is kept, the merge recorded).
    The ids found are then all attached to that contact, and a newer profile name and username kept.
    Returns None only when `create=False` and no contact matched, or no usable identity was given.
    Raises ValidationError when the only identity is a phone that cannot be one."""
    keys = _identity_keys(scope, bsuid, parent_bsuid)
    e164 = ""
    if phone:
        try:
            e164 = phone_normalize(phone, from_provider=True)
        except ValidationError:
            if not keys:
                raise
            logger.warning("a provider phone that is no number was ignored (the BSUID identifies the user)")
    if not keys and not e164:
        return None
    username = username.lstrip("@")[:USERNAME_MAX]
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _contact_resolve(keys, e164, username, profile_name[:150], create)
        except IntegrityError:
            # A concurrent delivery created the same contact or identity first: look again, it is there now.
            if attempt:
                raise
    return None  # not reached


def _contact_resolve(
    keys: list[tuple[str, str, str]], e164: str, username: str, profile_name: str, create: bool
) -> Contact | None:
    found: list[Contact] = []
    for kind, scope, value in keys:
        owner = _identity_owner(kind, scope, value)
        if owner is not None and owner.pk not in {c.pk for c in found}:
            found.append(owner)
    by_phone = Contact.objects.filter(phone=e164).first() if e164 else None
    if by_phone is not None and by_phone.pk not in {c.pk for c in found}:
        found.append(by_phone)
    if not found:
        if not create:
            return None
        contact = Contact.objects.create(phone=e164 or None, wa_profile_name=profile_name, wa_username=username)
    else:
        # The phone-keyed contact stays (campaigns and imports know it); else the first one found.
        contact = by_phone or found[0]
        for other in found:
            if other.pk != contact.pk:
                contact = contact_merge(
                    primary=contact, duplicate=other, reason=_("WhatsApp showed they are the same user")
                )
    ContactIdentity.objects.bulk_create(
        [ContactIdentity(contact=contact, kind=kind, scope=scope, value=value) for kind, scope, value in keys],
        ignore_conflicts=True,
    )
    changed: list[str] = []
    if e164 and not contact.phone:
        contact.phone = e164
        changed.append("phone")
    if profile_name and contact.wa_profile_name != profile_name:
        contact.wa_profile_name = profile_name
        changed.append("wa_profile_name")
    if username and contact.wa_username != username:
        contact.wa_username = username
        changed.append("wa_username")
    if changed:
        contact.save(update_fields=[*changed, "updated_at"])
    return contact


def contact_identity_rekey(
    *,
    scope: str,
    previous_bsuid: str,
    bsuid: str,
    previous_parent_bsuid: str = "",
    parent_bsuid: str = "",
    phone: str = "",
) -> Contact | None:
    """A user's BSUID changed (Meta regenerates it when they change their phone number): the contact
    known by the previous id is now known by the new one, and by the new phone when it is given (the
    old phone is no longer theirs). A contact already holding the new id or phone is the same person
    and is merged in. None when nobody had the previous ids (then nothing is created)."""
    previous = _identity_keys(scope, previous_bsuid, previous_parent_bsuid)
    current = _identity_keys(scope, bsuid, parent_bsuid)
    e164 = ""
    if phone:
        try:
            e164 = phone_normalize(phone, from_provider=True)
        except ValidationError:
            logger.warning("a changed phone that is no number was ignored")
    with transaction.atomic():
        contact = next((c for c in (_identity_owner(*key) for key in previous) if c is not None), None)
        if contact is None:
            return contact_resolve(scope=scope, phone=e164, bsuid=bsuid, parent_bsuid=parent_bsuid, create=False)
        for key in current:
            other = _identity_owner(*key)
            if other is not None and other.pk != contact.pk:
                contact = contact_merge(primary=contact, duplicate=other, reason=_("WhatsApp user id changed"))
        ContactIdentity.objects.filter(contact=contact, kind__in=[kind for kind, _scope, _value in current]).filter(
            scope__in=[s for _kind, s, _value in current]
        ).exclude(value__in=[value for _kind, _scope, value in current]).filter(
            value__in=[value for _kind, _scope, value in previous]
        ).delete()
        ContactIdentity.objects.bulk_create(
            [ContactIdentity(contact=contact, kind=kind, scope=s, value=value) for kind, s, value in current],
            ignore_conflicts=True,
        )
        if e164 and contact.phone != e164:
            holder = Contact.objects.filter(phone=e164).exclude(pk=contact.pk).first()
            if holder is not None:
                contact = contact_merge(primary=contact, duplicate=holder, reason=_("WhatsApp user id changed"))
            Contact.objects.filter(pk=contact.pk).update(phone=e164, updated_at=timezone.now())
            contact.phone = e164
    return contact


def consent_record(
    *,
    contact: Contact,
    medium: str,
    status: str,
    source: str,
    at: datetime | None = None,
    marketing_only: bool = False,
) -> ContactConsent:
    """Apply one consent event that happened `at` (the event's own time; now when omitted).

    `OPTED_OUT` is a full opt-out (STOP, a carrier's 21610) and `OPTED_IN` a full opt-in (START);
    `MARKETING_OPTED_OUT` stops marketing only, and `OPTED_IN` with `marketing_only=True` lifts only
    that (WhatsApp's user_preferences "resume"), never a full opt-out, whenever it came.
    Events arrive out of order (webhook retries, two providers), so each level keeps its newest event
    and an older one changes nothing: the result is the same in any order of arrival. On a tie in time
    the opt-out wins. Returns the row with the effective status."""
    at = at or timezone.now()
    marketing_only = marketing_only or status == ConsentStatus.MARKETING_OPTED_OUT
    opting_out = status in (ConsentStatus.OPTED_OUT, ConsentStatus.MARKETING_OPTED_OUT)
    with transaction.atomic():
        # The row exists from here on and is locked: concurrent events for one contact apply one by one.
        ContactConsent.objects.bulk_create(
            [ContactConsent(contact=contact, medium=medium, status=ConsentStatus.OPTED_IN, source="", changed_at=at)],
            ignore_conflicts=True,
        )
        consent = ContactConsent.objects.select_for_update().get(contact=contact, medium=medium)
        if not marketing_only:
            level = ConsentStatus.OPTED_OUT if opting_out else ConsentStatus.OPTED_IN
            if _consent_newer(consent.all_status, consent.all_changed_at, level, at):
                consent.all_status, consent.all_source, consent.all_changed_at = level, source, at
        level = ConsentStatus.MARKETING_OPTED_OUT if opting_out else ConsentStatus.OPTED_IN
        if _consent_newer(consent.marketing_status, consent.marketing_changed_at, level, at):
            consent.marketing_status, consent.marketing_source, consent.marketing_changed_at = level, source, at
        consent.status, consent.source, consent.changed_at = _consent_effective(consent)
        consent.save()
    return consent


def _consent_newer(stored: str, stored_at: datetime | None, status: str, at: datetime) -> bool:
    if stored_at is None or at > stored_at:
        return True
    return at == stored_at and stored == ConsentStatus.OPTED_IN and status != ConsentStatus.OPTED_IN


def _consent_effective(consent: ContactConsent) -> tuple[str, str, datetime]:
    if consent.all_status == ConsentStatus.OPTED_OUT and consent.all_changed_at:
        return ConsentStatus.OPTED_OUT, consent.all_source, consent.all_changed_at
    if consent.marketing_status == ConsentStatus.MARKETING_OPTED_OUT and consent.marketing_changed_at:
        return ConsentStatus.MARKETING_OPTED_OUT, consent.marketing_source, consent.marketing_changed_at
    levels = [(consent.marketing_changed_at, consent.marketing_source), (consent.all_changed_at, consent.all_source)]
    known = [(at, source) for at, source in levels if at is not None]
    if not known:
        return ConsentStatus.OPTED_IN, consent.source, consent.changed_at
    at, source = max(known, key=lambda pair: pair[0])
    return ConsentStatus.OPTED_IN, source, at


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
        contact.phone = phone_normalize(changes["phone"]) if changes["phone"] else None
    for attr in ("name", "email"):
        if attr in changes:
            setattr(contact, attr, changes[attr] or "")
    if "custom_fields" in changes:
        merged = {**contact.custom_fields, **custom_fields_clean(changes["custom_fields"] or {})}
        contact.custom_fields = {k: v for k, v in merged.items() if v is not None}
    contact.full_clean(exclude=["tags"])
    contact.save()
    if "tags" in changes:
        before = set(contact.tags.values_list("pk", flat=True))
        wanted = list(Tag.objects.filter(pk__in=changes["tags"]))
        contact.tags.set(wanted)
        for tag in wanted:
            if tag.pk not in before:
                _tagged_announce([contact.pk], tag)
    return contact


def _tagged_announce(contact_ids: list[int], tag: Any) -> None:
    """`contact.tagged` for each contact the tag is newly on (automation rules start from it)."""
    schema = connection.schema_name  # type: ignore[attr-defined]
    for contact_id in contact_ids:
        events.announce(events.CONTACT_TAGGED, schema, {"contact_id": contact_id, "tag_id": tag.pk, "tag": tag.name})


def contacts_tag(*, contacts: Any, tag: Any) -> int:
    """Tag every contact of a queryset (a selection or all that match a filter); returns how many."""
    through = Contact.tags.through
    ids = list(contacts.values_list("pk", flat=True))
    already = set(through.objects.filter(tag_id=tag.pk, contact_id__in=ids).values_list("contact_id", flat=True))
    through.objects.bulk_create([through(contact_id=i, tag_id=tag.pk) for i in ids], ignore_conflicts=True)
    _tagged_announce([i for i in ids if i not in already], tag)
    return len(ids)


def contacts_untag(*, contacts: Any, tag: Any) -> int:
    return Contact.tags.through.objects.filter(contact_id__in=contacts.values("pk"), tag_id=tag.pk).delete()[0]


def contacts_delete(*, contacts: Any) -> int:
    return Contact.objects.filter(pk__in=contacts.values("pk")).delete()[1].get("crm.Contact", 0)


def contact_erase(*, contact: Contact) -> None:
    """Erase a person's data on request (LGPD): identity, custom fields, message content and media, the
    raw provider events that mention the phone; other apps wipe what they hold on `contact.erased`
    (voice: transcripts and recordings). The row stays, anonymous, so counts and audit trails add up."""
    from accounts.audit import audit_record
    from accounts.models import AuditAction
    from intake.services import events_erase_mentioning
    from tenants.selectors import tenant_current

    with transaction.atomic():
        needles = [] if (contact.phone or "").startswith("erased:") else phone_spellings(contact.phone or "")
        # A BSUID's alphanumeric tail is as unique as the id (the intake's LIKE takes letters and digits only).
        needles += [v.rsplit(".", 1)[-1] for v in contact.identities.values_list("value", flat=True)]  # type: ignore[attr-defined]
        if needles:
            events_erase_mentioning(tenant_id=tenant_current().pk, needles=needles)
        contact.identities.all().delete()  # type: ignore[attr-defined]
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
            wa_username="",
            custom_fields={},
            erased_at=timezone.now(),
        )
        audit_record(
            action=AuditAction.ERASE, target_type="crm.contact", target_id=contact.pk, target_label=f"#{contact.pk}"
        )
        events.announce(events.CONTACT_ERASED, connection.schema_name, {"contact_id": contact.pk})  # type: ignore[attr-defined]


def contact_merge(
    *, primary: Contact, duplicate: Contact, user: Any = None, role: str | None = None, reason: str = ""
) -> Contact:
    """Fold `duplicate` into `primary`: conversations and messages, identities, tags, empty fields
    (phone included), consent (the most recent choice per medium and level wins), and every other row
    that points at a contact (lead cards, calls, campaign recipients, enrollments) where it can move
    without breaking a uniqueness rule (a campaign both got stays the primary's). The duplicate is
    deleted and the merge recorded on the primary (ContactMerge), with the `reason`.

    When a member asks (`user`, `role`), the role table must allow it and the member must be able to see
    every conversation of both contacts (the inbox's guard), else PermissionDenied: a merge would otherwise
    pull messages they may not read into a conversation they can."""
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
        identities = list(duplicate.identities.values("kind", "scope", "value"))  # type: ignore[attr-defined]
        duplicate.identities.update(contact=primary)  # type: ignore[attr-defined]
        _contact_rows_move(primary, duplicate)
        primary.tags.add(*duplicate.tags.all())
        primary.name = primary.name or duplicate.name
        primary.email = primary.email or duplicate.email
        primary.wa_profile_name = primary.wa_profile_name or duplicate.wa_profile_name
        primary.wa_username = primary.wa_username or duplicate.wa_username
        primary.custom_fields = {**duplicate.custom_fields, **primary.custom_fields}
        for consent in duplicate.consents.all():  # both histories, as if every event had come to one contact
            if consent.all_changed_at:
                consent_record(
                    contact=primary,
                    medium=consent.medium,
                    status=consent.all_status,
                    source=consent.all_source,
                    at=consent.all_changed_at,
                )
            if consent.marketing_changed_at:
                consent_record(
                    contact=primary,
                    medium=consent.medium,
                    status=consent.marketing_status,
                    source=consent.marketing_source,
                    at=consent.marketing_changed_at,
                    marketing_only=True,
                )
        ContactMerge.objects.create(
            contact=primary,
            merged_contact_id=duplicate.pk,
            merged_label=duplicate.display_name[:200],
            merged_phone=duplicate.phone or "",
            merged_identities=identities,
            reason=reason[:200],
        )
        phone = duplicate.phone
        duplicate.delete()
        if not primary.phone and phone and not phone.startswith("erased:"):
            primary.phone = phone
        primary.save()
    return primary


_MERGE_HANDLED = frozenset({"conversations", "identities", "consents", "merges"})


def _contact_rows_move(primary: Contact, duplicate: Contact) -> None:
    """Point the duplicate's rows in other apps (found from the model graph, so crm imports none of
    them) at the primary. A row that cannot move (the primary already has its twin: a uniqueness rule)
    stays and goes with the duplicate, as it would have."""
    for relation in Contact._meta.related_objects:
        if relation.many_to_many or not relation.field.concrete or relation.get_accessor_name() in _MERGE_HANDLED:
            continue
        model, column = relation.related_model, relation.field.name
        rows = model._default_manager.filter(**{column: duplicate})  # type: ignore[union-attr]
        try:
            with transaction.atomic():
                rows.update(**{column: primary})
        except IntegrityError:
            for pk in list(rows.values_list("pk", flat=True)):
                try:
                    with transaction.atomic():
                        model._default_manager.filter(pk=pk).update(**{column: primary})  # type: ignore[union-attr]
                except IntegrityError:
                    continue


# --- segments ------------------------------------------------------------------------------------

SEGMENT_MAX_DEPTH = 5  # a segment may build on another, a few levels deep


def segment_save(*, name: str, filters: Any, segment: Segment | None = None) -> Segment:
    """Create (`segment=None`) or edit a segment. Its filters may narrow another segment's contacts
    (`{"segment": <id>}`) but never its own, directly or through a chain: that is refused here, so the
    page and the API both get the same ValidationError."""
    if not isinstance(filters, dict):
        raise ValidationError({"filters": _("The filters must be an object.")})
    segment = segment or Segment()
    segment.name, segment.filters = name.strip(), filters
    _segment_chain_check(segment.pk, filters.get("segment"))
    segment.full_clean()
    segment.save()
    return segment


def _segment_chain_check(own_pk: int | None, reference: Any) -> None:
    seen: set[int] = {own_pk} if own_pk else set()
    depth = 0
    while reference not in (None, "", 0):
        try:
            pk = int(reference)
        except (TypeError, ValueError):
            raise ValidationError({"filters": _("The segment filter must be a segment's id.")}) from None
        if pk in seen:
            message = _("A segment cannot include itself, directly or through other segments.")
            raise ValidationError({"filters": message})
        depth += 1
        if depth > SEGMENT_MAX_DEPTH:
            message = _("Segments can build on each other at most %(depth)s deep.") % {"depth": SEGMENT_MAX_DEPTH}
            raise ValidationError({"filters": message})
        seen.add(pk)
        found = Segment.objects.filter(pk=pk).values_list("filters", flat=True).first()
        if found is None:
            raise ValidationError({"filters": _("There is no segment %(id)s.") % {"id": pk}})
        reference = found.get("segment") if isinstance(found, dict) else None
