from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from webhooks.catalog import EVENT_TYPES


class EndpointForm(forms.Form):
    url = forms.URLField(label=_("URL"), max_length=2000, assume_scheme="https")
    description = forms.CharField(label=_("Description"), max_length=200, required=False)
    events = forms.MultipleChoiceField(
        label=_("Events"), choices=list(EVENT_TYPES.items()), widget=forms.CheckboxSelectMultiple
    )
    headers = forms.CharField(
        label=_("Custom headers"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Authorization: Bearer …"}),
        help_text=_(
            "One per line, as Name: value. Values are stored encrypted and never shown again; leave empty "
            "to keep the current ones."
        ),
    )
    enabled = forms.BooleanField(label=_("Enabled"), required=False, initial=True)

    def clean_headers(self) -> dict[str, str] | None:
        text: str = self.cleaned_data.get("headers") or ""
        if not text.strip():
            return None
        found: dict[str, str] = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise forms.ValidationError(_("Write each header as Name: value."))
            found[name.strip()] = value.strip()
        return found

    def values(self) -> dict[str, Any]:
        return dict(self.cleaned_data)
