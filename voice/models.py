"""Voice agents (a Retell LLM + agent pair), the tenant's Retell settings, and the calls."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from core.fields import EncryptedTextField

# Twilio <Say> voices that speak Brazilian Portuguese (Amazon Polly and Google through Twilio).
SAY_VOICES = [
    ("Polly.Camila", "Camila (Polly)"),
    ("Polly.Vitoria", "Vitória (Polly)"),
    ("Polly.Thiago", "Thiago (Polly)"),
    ("Polly.Ricardo", "Ricardo (Polly)"),
    ("Google.pt-BR-Standard-A", "Google pt-BR A"),
    ("Google.pt-BR-Standard-B", "Google pt-BR B"),
]
DEFAULT_FALLBACK_MESSAGE = "Olá! Obrigado por ligar. No momento a nossa assistente não pode atender."
DEFAULT_VOICEMAIL_PROMPT = "Por favor, deixe o seu recado após o sinal. Retornaremos em breve."


class FallbackAction(models.TextChoices):
    VOICEMAIL = "voicemail", _("Record a voicemail")
    FORWARD = "forward", _("Forward to a person")


class VoiceSettings(models.Model):
    """One row per tenant: the Retell API key (encrypted, write-only), the route of our public webhooks,
    the Twilio account whose voice webhooks we check (its own signing token, not an SMS channel's), and
    what a caller hears when no AI agent can take the call."""

    api_key = EncryptedTextField(_("Retell API key"), blank=True, default="")
    webhook_route = models.CharField(max_length=40, unique=True)
    twilio_account_sid = models.CharField(_("Twilio account SID"), max_length=64, blank=True)
    twilio_auth_token = EncryptedTextField(_("Twilio auth token"), blank=True, default="")
    fallback_message = models.TextField(_("message when no agent answers"), default=DEFAULT_FALLBACK_MESSAGE)
    fallback_voice = models.CharField(
        _("voice of that message"), max_length=40, choices=SAY_VOICES, default="Polly.Camila"
    )
    fallback_action = models.CharField(
        _("then"), max_length=12, choices=FallbackAction.choices, default=FallbackAction.VOICEMAIL
    )
    fallback_number = models.CharField(
        _("forward to"), max_length=20, blank=True, help_text=_("A person's number, e.g. +5511999990000.")
    )
    voicemail_prompt = models.TextField(_("voicemail prompt"), default=DEFAULT_VOICEMAIL_PROMPT)
    sip_termination_uri = models.CharField(
        _("SIP trunk termination URI"),
        max_length=200,
        blank=True,
        help_text=_("Your Twilio Elastic SIP trunk's termination URI, e.g. example.pstn.twilio.com."),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("voice settings")
        verbose_name_plural = _("voice settings")

    def __str__(self) -> str:
        return f"voice settings ({'key set' if self.api_key else 'no key'})"  # never the key itself

    def __repr__(self) -> str:
        return f"<VoiceSettings {self.pk}>"

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key)

    @property
    def has_twilio(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)


class AgentDirection(models.TextChoices):
    INBOUND = "inbound", _("Inbound only")
    OUTBOUND = "outbound", _("Outbound only")
    BOTH = "both", _("Inbound and outbound")


class AgentStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SYNCED = "synced", _("Synced")
    PUBLISHED = "published", _("Published")
    ERROR = "error", _("Error")


class VoicemailAction(models.TextChoices):
    HANG_UP = "hangup", _("Hang up")
    LEAVE_MESSAGE = "message", _("Leave a message")


LLM_MODELS = [
    ("gpt-4o-mini", "GPT-4o mini"),
    ("gpt-4o", "GPT-4o"),
    ("gpt-4.1", "GPT-4.1"),
    ("gpt-4.1-mini", "GPT-4.1 mini"),
    ("claude-3.5-sonnet", "Claude 3.5 Sonnet"),
    ("claude-3-haiku", "Claude 3 Haiku"),
]


class VoiceAgent(models.Model):
    name = models.CharField(_("name"), max_length=120)
    prompt = models.TextField(_("prompt"), help_text=_("What the agent knows and how it should talk."))
    begin_message = models.TextField(
        _("first sentence"), blank=True, help_text=_("What the agent says when the call connects.")
    )
    voice_id = models.CharField(_("voice"), max_length=80, default="11labs-Adrian")
    language = models.CharField(_("language"), max_length=10, default="pt-BR")
    from_number = models.CharField(
        _("phone number"),
        max_length=20,
        blank=True,
        help_text=_("The number calls are made from, e.g. +5511999990000."),
    )
    direction = models.CharField(_("calls"), max_length=10, choices=AgentDirection.choices, default=AgentDirection.BOTH)
    llm_model = models.CharField(_("LLM model"), max_length=40, choices=LLM_MODELS, default="gpt-4o-mini")
    voicemail_action = models.CharField(
        _("on a voicemail"), max_length=10, choices=VoicemailAction.choices, default=VoicemailAction.HANG_UP
    )
    voicemail_message = models.TextField(
        _("voicemail message"), blank=True, help_text=_("Left on the voicemail when the agent reaches one.")
    )
    retell_agent_id = models.CharField(max_length=80, blank=True)
    retell_llm_id = models.CharField(max_length=80, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=AgentStatus.choices, default=AgentStatus.DRAFT)
    status_reason = models.CharField(_("reason"), max_length=300, blank=True)
    published_version = models.PositiveIntegerField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    # Retell unreachable or overloaded: beat syncs again at this time (backing off); None: no retry due
    sync_retry_at = models.DateTimeField(null=True, blank=True)
    sync_attempts = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("voice agent")
        verbose_name_plural = _("voice agents")

    def __str__(self) -> str:
        return self.name

    @property
    def is_synced(self) -> bool:
        return bool(self.retell_agent_id and self.retell_llm_id)

    @property
    def is_published(self) -> bool:
        return self.status == AgentStatus.PUBLISHED and self.is_synced

    @property
    def answers_inbound(self) -> bool:
        return self.direction in (AgentDirection.INBOUND, AgentDirection.BOTH)

    @property
    def calls_outbound(self) -> bool:
        return self.direction in (AgentDirection.OUTBOUND, AgentDirection.BOTH)


class VoiceNumber(models.Model):
    """One of the tenant's Twilio numbers used for calls: the agent answering it, and what the app set up."""

    e164 = models.CharField(_("number"), max_length=20, unique=True)
    twilio_sid = models.CharField(max_length=40, blank=True)
    friendly_name = models.CharField(_("name"), max_length=120, blank=True)
    agent = models.ForeignKey(
        VoiceAgent,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="numbers",
        verbose_name=_("inbound agent"),
    )
    voice_url = models.CharField(max_length=500, blank=True)  # what Twilio has, as last read or set by us
    status_callback_url = models.CharField(max_length=500, blank=True)
    retell_imported_at = models.DateTimeField(null=True, blank=True)
    caller_id_verified_at = models.DateTimeField(null=True, blank=True)
    caller_id_code = models.CharField(max_length=10, blank=True)  # shown until Twilio confirms the caller ID
    last_test_call_sid = models.CharField(max_length=64, blank=True)
    last_test_call_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["e164"]
        verbose_name = _("voice number")
        verbose_name_plural = _("voice numbers")

    def __str__(self) -> str:
        return self.e164


class CallDirection(models.TextChoices):
    INBOUND = "in", _("Inbound")
    OUTBOUND = "out", _("Outbound")


class CallStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    REGISTERED = "registered", _("Registered")
    ONGOING = "ongoing", _("Ongoing")
    ENDED = "ended", _("Ended")
    ERROR = "error", _("Error")
    NOT_CONNECTED = "not_connected", _("Not connected")


# Calls move forward only: a late "ongoing" never reopens an ended call.
STATUS_RANK = {
    CallStatus.QUEUED: 0,
    CallStatus.REGISTERED: 1,
    CallStatus.ONGOING: 2,
    CallStatus.ENDED: 3,
    CallStatus.ERROR: 3,
    CallStatus.NOT_CONNECTED: 3,
}
FINAL_STATUSES = frozenset({CallStatus.ENDED, CallStatus.ERROR, CallStatus.NOT_CONNECTED})


class FallbackCause(models.TextChoices):
    """Why an inbound call did not reach an AI agent (the caller got the fallback)."""

    NO_AGENT = "no_agent", _("No agent answers this number")
    NOT_PUBLISHED = "agent_not_published", _("The number's agent is not published")
    NO_API_KEY = "no_api_key", _("The Retell API key is not set")
    RETELL_ERROR = "retell_error", _("Retell refused to register the call")
    RETELL_TIMEOUT = "retell_timeout", _("Retell answered too slowly")
    SUSPENDED = "tenant_suspended", _("The workspace is suspended")
    PLAN_LIMIT = "plan_limit", _("Voice is not in the plan, or its minutes are used up")


# How Retell rates the caller's mood (call_analysis.user_sentiment), and why calls end
# (disconnection_reason: Retell's, and ours for a call refused before dialling); unknown codes show as is.
SENTIMENT_LABELS = {
    "positive": _("Positive"),
    "negative": _("Negative"),
    "neutral": _("Neutral"),
    "unknown": _("Unknown"),
}
DISCONNECTION_LABELS = {
    "user_hangup": _("the contact hung up"),
    "agent_hangup": _("the agent hung up"),
    "call_transfer": _("transferred"),
    "voicemail_reached": _("voicemail"),
    "ivr_reached": _("an automated menu answered"),
    "inactivity": _("silence for too long"),
    "max_duration_reached": _("maximum duration reached"),
    "dial_busy": _("line busy"),
    "dial_no_answer": _("no answer"),
    "dial_failed": _("dialling failed"),
    "invalid_destination": _("invalid number"),
    "user_declined": _("the contact declined"),
    "opted_out": _("the contact opted out of calls"),
    "no_contact_number": _("the contact has no phone number"),
    "tenant_suspended": _("the workspace is suspended"),
    "no_agent": _("no active agent"),
    "not_published": _("the agent is not published"),
    "error_retell": _("Retell refused the call"),
}


class Call(models.Model):
    agent = models.ForeignKey(
        VoiceAgent, on_delete=models.SET_NULL, null=True, blank=True, related_name="calls", verbose_name=_("agent")
    )
    contact = models.ForeignKey(
        "crm.Contact", on_delete=models.SET_NULL, null=True, blank=True, related_name="calls", verbose_name=_("contact")
    )
    initiated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    direction = models.CharField(_("direction"), max_length=3, choices=CallDirection.choices)
    from_number = models.CharField(_("from"), max_length=20, blank=True)
    to_number = models.CharField(_("to"), max_length=20, blank=True)
    retell_call_id = models.CharField(max_length=80, unique=True, null=True, blank=True)
    twilio_call_sid = models.CharField(max_length=64, unique=True, null=True, blank=True)  # inbound via Twilio
    fallback_cause = models.CharField(_("fallback cause"), max_length=24, choices=FallbackCause.choices, blank=True)
    fallback_action = models.CharField(max_length=12, choices=FallbackAction.choices, blank=True)
    twilio_status = models.CharField(_("Twilio status"), max_length=20, blank=True)
    idempotency_key = models.CharField(max_length=120, unique=True, null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)  # a queued outbound call: when to place it
    attempt = models.PositiveSmallIntegerField(default=1)
    retry_of = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    dynamic_variables = models.JSONField(default=dict, blank=True)
    voice_campaign = models.ForeignKey(
        "VoiceCampaign", on_delete=models.SET_NULL, null=True, blank=True, related_name="calls"
    )
    error_reason = models.CharField(max_length=300, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=CallStatus.choices, default=CallStatus.REGISTERED)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    disconnection_reason = models.CharField(_("disconnection reason"), max_length=60, blank=True)
    transcript = models.TextField(_("transcript"), blank=True)
    transcript_object = models.JSONField(default=list, blank=True)
    recording_url = models.URLField(_("recording"), max_length=500, blank=True)
    summary = models.TextField(_("summary"), blank=True)
    sentiment = models.CharField(_("sentiment"), max_length=20, blank=True)
    successful = models.BooleanField(_("successful"), null=True, blank=True)
    cost_cents = models.DecimalField(_("cost (US cents)"), max_digits=12, decimal_places=3, null=True, blank=True)
    analyzed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("call")
        verbose_name_plural = _("calls")
        indexes = [
            models.Index(fields=["contact", "-created_at"], name="call_contact_recent"),
            models.Index(fields=["due_at"], name="call_due", condition=models.Q(status="queued")),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.to_number or self.from_number} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def sentiment_display(self) -> str:
        return str(SENTIMENT_LABELS.get(self.sentiment.lower(), self.sentiment))

    @property
    def disconnection_display(self) -> str:
        return str(DISCONNECTION_LABELS.get(self.disconnection_reason, self.disconnection_reason))

    @property
    def duration_display(self) -> str:
        return duration_format(self.duration_ms)

    @property
    def cost_dollars(self) -> Decimal | None:
        return self.cost_cents / 100 if self.cost_cents is not None else None


def duration_format(duration_ms: int | None) -> str:
    """90_500 -> "1m30s"; 5_000 -> "5s"; None -> "—"."""
    if duration_ms is None:
        return "—"
    seconds = round(duration_ms / 1000)
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class VoiceCampaignStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    RUNNING = "running", _("Running")
    PAUSED = "paused", _("Paused")
    DONE = "done", _("Done")


class VoiceCampaign(models.Model):
    """Many outbound AI calls to an audience (a segment and/or tags): at most `max_concurrent` calls in
    progress at once, and a no-answer, busy line or voicemail called again `retries` times after
    `retry_delay_minutes`."""

    name = models.CharField(_("name"), max_length=120)
    agent = models.ForeignKey(VoiceAgent, on_delete=models.PROTECT, related_name="campaigns", verbose_name=_("agent"))
    # the number the calls come from (imported into Retell); None: the agent's own number
    number = models.ForeignKey(
        VoiceNumber,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="campaigns",
        verbose_name=_("call from"),
    )
    # {"segment": id, "tags": [ids]} or {"contacts": [ids]}; {}: every contact
    audience = models.JSONField(default=dict, blank=True)
    max_concurrent = models.PositiveSmallIntegerField(_("calls at once, at most"), default=2)
    retries = models.PositiveSmallIntegerField(_("retries"), default=1)
    retry_delay_minutes = models.PositiveIntegerField(_("retry after (minutes)"), default=30)
    status = models.CharField(
        _("status"), max_length=10, choices=VoiceCampaignStatus.choices, default=VoiceCampaignStatus.DRAFT
    )
    launched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("voice campaign")
        verbose_name_plural = _("voice campaigns")

    def __str__(self) -> str:
        return self.name


class VoiceRecipientStatus(models.TextChoices):
    PENDING = "pending", _("Waiting")
    CALLING = "calling", _("Calling")
    DONE = "done", _("Done")
    SKIPPED = "skipped", _("Skipped")


class VoiceOutcome(models.TextChoices):
    ANSWERED = "answered", pgettext_lazy("call outcome", "Answered")
    NO_ANSWER = "no_answer", _("No answer")
    BUSY = "busy", _("Busy")
    VOICEMAIL = "voicemail", _("Voicemail")
    FAILED = "failed", _("Failed")
    OPTED_OUT = "opted_out", _("Opted out of calls")
    NO_NUMBER = "no_number", _("No phone number")


class VoiceCampaignRecipient(models.Model):
    """One contact of a campaign: its state, how many calls it had, when the next may go and the outcome."""

    campaign = models.ForeignKey(VoiceCampaign, on_delete=models.CASCADE, related_name="recipients")
    contact = models.ForeignKey("crm.Contact", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=VoiceRecipientStatus.choices, default=VoiceRecipientStatus.PENDING)
    outcome = models.CharField(_("outcome"), max_length=12, choices=VoiceOutcome.choices, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    call = models.ForeignKey(Call, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")  # the latest
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "contact"], name="voice_recipient_once")]
        indexes = [
            models.Index(
                fields=["campaign", "next_attempt_at"], name="voice_recipient_due", condition=models.Q(status="pending")
            )
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.contact_id} {self.status}"
