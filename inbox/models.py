from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from core.fields import EncryptedJSONField
from crm.models import Contact


class ChannelKind(models.TextChoices):
    WHATSAPP_CLOUD = "whatsapp_cloud", _("WhatsApp Cloud API")
    WHATSAPP_WEB = "whatsapp_web", _("WhatsApp (QR code)")
    SMS_TWILIO = "sms_twilio", _("SMS (Twilio)")


class ChannelStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    PENDING = "pending", _("Waiting for the QR code scan")
    DISCONNECTED = "disconnected", _("Disconnected")
    NEEDS_RESCAN = "needs_rescan", _("Logged out: scan the QR code again")
    ERROR = "error", _("Error")


class ChannelOnboarding(models.TextChoices):
    MANUAL = "manual", _("Entered by hand")
    EMBEDDED_SIGNUP = "embedded_signup", _("Meta's Embedded Signup")


class Channel(models.Model):
    """A connected number. Credentials are encrypted at rest and never shown back."""

    kind = models.CharField(_("kind"), max_length=20, choices=ChannelKind.choices)
    name = models.CharField(_("name"), max_length=80)
    phone_number = models.CharField(_("phone number"), max_length=20)
    credentials = EncryptedJSONField(_("credentials"), default=dict)
    status = models.CharField(_("status"), max_length=20, choices=ChannelStatus.choices, default=ChannelStatus.ACTIVE)
    status_detail = models.CharField(max_length=200, blank=True)
    rate_limit_per_s = models.PositiveIntegerField(_("messages per second"), default=80)
    waba_id = models.CharField(_("WhatsApp Business Account id"), max_length=40, blank=True)
    phone_number_id = models.CharField(_("phone number id"), max_length=40, blank=True)
    # The Meta business portfolio that owns the WABA: WhatsApp user ids (BSUIDs) are scoped to it.
    business_portfolio_id = models.CharField(_("business portfolio id"), max_length=40, blank=True)
    onboarding = models.CharField(
        _("connected through"), max_length=20, choices=ChannelOnboarding.choices, default=ChannelOnboarding.MANUAL
    )
    # WhatsApp "coexistence": the business keeps using the WhatsApp Business app on this number.
    coexistence = models.BooleanField(_("keeps using the WhatsApp Business app"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("channel")
        verbose_name_plural = _("channels")

    def __str__(self) -> str:
        return f"{self.name} ({self.phone_number})"


class ConversationStatus(models.TextChoices):
    OPEN = "open", pgettext_lazy("conversation status", "Open")
    PENDING = "pending", pgettext_lazy("conversation status", "Pending")
    RESOLVED = "resolved", pgettext_lazy("conversation status", "Resolved")


class Conversation(models.Model):
    """The thread between one contact and one channel."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="conversations")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="conversations")
    status = models.CharField(max_length=10, choices=ConversationStatus.choices, default=ConversationStatus.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_message_at = models.DateTimeField(default=timezone.now)  # the inbox's sort key (with id)
    last_inbound_at = models.DateTimeField(null=True, blank=True)  # opens WhatsApp's 24-hour window
    unread_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contact", "channel"], name="conversation_one_per_pair")]
        indexes = [
            models.Index(fields=["-last_message_at", "-id"], name="conversation_recent"),
            models.Index(fields=["assignee", "-last_message_at", "-id"], name="conversation_by_assignee"),
            models.Index(fields=["status", "-last_message_at", "-id"], name="conversation_by_status"),
        ]

    def __str__(self) -> str:
        return f"{self.contact} @ {self.channel.name}"


class Direction(models.TextChoices):
    INBOUND = "in", _("Inbound")
    OUTBOUND = "out", _("Outbound")
    NOTE = "note", _("Internal note")  # seen by the team only, never sent


class MessageType(models.TextChoices):
    TEXT = "text", _("Text")
    IMAGE = "image", _("Image")
    AUDIO = "audio", _("Audio")
    VIDEO = "video", _("Video")
    DOCUMENT = "document", _("Document")
    STICKER = "sticker", _("Sticker")
    LOCATION = "location", _("Location")
    TEMPLATE = "template", _("Template")
    INTERACTIVE = "interactive", _("Interactive")
    REACTION = "reaction", _("Reaction")
    CONTACTS = "contacts", _("Contacts")
    UNSUPPORTED = "unsupported", _("Unsupported")


MEDIA_TYPES = frozenset(
    {MessageType.IMAGE, MessageType.AUDIO, MessageType.VIDEO, MessageType.DOCUMENT, MessageType.STICKER}
)


class MessageStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    READ = "read", _("Read")
    FAILED = "failed", _("Failed")
    UNKNOWN = "unknown", _("Outcome unknown")


class MessageOrigin(models.TextChoices):
    """Where a message was written. Only `platform` messages go through our sending path and our reactions
    (bots, rules, unread counts); the others happened in the WhatsApp Business app and are only recorded."""

    PLATFORM = "platform", _("This platform")
    BUSINESS_APP = "business_app", _("WhatsApp Business app (phone)")
    HISTORY = "history", _("Imported chat history")


class Message(models.Model):
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="messages")
    direction = models.CharField(max_length=4, choices=Direction.choices)
    type = models.CharField(max_length=12, choices=MessageType.choices, default=MessageType.TEXT)
    body = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True)  # location, interactive, reaction, contacts, raw extras
    media = models.FileField(upload_to="messages/%Y/%m/", null=True, blank=True)
    media_mime = models.CharField(max_length=100, blank=True)
    media_filename = models.CharField(max_length=200, blank=True)
    media_url = models.URLField(max_length=1000, blank=True)  # outbound by link
    provider_media_id = models.CharField(max_length=200, blank=True)  # inbound, until fetched
    template_name = models.CharField(max_length=512, blank=True)
    template_language = models.CharField(max_length=15, blank=True)
    template_variables = models.JSONField(default=dict, blank=True)
    is_marketing = models.BooleanField(default=False)
    origin = models.CharField(max_length=12, choices=MessageOrigin.choices, default=MessageOrigin.PLATFORM)
    status = models.CharField(max_length=10, choices=MessageStatus.choices)
    queued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)  # when a sender took it (queued -> sending)
    # The dispatcher's queue: a queued outbound message is sent once this is due (NULL: held, e.g. its
    # campaign is paused); `claimed_by` names the runner that took it, so a dead runner's work is found.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True)
    hold_quiet_hours = models.BooleanField(default=False)  # automated: waits out quiet hours at send time
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    provider_message_id = models.CharField(max_length=200, null=True, blank=True)
    reply_to_provider_id = models.CharField(max_length=200, blank=True)
    error_code = models.CharField(max_length=20, blank=True)
    error_text = models.CharField(max_length=500, blank=True)
    idempotency_key = models.CharField(max_length=100, unique=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "provider_message_id"],
                name="message_provider_id_once_per_channel",
                condition=Q(provider_message_id__isnull=False),
            )
        ]
        indexes = [
            models.Index(fields=["conversation", "-created_at"], name="message_timeline"),
            # the media guard finds a served file's message by its path
            models.Index(fields=["media"], name="message_media_path", condition=Q(media__gt="")),
            models.Index(fields=["status", "created_at"], name="message_in_flight", condition=Q(status="sending")),
            models.Index(
                fields=["channel", "next_attempt_at", "id"], name="message_dispatch_due", condition=Q(status="queued")
            ),
            models.Index(fields=["claimed_by"], name="message_claimed_by", condition=Q(status="sending")),
            # Word search over message text (built-in full text search; "simple": pt-BR and English alike).
            GinIndex(SearchVector("body", config="simple"), name="message_body_search"),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.type} {self.status}"


class HistoryImportStatus(models.TextChoices):
    IMPORTING = "importing", _("Importing")
    COMPLETE = "complete", _("Complete")
    DECLINED = "declined", _("Declined by the business")


class HistoryImport(models.Model):
    """The import of a coexistence number's chat history from the WhatsApp Business app (one per channel):
    how far Meta's phases and chunks have come, or that the business declined to share it."""

    channel = models.OneToOneField(Channel, on_delete=models.CASCADE, related_name="history_import")
    status = models.CharField(max_length=10, choices=HistoryImportStatus.choices, default=HistoryImportStatus.IMPORTING)
    phase = models.PositiveSmallIntegerField(default=0)  # the highest phase seen (0: day 0-1, 1: -90, 2: -180)
    chunk_order = models.PositiveIntegerField(default=0)  # the last chunk's order in that phase
    progress = models.PositiveSmallIntegerField(default=0)  # 0-100, as Meta reports it; never goes back
    chunks = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=20, blank=True)
    error_text = models.CharField(max_length=300, blank=True)
    declined_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"history of channel {self.channel_id}: {self.status} {self.progress}%"


class BusinessAppContact(models.Model):
    """A contact as the business's WhatsApp Business app address book has it (smb_app_state_sync). Removal
    from the phone's address book is recorded here; our CRM contact is never deleted for it."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="app_contacts")
    contact = models.ForeignKey(  # none when removed before we saw it added
        Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="app_address_book_entries"
    )
    phone = models.CharField(max_length=20)
    full_name = models.CharField(max_length=150, blank=True)
    first_name = models.CharField(max_length=150, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)  # set while it is out of the address book
    changed_at = models.DateTimeField()  # Meta's time of the latest change applied (older ones are ignored)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "phone"], name="app_contact_once_per_channel")]

    def __str__(self) -> str:
        return f"{self.full_name or self.phone} in the app of channel {self.channel_id}"


class CannedResponse(models.Model):
    """A saved reply, typed in the composer as /shortcut."""

    shortcut = models.SlugField(_("shortcut"), max_length=40, unique=True)
    title = models.CharField(_("title"), max_length=80)
    body = models.TextField(_("text"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["shortcut"]

    def __str__(self) -> str:
        return f"/{self.shortcut}"


class InboxSettings(models.Model):
    """The tenant's inbox rules (one row)."""

    agents_see_all = models.BooleanField(_("agents see every conversation"), default=True)
    auto_assign = models.BooleanField(_("assign new conversations round-robin"), default=False)

    def __str__(self) -> str:
        return "inbox settings"

    @classmethod
    def current(cls) -> InboxSettings:
        settings_row, _created = cls.objects.get_or_create(pk=1)
        return settings_row


class AgentState(models.Model):
    """Round-robin bookkeeping per team member."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    available = models.BooleanField(default=True)
    last_assigned_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"agent {self.user_id}"


class ConversationEventKind(models.TextChoices):
    ASSIGNED = "assigned", _("Assigned")
    UNASSIGNED = "unassigned", _("Unassigned")
    RESOLVED = "resolved", pgettext_lazy("conversation event", "Resolved")
    REOPENED = "reopened", _("Reopened")
    PENDING = "pending", pgettext_lazy("conversation event", "Marked pending")
    HANDED_OFF = "handed_off", _("Handed off to a person")
    STAGE_MOVED = "stage_moved", _("Stage moved")


class ConversationEvent(models.Model):
    """Something that happened to a conversation (assigned, resolved, handed off, its lead moved a stage),
    shown inline in the timeline between the messages. Never sent to the contact."""

    is_event = True  # the timeline template tells these from messages

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=ConversationEventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    detail = models.JSONField(default=dict, blank=True)  # names as they were then: assignee, stage, reason
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="conversation_event_timeline")]

    def __str__(self) -> str:
        return f"{self.kind} @ {self.conversation_id}"
