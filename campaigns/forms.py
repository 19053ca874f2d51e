from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from campaigns.models import Cadence, Campaign, ContentKind, QuietHours
from crm.models import Segment, Tag
from inbox.models import Channel, ChannelKind


class CheckboxesInline:
    """Checkboxes sit beside their label (the page styles make inputs full width)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():  # type: ignore[attr-defined]
            if isinstance(field, forms.BooleanField):
                field.widget.attrs["style"] = "width:auto"


def template_choices() -> list[tuple[str, Any]]:
    """Approved WhatsApp templates of every Cloud API number, as "name|language"."""
    from whatsapp.selectors import templates_approved

    choices: list[tuple[str, Any]] = [("", _("Choose a template"))]
    seen: set[str] = set()
    for waba_id in Channel.objects.filter(kind=ChannelKind.WHATSAPP_CLOUD).values_list("waba_id", flat=True):
        for template in templates_approved(waba_id=waba_id):
            value = f"{template.name}|{template.language}"
            if value not in seen:
                seen.add(value)
                choices.append((value, f"{template.name} ({template.language})"))
    return choices


class CampaignForm(CheckboxesInline, forms.ModelForm):  # type: ignore[type-arg]
    segment = forms.ModelChoiceField(
        label=_("Segment"), queryset=Segment.objects.none(), required=False, empty_label=_("Every contact")
    )
    tag = forms.ModelChoiceField(label=_("Only contacts tagged"), queryset=Tag.objects.none(), required=False)
    template = forms.ChoiceField(label=_("Template"), required=False)
    variables = forms.CharField(
        label=_("Template variables"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One per line, in order: {{1}}, {{2}}… Placeholders like {{first_name}} are filled per contact."),
    )

    class Meta:
        model = Campaign
        fields = ["name", "channel", "kind", "body", "scheduled_at", "respect_quiet_hours"]
        widgets = {
            "body": forms.Textarea(attrs={"rows": 5}),
            "scheduled_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        }
        help_texts = {
            "body": _("Placeholders: {{name}}, {{first_name}}, {{phone}}, {{email}} and custom field keys."),
            "scheduled_at": _("Empty: send as soon as it is launched."),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["segment"].queryset = Segment.objects.all()  # type: ignore[attr-defined]
        self.fields["tag"].queryset = Tag.objects.all()  # type: ignore[attr-defined]
        self.fields["template"].choices = template_choices()  # type: ignore[attr-defined]
        self.fields["channel"].queryset = Channel.objects.all()  # type: ignore[attr-defined]
        campaign = self.instance
        if campaign.pk:
            audience = campaign.audience or {}
            self.fields["segment"].initial = audience.get("segment")
            self.fields["tag"].initial = (audience.get("tags") or [None])[0]
            if campaign.template_name:
                self.fields["template"].initial = f"{campaign.template_name}|{campaign.template_language}"
            self.fields["variables"].initial = "\n".join(str(v) for v in campaign.template_variables)

    def audience(self) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if self.cleaned_data.get("segment"):
            spec["segment"] = self.cleaned_data["segment"].pk
        if self.cleaned_data.get("tag"):
            spec["tags"] = [self.cleaned_data["tag"].pk]
        return spec

    def content(self) -> dict[str, Any]:
        name, _sep, language = (self.cleaned_data.get("template") or "").partition("|")
        is_template = self.cleaned_data["kind"] == ContentKind.TEMPLATE
        return {
            "kind": self.cleaned_data["kind"],
            "body": self.cleaned_data.get("body", ""),
            "template_name": name if is_template else "",
            "template_language": language if is_template else "",
            "template_variables": [
                line.strip() for line in (self.cleaned_data.get("variables") or "").splitlines() if line.strip()
            ]
            if is_template
            else [],
        }


class CadenceForm(CheckboxesInline, forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Cadence
        fields = ["name", "channel", "is_active", "stop_on_reply", "respect_quiet_hours"]


UNIT_MINUTES = {"minutes": 1, "hours": 60, "days": 1440}


def steps_from_post(data: Any) -> list[dict[str, Any]]:
    """The step rows of the cadence form (repeated fields, in order) -> step dicts for cadence_save."""
    rows = zip(
        data.getlist("step_delay"),
        data.getlist("step_unit"),
        data.getlist("step_kind"),
        data.getlist("step_body"),
        data.getlist("step_template"),
        data.getlist("step_variables"),
        strict=False,
    )
    steps = []
    for delay, unit, kind, body, template, variables in rows:
        name, _sep, language = template.partition("|")
        is_template = kind == ContentKind.TEMPLATE
        steps.append(
            {
                "delay_minutes": max(0, int(delay)) * UNIT_MINUTES.get(unit, 1) if delay.strip().isdigit() else 0,
                "kind": kind if kind in ContentKind.values else ContentKind.TEXT,
                "body": body,
                "template_name": name if is_template else "",
                "template_language": language if is_template else "",
                "template_variables": [v.strip() for v in variables.splitlines() if v.strip()] if is_template else [],
            }
        )
    return steps


def steps_for_editor(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Step dicts -> the editor's rows (delay shown in the largest whole unit)."""
    rows = []
    for step in steps:
        minutes = int(step.get("delay_minutes") or 0)
        unit = next((u for u in ("days", "hours") if minutes and minutes % UNIT_MINUTES[u] == 0), "minutes")
        rows.append(
            {
                "delay": minutes // UNIT_MINUTES[unit],
                "unit": unit,
                "kind": step.get("kind", ContentKind.TEXT),
                "body": step.get("body", ""),
                "template": f"{step['template_name']}|{step.get('template_language', '')}"
                if step.get("template_name")
                else "",
                "variables": "\n".join(step.get("template_variables") or []),
            }
        )
    return rows


class QuietHoursForm(CheckboxesInline, forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = QuietHours
        fields = ["enabled", "start", "end", "quiet_sundays"]
        widgets = {"start": forms.TimeInput(attrs={"type": "time"}), "end": forms.TimeInput(attrs={"type": "time"})}
