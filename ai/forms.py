from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from ai.models import AISettings, Assistant, HttpTool, LeadSettings, Tool
from inbox.models import Channel

LANGUAGES = [("pt-BR", "Português (Brasil)"), ("en-US", "English (US)"), ("es-ES", "Español")]
WEEKDAYS = [
    (0, _("Monday")),
    (1, _("Tuesday")),
    (2, _("Wednesday")),
    (3, _("Thursday")),
    (4, _("Friday")),
    (5, _("Saturday")),
    (6, _("Sunday")),
]


class AISettingsForm(forms.ModelForm):  # type: ignore[type-arg]
    base_url = forms.URLField(
        label=_("API base URL"),
        required=False,
        max_length=300,
        assume_scheme="https",
        help_text=_("An OpenAI-compatible server, e.g. https://api.openai.com/v1. Empty: the platform's default."),
    )
    api_key = forms.CharField(
        label=_("API key"),
        required=False,
        max_length=300,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Stored encrypted and never shown again. Leave empty to keep the current key."),
    )
    clear_key = forms.BooleanField(label=_("Remove the stored key (retrieval-only mode)"), required=False)

    class Meta:
        model = AISettings
        fields = [
            "base_url",
            "chat_model",
            "embedding_model",
            "embedding_dimensions",
            "transcription_model",
            "price_input_per_million",
            "price_output_per_million",
        ]


class AssistantForm(forms.ModelForm):  # type: ignore[type-arg]
    language = forms.ChoiceField(label=_("language"), choices=LANGUAGES, initial="pt-BR")
    allowed_tools = forms.MultipleChoiceField(
        label=_("tools it may use"), choices=Tool.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    business_days = forms.TypedMultipleChoiceField(
        label=_("business days"), choices=WEEKDAYS, coerce=int, required=False, widget=forms.CheckboxSelectMultiple
    )
    channels = forms.ModelMultipleChoiceField(
        label=_("answers on these channels"),
        queryset=Channel.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    stages = forms.ModelMultipleChoiceField(
        label=_("also answers the leads in these stages (on its channels)"),
        queryset=Channel.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = Assistant
        fields = [
            "name",
            "is_active",
            "instructions",
            "tone",
            "language",
            "model",
            "temperature",
            "max_tokens",
            "greeting",
            "fallback_message",
            "retrieval_template",
            "refused_topics",
            "no_unlisted_prices",
            "business_hours_start",
            "business_hours_end",
            "business_days",
            "out_of_hours",
            "out_of_hours_message",
            "reply_delay_s",
            "debounce_s",
            "handoff_keywords",
            "handoff_after_turns",
            "handoff_min_score",
            "handoff_message",
            "allowed_tools",
            "http_tools",
        ]
        widgets = {
            "http_tools": forms.CheckboxSelectMultiple,
            "instructions": forms.Textarea(attrs={"rows": 5}),
            "greeting": forms.Textarea(attrs={"rows": 2}),
            "fallback_message": forms.Textarea(attrs={"rows": 2}),
            "retrieval_template": forms.Textarea(attrs={"rows": 2}),
            "refused_topics": forms.Textarea(attrs={"rows": 3}),
            "out_of_hours_message": forms.Textarea(attrs={"rows": 2}),
            "handoff_keywords": forms.Textarea(attrs={"rows": 3}),
            "handoff_message": forms.Textarea(attrs={"rows": 2}),
            "business_hours_start": forms.TimeInput(attrs={"type": "time"}),
            "business_hours_end": forms.TimeInput(attrs={"type": "time"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from kanban.models import Stage, StageKind

        self.fields["channels"].queryset = Channel.objects.order_by("name")  # type: ignore[attr-defined]
        self.fields["stages"].queryset = (  # type: ignore[attr-defined]
            Stage.objects.filter(kind=StageKind.OPEN).select_related("board").order_by("board__name", "rank")
        )
        self.fields["stages"].label_from_instance = lambda s: f"{s.board.name} · {s.name}"  # type: ignore[attr-defined]
        if self.instance.pk:
            from ai.models import AssistantBinding

            self.initial["channels"] = list(
                AssistantBinding.objects.filter(assistant=self.instance, stage__isnull=True).values_list(
                    "channel_id", flat=True
                )
            )
            self.initial["stages"] = list(
                AssistantBinding.objects.filter(assistant=self.instance, stage__isnull=False)
                .values_list("stage_id", flat=True)
                .distinct()
            )
        # the sections: one text and one switch each
        for i, section in enumerate(self.instance.sections or []):
            self.fields[f"section_{i}_text"] = forms.CharField(
                label=str(section.get("title") or section.get("key")),
                required=False,
                widget=forms.Textarea(attrs={"rows": 2}),
                initial=section.get("text", ""),
            )
            self.fields[f"section_{i}_enabled"] = forms.BooleanField(
                label=_("use this section"), required=False, initial=bool(section.get("enabled"))
            )

    def sections(self) -> list[dict[str, Any]]:
        out = []
        for i, section in enumerate(self.instance.sections or []):
            out.append(
                {
                    **section,
                    "text": self.cleaned_data.get(f"section_{i}_text", ""),
                    "enabled": bool(self.cleaned_data.get(f"section_{i}_enabled")),
                }
            )
        return out


class PlaygroundForm(forms.Form):
    text = forms.CharField(label=_("Message"), max_length=2000, widget=forms.TextInput(attrs={"autocomplete": "off"}))


class HttpToolForm(forms.ModelForm):  # type: ignore[type-arg]
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")
    arguments_schema = forms.JSONField(
        label=_("JSON schema of the arguments"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        help_text=_('What the model must send, e.g. {"type": "object", "properties": {"order": {"type": "string"}}}.'),
    )

    class Meta:
        model = HttpTool
        fields = ["name", "description", "url", "arguments_schema", "timeout_s", "is_active"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class HttpToolTestForm(forms.Form):
    arguments = forms.JSONField(
        label=_("Arguments (JSON)"), initial=dict, required=False, widget=forms.Textarea(attrs={"rows": 4})
    )


class LeadSettingsForm(forms.ModelForm):  # type: ignore[type-arg]
    threshold = forms.FloatField(label=_("confidence threshold"), min_value=0.0, max_value=1.0)

    class Meta:
        model = LeadSettings
        fields = ["enabled", "auto_move", "threshold", "allow_closed"]
