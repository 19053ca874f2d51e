from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from crm.services import phone_normalize
from voice.models import VoiceAgent, VoiceSettings

LANGUAGES = [("pt-BR", "Português (Brasil)"), ("en-US", "English (US)"), ("es-ES", "Español")]


class VoiceAgentForm(forms.ModelForm):  # type: ignore[type-arg]
    language = forms.ChoiceField(label=_("language"), choices=LANGUAGES, initial="pt-BR")

    class Meta:
        model = VoiceAgent
        fields = [
            "name",
            "direction",
            "prompt",
            "begin_message",
            "llm_model",
            "voice_id",
            "language",
            "from_number",
            "voicemail_action",
            "voicemail_message",
            "is_active",
        ]
        labels = {"prompt": _("Instructions"), "begin_message": _("First message")}
        widgets = {
            "prompt": forms.Textarea(attrs={"rows": 8}),
            "begin_message": forms.Textarea(attrs={"rows": 2}),
            "voicemail_message": forms.Textarea(attrs={"rows": 2}),
        }

    def clean_from_number(self) -> str:
        raw = str(self.cleaned_data.get("from_number") or "").strip()
        if not raw:
            return ""
        try:
            return phone_normalize(raw)
        except ValidationError as exc:
            raise ValidationError(_("Enter a valid phone number, e.g. +5511999990000.")) from exc


class VoiceApiKeyForm(forms.Form):
    api_key = forms.CharField(
        label=_("Retell API key"),
        max_length=200,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Use a key with the webhook badge. It is stored encrypted and never shown again."),
    )


class VoiceTwilioForm(forms.Form):
    twilio_account_sid = forms.RegexField(
        label=_("Twilio account SID"), regex=r"^AC[0-9a-fA-F]{32}$", max_length=34, strip=True
    )
    twilio_auth_token = forms.CharField(
        label=_("Twilio auth token"),
        max_length=100,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Signs Twilio's voice webhooks. Stored encrypted; leave empty to keep the one set."),
    )
    sip_termination_uri = forms.RegexField(
        label=_("SIP trunk termination URI"),
        regex=r"^[a-zA-Z0-9.-]+(:\d+)?$",
        max_length=200,
        required=False,
        help_text=_(
            "Your Twilio Elastic SIP trunk's termination URI, e.g. example.pstn.twilio.com (for Retell's import)."
        ),
    )


class VoiceFallbackForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = VoiceSettings
        fields = ["fallback_message", "fallback_voice", "fallback_action", "fallback_number", "voicemail_prompt"]
        widgets = {
            "fallback_message": forms.Textarea(attrs={"rows": 2}),
            "voicemail_prompt": forms.Textarea(attrs={"rows": 2}),
        }

    def clean_fallback_number(self) -> str:
        raw = str(self.cleaned_data.get("fallback_number") or "").strip()
        if not raw:
            return ""
        try:
            return phone_normalize(raw)
        except ValidationError as exc:
            raise ValidationError(_("Enter a valid phone number, e.g. +5511999990000.")) from exc


class CallStartForm(forms.Form):
    agent = forms.ModelChoiceField(label=_("Agent"), queryset=VoiceAgent.objects.none())

    def __init__(self, *args: Any, agents: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = agents  # type: ignore[attr-defined]
