from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from crm.services import phone_normalize
from voice.models import VoiceAgent

LANGUAGES = [("pt-BR", "Português (Brasil)"), ("en-US", "English (US)"), ("es-ES", "Español")]


class VoiceAgentForm(forms.ModelForm):  # type: ignore[type-arg]
    language = forms.ChoiceField(label=_("language"), choices=LANGUAGES, initial="pt-BR")

    class Meta:
        model = VoiceAgent
        fields = ["name", "prompt", "begin_message", "voice_id", "language", "from_number", "is_active"]
        widgets = {"prompt": forms.Textarea(attrs={"rows": 8}), "begin_message": forms.Textarea(attrs={"rows": 2})}

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


class CallStartForm(forms.Form):
    agent = forms.ModelChoiceField(label=_("Agent"), queryset=VoiceAgent.objects.none())

    def __init__(self, *args: Any, agents: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = agents  # type: ignore[attr-defined]
