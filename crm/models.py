from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=50, unique=True)
    color = models.CharField(_("color"), max_length=7, default="#0f766e")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")

    def __str__(self) -> str:
        return self.name


class FieldKind(models.TextChoices):
    TEXT = "text", _("Text")
    NUMBER = "number", _("Number")
    DATE = "date", _("Date")
    CHOICE = "choice", _("Choice")
    BOOLEAN = "boolean", _("Yes/no")


class CustomField(models.Model):
    """A field the business adds to its contacts; values live in Contact.custom_fields under `key`."""

    key = models.SlugField(_("key"), max_length=40, unique=True)
    label = models.CharField(_("label"), max_length=80)
    kind = models.CharField(_("kind"), max_length=10, choices=FieldKind.choices, default=FieldKind.TEXT)
    choices = models.JSONField(_("choices"), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["label"]
        verbose_name = _("custom field")
        verbose_name_plural = _("custom fields")

    def __str__(self) -> str:
        return self.label


class Contact(models.Model):
    """A customer, known by an E.164 phone number when one is known, and by its WhatsApp identities
    (ContactIdentity: business-scoped user ids). A WhatsApp user with a username may never show a phone."""

    phone = models.CharField(_("phone"), max_length=20, unique=True, null=True, blank=True)
    name = models.CharField(_("name"), max_length=150, blank=True)
    email = models.EmailField(_("email"), blank=True)
    wa_profile_name = models.CharField(_("WhatsApp profile name"), max_length=150, blank=True)
    # The WhatsApp username (shown and searched, never a key: a user can change it).
    wa_username = models.CharField(_("WhatsApp username"), max_length=64, blank=True, db_index=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="contacts", verbose_name=_("tags"))
    custom_fields = models.JSONField(_("custom fields"), default=dict, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True)  # personal data erased on request (LGPD)
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
        username = f"@{self.wa_username}" if self.wa_username else ""
        return self.name or self.wa_profile_name or self.phone or username or f"#{self.pk}"


class IdentityKind(models.TextChoices):
    WHATSAPP_BSUID = "wa_bsuid", _("WhatsApp user id (BSUID)")
    WHATSAPP_PARENT_BSUID = "wa_parent_bsuid", _("WhatsApp parent user id")


class ContactIdentity(models.Model):
    """A key by which a provider knows the contact. A BSUID is scoped to the Meta business portfolio of
    the channel's WABA (`scope`: the portfolio id): one person seen through two portfolios has two. A
    parent BSUID is shared by linked portfolios, so its scope is "". One owner per (kind, scope, value)."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=20, choices=IdentityKind.choices)
    scope = models.CharField(max_length=64, blank=True)
    value = models.CharField(max_length=160)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "scope", "value"], name="identity_one_owner")]
        indexes = [models.Index(fields=["contact", "kind"], name="identity_by_contact")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.scope}:{self.value}"


class ContactMerge(models.Model):
    """Two contacts found to be one person (by hand, or when Meta revealed that a BSUID and a phone are
    the same user): what the merged one was, kept on the contact that remains."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="merges")
    merged_contact_id = models.PositiveBigIntegerField()
    merged_label = models.CharField(max_length=200, blank=True)
    merged_phone = models.CharField(max_length=20, blank=True)
    merged_identities = models.JSONField(default=list, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.merged_contact_id} -> {self.contact_id}"


class Medium(models.TextChoices):
    """What consent is given for: every WhatsApp channel shares one, SMS another, phone calls a third."""

    WHATSAPP = "whatsapp", "WhatsApp"
    SMS = "sms", "SMS"
    VOICE = "voice", _("Phone calls")


class ConsentStatus(models.TextChoices):
    OPTED_IN = "opted_in", _("Opted in")
    MARKETING_OPTED_OUT = "marketing_opted_out", _("Opted out of marketing")
    OPTED_OUT = "opted_out", _("Opted out")


class ContactConsent(models.Model):
    """The consent of a contact for one medium, with where and when it came from.
    No row means no explicit choice yet (marketing allowed where the business has a legal basis).

    Two levels are kept, each with the newest event that set it, so events applied out of order end
    where they would have in order (crm.services.consent_record): `all_*` is set by a full STOP/START
    (keywords, a carrier's 21610), `marketing_*` by those and by marketing-only choices (WhatsApp's
    user_preferences stop/resume). `status`, `source`, `changed_at` are the effective result, read by
    every filter: a full opt-out wins, then a marketing opt-out."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="consents")
    medium = models.CharField(max_length=10, choices=Medium.choices)
    status = models.CharField(max_length=20, choices=ConsentStatus.choices)
    source = models.CharField(_("source"), max_length=80)  # e.g. "keyword:STOP", "whatsapp:user_preferences"
    changed_at = models.DateTimeField(_("changed at"))
    all_status = models.CharField(max_length=20, choices=ConsentStatus.choices, blank=True)
    all_source = models.CharField(max_length=80, blank=True)
    all_changed_at = models.DateTimeField(null=True, blank=True)
    marketing_status = models.CharField(max_length=20, choices=ConsentStatus.choices, blank=True)
    marketing_source = models.CharField(max_length=80, blank=True)
    marketing_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contact", "medium"], name="consent_one_per_medium")]

    def __str__(self) -> str:
        return f"{self.contact_id} {self.medium}: {self.status}"


class Segment(models.Model):
    """A saved dynamic filter over contacts (see crm.selectors.contacts_filter for the spec)."""

    name = models.CharField(_("name"), max_length=80, unique=True)
    filters = models.JSONField(_("filters"), default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("segment")
        verbose_name_plural = _("segments")

    def __str__(self) -> str:
        return self.name


class ImportStatus(models.TextChoices):
    MAPPING = "mapping", _("Waiting for column mapping")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Importing")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class ContactImport(models.Model):
    """A CSV/XLSX upload, its column mapping and its progress. Bad rows land in a downloadable report."""

    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=200)
    columns = models.JSONField(default=list)
    mapping = models.JSONField(default=dict)  # column -> "phone" | "name" | "email" | "cf:<key>" | ""
    update_existing = models.BooleanField(default=True)  # dedupe by phone: update, or skip
    tag_ids = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=ImportStatus.choices, default=ImportStatus.MAPPING)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    error_report = models.FileField(upload_to="imports/%Y/%m/", blank=True)
    failure = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.original_name

    @property
    def percent(self) -> int:
        return int(100 * self.processed_rows / self.total_rows) if self.total_rows else 0
