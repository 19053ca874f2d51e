from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from reports.models import Frequency, Weekday
from reports.selectors import report_templates, whatsapp_channels


class ReportSettingsForm(forms.Form):
    frequency = forms.ChoiceField(label=_("Send a report"), choices=Frequency.choices)
    weekday = forms.TypedChoiceField(
        label=_("On (weekly reports)"), choices=Weekday.choices, coerce=int, initial=Weekday.MONDAY
    )
    hour = forms.TypedChoiceField(
        label=_("At (your workspace's time zone)"),
        choices=[(h, f"{h:02d}:00") for h in range(24)],
        coerce=int,
        initial=8,
    )
    email_enabled = forms.BooleanField(label=_("Email the report to the workspace's owners"), required=False)
    whatsapp_number = forms.CharField(
        label=_("Also send it to this WhatsApp number"),
        max_length=30,
        required=False,
        help_text=_("With the country code, e.g. +55 11 91234-5678. Leave empty for email only."),
    )
    whatsapp_channel = forms.ModelChoiceField(
        label=_("From the WhatsApp channel"),
        queryset=whatsapp_channels(),
        required=False,
        empty_label=_("Choose a channel"),
        help_text=_(
            "On a WhatsApp Cloud API number a text goes out only while a conversation with that number is open "
            "(it wrote in the last 24 hours). Outside it, the template below is sent, or the report is skipped "
            "and the list below says so."
        ),
    )
    whatsapp_template = forms.ModelChoiceField(
        label=_("Template outside the 24-hour window (WhatsApp Cloud API)"),
        queryset=report_templates(),
        required=False,
        empty_label=_("None: skip the report while the window is closed"),
        help_text=_("An approved utility template: {{1}} is filled with the period, {{2}} with the numbers."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["whatsapp_channel"].queryset = whatsapp_channels()  # type: ignore[attr-defined]
        self.fields["whatsapp_template"].queryset = report_templates()  # type: ignore[attr-defined]
