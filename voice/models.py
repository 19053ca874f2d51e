"""Voice agents (a Retell LLM + agent pair), the tenant's Retell settings, and the calls."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from core.fields import EncryptedTextField


class VoiceSettings(models.Model):
    """One row per tenant: the Retell API key (encrypted, write-only) and the route of our public webhooks."""

    api_key = EncryptedTextField(_("Retell API key"), blank=True, default="")
    webhook_route = models.CharField(max_length=40, unique=True)
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
    retell_agent_id = models.CharField(max_length=80, blank=True)
    retell_llm_id = models.CharField(max_length=80, blank=True)
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


class CallDirection(models.TextChoices):
    INBOUND = "in", _("Inbound")
    OUTBOUND = "out", _("Outbound")


class CallStatus(models.TextChoices):
    REGISTERED = "registered", _("Registered")
    ONGOING = "ongoing", _("Ongoing")
    ENDED = "ended", _("Ended")
    ERROR = "error", _("Error")
    NOT_CONNECTED = "not_connected", _("Not connected")


# Calls move forward only: a late "ongoing" never reopens an ended call.
STATUS_RANK = {
    CallStatus.REGISTERED: 0,
    CallStatus.ONGOING: 1,
    CallStatus.ENDED: 2,
    CallStatus.ERROR: 2,
    CallStatus.NOT_CONNECTED: 2,
}
FINAL_STATUSES = frozenset({CallStatus.ENDED, CallStatus.ERROR, CallStatus.NOT_CONNECTED})


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
        indexes = [models.Index(fields=["contact", "-created_at"], name="call_contact_recent")]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.to_number or self.from_number} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def duration_display(self) -> str:
        return duration_format(self.duration_ms)


def duration_format(duration_ms: int | None) -> str:
    """90_500 -> "1m30s"; 5_000 -> "5s"; None -> "—"."""
    if duration_ms is None:
        return "—"
    seconds = round(duration_ms / 1000)
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
