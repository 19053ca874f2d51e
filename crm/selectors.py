"""Reads on contacts. One filter spec serves the list page, segments, bulk actions, export and the API:

{"q": "ana", "tags": [1, 2], "opted_out": "whatsapp" | "sms" | "any" | "none",
 "channel": <channel id>, "fields": {"city": "Campinas"}, "segment": <segment id>,
 "phone": "with" | "without"}

`q` matches name, email, WhatsApp profile name and username (with or without "@"), phone digits, and a
WhatsApp user id (BSUID) exactly.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from crm.models import ConsentStatus, Contact, ContactIdentity, CustomField, IdentityKind, Segment


def contacts_filter(spec: dict[str, Any] | None = None) -> QuerySet[Contact]:
    return _contacts_filter(spec, frozenset())


def _contacts_filter(spec: dict[str, Any] | None, within: frozenset[int]) -> QuerySet[Contact]:
    spec = dict(spec or {})
    qs = Contact.objects.filter(erased_at=None)
    if spec.get("segment"):
        reference = str(spec.pop("segment"))
        segment = Segment.objects.filter(pk=int(reference)).first() if reference.isdigit() else None
        if segment is None or segment.pk in within:
            # A segment that is gone, or a loop saved before crm.services.segment_save refused loops:
            # nobody, never everybody (a campaign to this segment must not reach every contact).
            return qs.none()
        qs = qs.filter(pk__in=_contacts_filter(segment.filters, within | {segment.pk}).values("pk"))
    text = str(spec.get("q") or "").strip()
    if text:
        digits = "".join(ch for ch in text if ch.isdigit())
        match = Q(name__icontains=text) | Q(email__icontains=text) | Q(wa_profile_name__icontains=text)
        handle = text.lstrip("@")
        if handle:
            match |= Q(wa_username__icontains=handle)
        if len(digits) >= 3:
            match |= Q(phone__contains=digits)
        if "." in text and " " not in text:  # a BSUID ("BR.1502576394655843"), matched whole
            match |= Q(Exists(ContactIdentity.objects.filter(contact=OuterRef("pk"), value=text)))
        qs = qs.filter(match)
    if spec.get("phone") == "with":
        qs = qs.exclude(phone=None)
    elif spec.get("phone") == "without":
        qs = qs.filter(phone=None)
    tags = [int(t) for t in spec.get("tags") or [] if str(t).isdigit()]
    if tags:
        qs = qs.filter(tags__in=tags)
    opted_out = spec.get("opted_out")
    if opted_out in ("whatsapp", "sms"):
        qs = qs.filter(consents__medium=opted_out, consents__status=ConsentStatus.OPTED_OUT)
    elif opted_out == "any":
        qs = qs.filter(consents__status=ConsentStatus.OPTED_OUT)
    elif opted_out == "none":
        qs = qs.exclude(consents__status=ConsentStatus.OPTED_OUT)
    if spec.get("channel"):
        # The contacts with a conversation on that channel (inbox's relation, named by string).
        qs = qs.filter(conversations__channel_id=spec["channel"])
    known = set(CustomField.objects.values_list("key", flat=True))
    for key, value in (spec.get("fields") or {}).items():
        if key in known:  # only defined fields: a key is never allowed to become a lookup of its own
            qs = qs.filter(custom_fields__contains={key: value})
    joined = bool(tags or spec.get("channel") or opted_out in ("whatsapp", "sms", "any"))
    return (qs.distinct() if joined else qs).order_by("name", "phone", "pk")


def consent_summary(contact: Contact) -> dict[str, Any]:
    return {
        c.medium: {"status": c.status, "source": c.source, "changed_at": c.changed_at} for c in contact.consents.all()
    }


def contact_bsuid(contact: Contact, scope: str) -> str:
    """The contact's WhatsApp user id in this business portfolio, or its parent id (valid in every
    linked portfolio), or ""."""
    rows = dict(
        ContactIdentity.objects.filter(contact=contact)
        .filter(Q(kind=IdentityKind.WHATSAPP_BSUID, scope=scope) | Q(kind=IdentityKind.WHATSAPP_PARENT_BSUID, scope=""))
        .values_list("kind", "value")
    )
    return rows.get(IdentityKind.WHATSAPP_BSUID) or rows.get(IdentityKind.WHATSAPP_PARENT_BSUID) or ""


def contact_identities(contact: Contact) -> list[dict[str, Any]]:
    """Every key the contact is known by, for its page and the API: phone, BSUIDs, username."""
    found: list[dict[str, Any]] = []
    if contact.phone and not contact.phone.startswith("erased:"):
        found.append({"kind": "phone", "scope": "", "value": contact.phone})
    found += [
        {"kind": i.kind, "scope": i.scope, "value": i.value}
        for i in sorted(contact.identities.all(), key=lambda i: (i.kind, i.scope, i.value))  # type: ignore[attr-defined]
    ]
    if contact.wa_username:
        found.append({"kind": "wa_username", "scope": "", "value": contact.wa_username})
    return found
