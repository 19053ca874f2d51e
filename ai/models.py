"""The tenant's AI settings and usage, assistants (personas), their bindings, and the bot's state per
conversation."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from core.fields import EncryptedTextField


class AISettings(models.Model):
    """One row per tenant: the OpenAI-compatible server, the models, the key (encrypted, write-only) and
    the prices used to record the cost of what was used."""

    base_url = models.URLField(
        _("API base URL"),
        max_length=300,
        blank=True,
        help_text=_("An OpenAI-compatible server, e.g. https://api.openai.com/v1. Empty: the platform's default."),
    )
    api_key = EncryptedTextField(_("API key"), blank=True, default="")
    chat_model = models.CharField(_("chat model"), max_length=100, default="gpt-4o-mini")
    embedding_model = models.CharField(_("embedding model"), max_length=100, default="text-embedding-3-small")
    embedding_dimensions = models.PositiveIntegerField(_("embedding dimensions"), default=384)
    transcription_model = models.CharField(_("transcription model"), max_length=100, default="whisper-1")
    price_input_per_million = models.DecimalField(
        _("price per million input tokens (USD)"), max_digits=10, decimal_places=4, default=Decimal("0.15")
    )
    price_output_per_million = models.DecimalField(
        _("price per million output tokens (USD)"), max_digits=10, decimal_places=4, default=Decimal("0.60")
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("AI settings")
        verbose_name_plural = _("AI settings")

    def __str__(self) -> str:
        return f"AI settings ({'key set' if self.api_key else 'no key'})"  # never the key itself

    def __repr__(self) -> str:
        return f"<AISettings {self.pk}>"

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key)

    @property
    def effective_base_url(self) -> str:
        return self.base_url or settings.OPENAI_BASE_URL


class UsageKind(models.TextChoices):
    CHAT = "chat", _("Chat")
    EMBEDDING = "embedding", _("Embeddings")
    TRANSCRIPTION = "transcription", _("Transcription")


class AIUsageDay(models.Model):
    """Tokens and cost per day, model and kind (one row each, incremented in one statement)."""

    day = models.DateField()
    model = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=UsageKind.choices)
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    audio_seconds = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal("0"))

    class Meta:
        ordering = ["-day", "model"]
        constraints = [models.UniqueConstraint(fields=["day", "model", "kind"], name="ai_usage_one_row_per_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.model} {self.kind}"


class Tone(models.TextChoices):
    FRIENDLY = "friendly", _("Friendly")
    PROFESSIONAL = "professional", _("Professional")
    CASUAL = "casual", _("Casual")
    FORMAL = "formal", _("Formal")


class OutOfHours(models.TextChoices):
    ANSWER = "answer", _("Answer as usual")
    NOTICE = "notice", _("Answer and say the team is back in business hours")
    SILENT = "silent", _("Send the out-of-hours message only")


class Tool(models.TextChoices):
    HANDOFF = "handoff", _("Hand off to a person")
    TAG_ADD = "tag_add", _("Add a tag")
    TAG_REMOVE = "tag_remove", _("Remove a tag")
    CONTACT_FIELD = "contact_field_update", _("Update a contact field")
    LEAD_CARD = "lead_card_move", _("Create or move the lead card")
    CALLBACK = "callback_schedule", _("Schedule a callback")
    CADENCE = "cadence_enroll", _("Enroll in a cadence")


def default_sections() -> list[dict[str, object]]:
    return [
        {"key": "about", "title": "Sobre a empresa", "text": "", "enabled": True},
        {"key": "policies", "title": "Políticas", "text": "", "enabled": True},
        {"key": "style", "title": "Estilo", "text": "Respostas curtas, como no WhatsApp.", "enabled": True},
    ]


class Assistant(models.Model):
    """A persona that answers customers: how it talks, what it refuses, when it hands over, what it may do."""

    name = models.CharField(_("name"), max_length=80)
    instructions = models.TextField(_("instructions"), blank=True)
    sections = models.JSONField(_("instruction sections"), default=default_sections, blank=True)
    tone = models.CharField(_("tone"), max_length=16, choices=Tone.choices, default=Tone.FRIENDLY)
    language = models.CharField(_("language"), max_length=10, default="pt-BR")
    model = models.CharField(_("model"), max_length=100, blank=True, help_text=_("Empty: the workspace's chat model."))
    temperature = models.DecimalField(_("temperature"), max_digits=3, decimal_places=2, default=Decimal("0.30"))
    max_tokens = models.PositiveIntegerField(_("max tokens"), default=400)
    greeting = models.TextField(_("greeting"), blank=True)
    fallback_message = models.TextField(
        _("fallback message"),
        default="Desculpe, não encontrei essa informação. Vou chamar alguém da equipe para ajudar.",
    )
    retrieval_template = models.TextField(
        _("answer template without a model"),
        default="{passage}",
        help_text=_("Used when no API key is set: {passage} is replaced by the best passage found."),
    )
    refused_topics = models.TextField(_("topics to refuse"), blank=True, help_text=_("One per line."))
    no_unlisted_prices = models.BooleanField(_("never promise prices or discounts not in the knowledge"), default=True)
    business_hours_start = models.TimeField(_("business hours start"), null=True, blank=True)
    business_hours_end = models.TimeField(_("business hours end"), null=True, blank=True)
    business_days = ArrayField(models.PositiveSmallIntegerField(), default=list, blank=True)  # 0 = Monday
    out_of_hours = models.CharField(
        _("out of business hours"), max_length=10, choices=OutOfHours.choices, default=OutOfHours.ANSWER
    )
    out_of_hours_message = models.TextField(_("out-of-hours message"), blank=True)
    reply_delay_s = models.PositiveSmallIntegerField(
        _("reply delay (seconds)"), default=2, help_text=_("A human pause, with 'typing…' where the channel shows it.")
    )
    debounce_s = models.PositiveSmallIntegerField(
        _("wait for more messages (seconds)"), default=6, help_text=_("Messages sent in a row get one answer.")
    )
    handoff_keywords = models.TextField(
        _("handoff keywords"), default="atendente\nhumano\nfalar com alguém\npessoa", help_text=_("One per line.")
    )
    handoff_after_turns = models.PositiveSmallIntegerField(
        _("hand off after this many unresolved answers"), default=6, help_text=_("0: never.")
    )
    handoff_min_score = models.FloatField(
        _("minimum retrieval confidence"), default=0.0, help_text=_("Below this (0 to 1), hand off. 0: never.")
    )
    handoff_message = models.TextField(
        _("handoff message"), default="Vou te passar para alguém da nossa equipe. Só um instante!"
    )
    allowed_tools = ArrayField(models.CharField(max_length=32, choices=Tool.choices), default=list, blank=True)
    http_tools = models.ManyToManyField(
        "ai.HttpTool", blank=True, related_name="assistants", verbose_name=_("custom HTTP tools")
    )
    knowledge_base_ids = ArrayField(models.PositiveBigIntegerField(), default=list, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("assistant")
        verbose_name_plural = _("assistants")

    def __str__(self) -> str:
        return self.name

    def lines(self, field: str) -> list[str]:
        return [line.strip() for line in str(getattr(self, field)).splitlines() if line.strip()]


class AssistantBinding(models.Model):
    """Which assistant answers on a channel; one bound to a stage answers the contacts whose lead is there."""

    assistant = models.ForeignKey(Assistant, on_delete=models.CASCADE, related_name="bindings")
    channel = models.ForeignKey("inbox.Channel", on_delete=models.CASCADE, related_name="+")
    stage = models.ForeignKey("kanban.Stage", null=True, blank=True, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel"], condition=Q(stage__isnull=True), name="ai_binding_one_per_channel"
            ),
            models.UniqueConstraint(fields=["channel", "stage"], name="ai_binding_one_per_channel_stage"),
        ]

    def __str__(self) -> str:
        return f"{self.assistant_id} @ {self.channel_id}/{self.stage_id}"


class BotMode(models.TextChoices):
    BOT = "bot", _("Assistant answers")
    HUMAN = "human", _("A person answers")


class ConversationBot(models.Model):
    """The bot's state in one conversation. `mode` is checked under this row's lock right before a reply is
    queued, and a takeover takes the same lock, so nothing is sent after a person took over."""

    conversation = models.OneToOneField("inbox.Conversation", on_delete=models.CASCADE, related_name="+")
    mode = models.CharField(max_length=5, choices=BotMode.choices, default=BotMode.BOT)
    reply_due_at = models.DateTimeField(null=True, blank=True)  # debounce: answer once no message came for a while
    answered_through_id = models.BigIntegerField(default=0)  # the last inbound message id already answered
    unresolved_turns = models.PositiveSmallIntegerField(default=0)
    handoff_reason = models.CharField(max_length=300, blank=True)
    handed_off_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["reply_due_at"], name="ai_bot_due", condition=Q(reply_due_at__isnull=False))]

    def __str__(self) -> str:
        return f"bot {self.mode} @ {self.conversation_id}"


class ReplyMode(models.TextChoices):
    MODEL = "model", _("Model")
    RETRIEVAL = "retrieval", _("Retrieval only (no API key)")
    FALLBACK = "fallback", _("Fallback message")
    HANDOFF = "handoff", _("Handoff")
    GREETING = "greeting", _("Greeting")


class BotReply(models.Model):
    """What the assistant sent and why: the passages it used and the tools it called."""

    message = models.OneToOneField("inbox.Message", on_delete=models.CASCADE, related_name="+")
    assistant = models.ForeignKey(Assistant, null=True, on_delete=models.SET_NULL, related_name="replies")
    mode = models.CharField(max_length=10, choices=ReplyMode.choices)
    sources = models.JSONField(default=list, blank=True)
    tool_calls = models.JSONField(default=list, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"bot reply {self.message_id}"


# --- custom HTTP tools ---------------------------------------------------------------------------------


class HttpTool(models.Model):
    """A tool the tenant defines: the model's arguments (checked against `arguments_schema`) are POSTed to
    `url` (through the outbound-URL guard), signed Standard Webhooks style with the tool's own secret; the
    answer goes back to the model. The envelope names the conversation's own contact, never one the model
    chose."""

    name = models.SlugField(
        _("name"), max_length=48, unique=True, help_text=_("Lowercase letters, digits, - and _; the model sees it.")
    )
    description = models.TextField(_("description"), help_text=_("Tells the model when to use this tool."))
    url = models.URLField(_("URL"), max_length=500)
    arguments_schema = models.JSONField(_("JSON schema of the arguments"), default=dict, blank=True)
    secret = EncryptedTextField(_("signing secret"), blank=True, default="")
    timeout_s = models.DecimalField(_("timeout (seconds)"), max_digits=4, decimal_places=1, default=Decimal("5.0"))
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("custom HTTP tool")
        verbose_name_plural = _("custom HTTP tools")

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<HttpTool {self.pk} {self.name}>"  # never the secret

    @property
    def function_name(self) -> str:
        """The name offered to the model: prefixed, so it never clashes with a built-in tool."""
        return f"http_{self.name.replace('-', '_')}"


# --- AI lead progression ---------------------------------------------------------------------------------


class LeadSettings(models.Model):
    """How the AI moves leads on a board: on or off, whether it moves cards itself above a confidence, and
    whether it may set won or lost stages. A row without a board is the workspace default."""

    board = models.ForeignKey(
        "kanban.Board", null=True, blank=True, on_delete=models.CASCADE, related_name="+", verbose_name=_("board")
    )
    enabled = models.BooleanField(_("classify conversations"), default=False)
    auto_move = models.BooleanField(_("move cards automatically"), default=False)
    threshold = models.FloatField(
        _("confidence threshold"), default=0.8, help_text=_("From 0 to 1: above it the card moves by itself.")
    )
    allow_closed = models.BooleanField(_("the AI may set won or lost stages"), default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("lead progression settings")
        verbose_name_plural = _("lead progression settings")
        constraints = [  # one row per board, and one default (board NULL): NULLs are not distinct here
            models.UniqueConstraint(fields=["board"], name="ai_lead_settings_one_per_board", nulls_distinct=False)
        ]

    def __str__(self) -> str:
        return f"lead settings {self.board_id or 'default'}"


class ConversationLead(models.Model):
    """A conversation waiting to be classified: inbound messages push `due_at` forward (the debounce); a
    beat sweep classifies the rows that are due. `classified_through_id` is the last inbound message seen."""

    conversation = models.OneToOneField("inbox.Conversation", on_delete=models.CASCADE, related_name="+")
    due_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    classified_through_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["due_at"], name="ai_lead_due", condition=Q(due_at__isnull=False))]

    def __str__(self) -> str:
        return f"lead @ {self.conversation_id}"


class SuggestionStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for a person")
    APPLIED = "applied", _("Moved by the AI")
    ACCEPTED = "accepted", _("Accepted")
    DISMISSED = "dismissed", _("Dismissed")
    UNCHANGED = "unchanged", _("Already in that stage")
    SUPERSEDED = "superseded", _("Replaced by a newer one")


class LeadSuggestion(models.Model):
    """One classification of a conversation (intent, interest, suggested stage, confidence, reason, lead
    score) and what became of it."""

    conversation = models.ForeignKey("inbox.Conversation", on_delete=models.CASCADE, related_name="+")
    card = models.ForeignKey("kanban.Card", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    board = models.ForeignKey("kanban.Board", on_delete=models.CASCADE, related_name="+")
    from_stage = models.ForeignKey("kanban.Stage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    stage = models.ForeignKey("kanban.Stage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    intent = models.CharField(_("intent"), max_length=120, blank=True)
    interest = models.CharField(_("interest"), max_length=10, blank=True)
    confidence = models.FloatField(_("confidence"), default=0.0)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    score = models.PositiveSmallIntegerField(_("lead score"), default=0)
    status = models.CharField(max_length=10, choices=SuggestionStatus.choices, default=SuggestionStatus.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    message_through_id = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["card", "-created_at"], name="ai_suggestion_card")]

    def __str__(self) -> str:
        return f"suggestion {self.pk}: {self.stage_id} ({self.status})"


class FaqStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for review")
    APPROVED = "approved", _("Approved")
    DISMISSED = "dismissed", _("Dismissed")


class FaqSuggestion(models.Model):
    """A question and answer the model drew from a resolved conversation, for a manager to edit and approve
    into a knowledge base (a Q&A pair there) or dismiss. One per conversation and resolution (the last
    message it had then), so a task that runs twice suggests nothing twice."""

    conversation = models.ForeignKey("inbox.Conversation", on_delete=models.CASCADE, related_name="+")
    through_message_id = models.BigIntegerField()
    question = models.TextField(_("question"))
    answer = models.TextField(_("answer"))
    status = models.CharField(max_length=10, choices=FaqStatus.choices, default=FaqStatus.PENDING)
    qa_pair = models.ForeignKey("knowledge.QAPair", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("suggested FAQ pair")
        verbose_name_plural = _("suggested FAQ pairs")
        constraints = [
            models.UniqueConstraint(fields=["conversation", "through_message_id"], name="ai_faq_one_per_resolution")
        ]
        indexes = [models.Index(fields=["status", "-created_at"], name="ai_faq_status")]

    def __str__(self) -> str:
        return self.question[:80]
