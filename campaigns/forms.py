from __future__ import annotations

import datetime
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


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class CampaignForm(CheckboxesInline, forms.ModelForm):  # type: ignore[type-arg]
    audience_source = forms.ChoiceField(
        label=_("Audience"),
        choices=[
            ("filter", _("Segments and tags")),
            ("list", _("A pasted list of phones")),
            ("file", _("An uploaded file (CSV or XLSX)")),
        ],
        initial="filter",
        required=False,
    )
    segments = forms.ModelMultipleChoiceField(
        label=_("Segments"),
        queryset=Segment.objects.none(),
        required=False,
        help_text=_("Contacts in any of them. None chosen: every contact."),
    )
    tags = forms.ModelMultipleChoiceField(label=_("Tags"), queryset=Tag.objects.none(), required=False)
    tags_match = forms.ChoiceField(
        label=_("Tagged with"),
        choices=[("any", _("any of the tags")), ("all", _("all of the tags"))],
        initial="any",
        required=False,
    )
    phones = forms.CharField(
        label=_("Phones"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "+55 11 98765-4321, Maria"}),
        help_text=_("One per line, a name after a comma if you like. Repeated phones are skipped and listed."),
    )
    file = forms.FileField(
        label=_("File"),
        required=False,
        help_text=_("Imported into your contacts first (existing contacts are updated); the campaign waits for it."),
    )
    template = forms.ChoiceField(label=_("Template"), required=False)
    variables = forms.CharField(
        label=_("Body variables"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One per line, in order: {{1}}, {{2}}… Placeholders like {{first_name}} are filled per contact."),
    )
    header_variables = forms.CharField(
        label=_("Header variable"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 1}),
        help_text=_("For a text header with {{1}}. A media header takes the media link below."),
    )
    button_variables = forms.CharField(
        label=_("Button variables"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("One per line: the end of each dynamic URL button's link, in the template's order."),
    )

    class Meta:
        model = Campaign
        fields = [
            "name",
            "channel",
            "kind",
            "body",
            "media_kind",
            "media_url",
            "scheduled_at",
            "respect_quiet_hours",
            "daily_cap",
            "cap_overflow",
            "failure_window",
            "failure_threshold",
            "dedupe_hours",
        ]
        widgets = {
            "body": forms.Textarea(attrs={"rows": 5}),
            "scheduled_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        }
        help_texts = {
            "body": _(
                "Placeholders: {{name}}, {{first_name}}, {{phone}}, {{email}} and custom field keys. "
                "Variations: {Olá|Oi|E aí} picks one per contact."
            ),
            "scheduled_at": _("Empty: send as soon as it is launched."),
            "daily_cap": _("Empty: no cap of its own (the channel's daily cap still holds)."),
            "failure_window": _("0 turns the automatic pause off."),
            "dedupe_hours": _("Across every campaign and cadence, on any channel. 0 turns it off."),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["segments"].queryset = Segment.objects.all()  # type: ignore[attr-defined]
        self.fields["tags"].queryset = Tag.objects.all()  # type: ignore[attr-defined]
        self.fields["template"].choices = template_choices()  # type: ignore[attr-defined]
        self.fields["channel"].queryset = Channel.objects.all()  # type: ignore[attr-defined]
        for name in ("failure_window", "failure_threshold", "dedupe_hours", "cap_overflow"):
            self.fields[name].required = False
        campaign = self.instance
        if campaign.pk:
            audience = campaign.audience or {}
            source = "list" if "contacts" in audience else "file" if "import" in audience else "filter"
            self.fields["audience_source"].initial = source
            segments = list(audience.get("segments") or []) + ([audience["segment"]] if audience.get("segment") else [])
            self.fields["segments"].initial = segments
            self.fields["tags"].initial = audience.get("tags") or []
            self.fields["tags_match"].initial = audience.get("tags_match", "any")
            if campaign.template_name:
                self.fields["template"].initial = f"{campaign.template_name}|{campaign.template_language}"
            self.fields["variables"].initial = "\n".join(str(v) for v in campaign.template_variables)
            self.fields["header_variables"].initial = "\n".join(str(v) for v in campaign.template_header_variables)
            self.fields["button_variables"].initial = "\n".join(str(v) for v in campaign.template_button_variables)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        defaults = {"failure_window": 50, "failure_threshold": 20, "dedupe_hours": 24, "cap_overflow": "defer"}
        for name, default in defaults.items():
            if data.get(name) in (None, ""):
                data[name] = default
        source = data.get("audience_source") or "filter"
        data["audience_source"] = source
        editing_same = self.instance.pk and (
            (source == "list" and "contacts" in (self.instance.audience or {}))
            or (source == "file" and "import" in (self.instance.audience or {}))
        )
        if source == "list" and not (data.get("phones") or "").strip() and not editing_same:
            self.add_error("phones", _("Paste at least one phone."))
        if source == "file" and not data.get("file") and not editing_same:
            self.add_error("file", _("Choose the file to upload."))
        return data

    def audience(self) -> dict[str, Any]:
        """The filter audience (segments and tags); a list or a file is turned into one by the view."""
        spec: dict[str, Any] = {}
        if self.cleaned_data.get("segments"):
            spec["segments"] = [s.pk for s in self.cleaned_data["segments"]]
        if self.cleaned_data.get("tags"):
            spec["tags"] = [t.pk for t in self.cleaned_data["tags"]]
            if self.cleaned_data.get("tags_match") == "all" and len(spec["tags"]) > 1:
                spec["tags_match"] = "all"
        return spec

    def content(self) -> dict[str, Any]:
        name, _sep, language = (self.cleaned_data.get("template") or "").partition("|")
        kind = self.cleaned_data["kind"]
        is_template = kind == ContentKind.TEMPLATE
        uses_media = kind == ContentKind.MEDIA or (is_template and self.cleaned_data.get("media_url"))
        return {
            "kind": kind,
            "body": self.cleaned_data.get("body", ""),
            "template_name": name if is_template else "",
            "template_language": language if is_template else "",
            "template_variables": _lines(self.cleaned_data.get("variables")) if is_template else [],
            "template_header_variables": _lines(self.cleaned_data.get("header_variables")) if is_template else [],
            "template_button_variables": _lines(self.cleaned_data.get("button_variables")) if is_template else [],
            "media_kind": self.cleaned_data.get("media_kind", "") if uses_media else "",
            "media_url": self.cleaned_data.get("media_url", "") if uses_media else "",
        }

    def rails(self) -> dict[str, Any]:
        return {
            name: self.cleaned_data[name]
            for name in ("daily_cap", "cap_overflow", "failure_window", "failure_threshold", "dedupe_hours")
        }


class CadenceForm(CheckboxesInline, forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Cadence
        fields = [
            "name",
            "channel",
            "is_active",
            "stop_on_reply",
            "respect_quiet_hours",
            "exit_on_won_lost",
            "exit_on_stage_change",
            "goal_stage",
            "enroll_inactive_days",
        ]
        help_texts = {
            "channel": _("Message steps use this channel unless the step picks another."),
            "enroll_inactive_days": _(
                "Empty: off. Tag, stage and keyword triggers are automation rules with the action "
                "“Enroll in a cadence”."
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from campaigns.cadences import channels_for_steps
        from kanban.selectors import stages_for_choice

        self.fields["channel"].queryset = channels_for_steps()  # type: ignore[attr-defined]
        goal = self.fields["goal_stage"]
        goal.queryset = stages_for_choice()  # type: ignore[attr-defined]
        goal.label_from_instance = lambda stage: f"{stage.board.name} > {stage.name}"  # type: ignore[attr-defined]


UNIT_MINUTES = {"minutes": 1, "hours": 60, "days": 1440}
STEP_ROW = (
    "step_key",
    "step_action",
    "step_channel",
    "step_agent",
    "step_timing",
    "step_delay",
    "step_unit",
    "step_bdays",
    "step_at",
    "step_kind",
    "step_body",
    "step_template",
    "step_variables",
    "step_if_no_reply",
    "step_stage",
    "step_only_bdays",
)


def steps_from_post(data: Any) -> list[dict[str, Any]]:
    """The step rows of the cadence form (repeated fields, in order) -> step dicts for cadence_save."""
    count = len(data.getlist("step_kind"))
    columns = {name: data.getlist(name) for name in STEP_ROW}

    def cell(name: str, i: int) -> str:
        values = columns[name]
        return str(values[i]).strip() if i < len(values) else ""

    steps = []
    for i in range(count):
        name, _sep, language = cell("step_template", i).partition("|")
        kind = cell("step_kind", i)
        is_template = kind == ContentKind.TEMPLATE
        delay, bdays = cell("step_delay", i), cell("step_bdays", i)
        steps.append(
            {
                "key": cell("step_key", i),
                "action": cell("step_action", i) or "message",
                "channel": cell("step_channel", i) or None,
                "call_agent": cell("step_agent", i),
                "timing": cell("step_timing", i) or "delay",
                "delay_minutes": int(delay) * UNIT_MINUTES.get(cell("step_unit", i), 1) if delay.isdigit() else 0,
                "business_days": int(bdays) if bdays.isdigit() else 1,
                "at_time": cell("step_at", i),
                "kind": kind if kind in ContentKind.values else ContentKind.TEXT,
                "body": columns["step_body"][i] if i < len(columns["step_body"]) else "",
                "template_name": name if is_template else "",
                "template_language": language if is_template else "",
                "template_variables": [v.strip() for v in cell("step_variables", i).splitlines() if v.strip()]
                if is_template
                else [],
                "only_if_no_reply": cell("step_if_no_reply", i) == "1",
                "only_in_stage": cell("step_stage", i) or None,
                "only_business_days": cell("step_only_bdays", i) == "1",
            }
        )
    return steps


def steps_for_editor(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Step dicts (or the values of saved steps) -> the editor's rows (a wait in its largest whole unit)."""
    rows = []
    for step in steps:
        minutes = int(step.get("delay_minutes") or 0)
        unit = next((u for u in ("days", "hours") if minutes and minutes % UNIT_MINUTES[u] == 0), "minutes")
        at = step.get("at_time")
        channel = step.get("step_channel_id", step.get("channel"))
        stage = step.get("only_in_stage_id", step.get("only_in_stage"))
        rows.append(
            {
                "key": str(step.get("key") or ""),
                "action": step.get("action") or "message",
                "channel": str(getattr(channel, "pk", channel) or ""),
                "agent": str(step.get("call_agent") or ""),
                "timing": step.get("timing") or "delay",
                "delay": minutes // UNIT_MINUTES[unit],
                "unit": unit,
                "bdays": step.get("business_days", 1),
                "at": at.strftime("%H:%M") if isinstance(at, datetime.time) else str(at or "10:00"),
                "kind": step.get("kind", ContentKind.TEXT),
                "body": step.get("body", ""),
                "template": f"{step['template_name']}|{step.get('template_language', '')}"
                if step.get("template_name")
                else "",
                "variables": "\n".join(step.get("template_variables") or []),
                "if_no_reply": "1" if step.get("only_if_no_reply") else "",
                "stage": str(getattr(stage, "pk", stage) or ""),
                "only_bdays": "1" if step.get("only_business_days") else "",
            }
        )
    return rows


WEEKDAYS = [
    (0, _("Monday")),
    (1, _("Tuesday")),
    (2, _("Wednesday")),
    (3, _("Thursday")),
    (4, _("Friday")),
    (5, _("Saturday")),
    (6, _("Sunday")),
]


class QuietHoursForm(CheckboxesInline, forms.ModelForm):  # type: ignore[type-arg]
    business_days = forms.TypedMultipleChoiceField(
        label=_("Business days (for cadence steps)"),
        choices=WEEKDAYS,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = QuietHours
        fields = ["enabled", "start", "end", "quiet_sundays", "business_days"]
        widgets = {"start": forms.TimeInput(attrs={"type": "time"}), "end": forms.TimeInput(attrs={"type": "time"})}


class ChannelCapForm(forms.Form):
    """The daily cap of each channel (empty: no cap), on the sending rules page."""

    def __init__(self, *args: Any, channels: list[Any], caps: dict[int, int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.channels = channels
        for channel in channels:
            self.fields[f"cap_{channel.pk}"] = forms.IntegerField(
                label=channel.name, required=False, min_value=1, initial=caps.get(channel.pk)
            )

    def caps(self) -> dict[int, int | None]:
        return {channel.pk: self.cleaned_data.get(f"cap_{channel.pk}") for channel in self.channels}
