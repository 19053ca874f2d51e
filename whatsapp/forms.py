from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from whatsapp.models import TemplateCategory


class TemplateCreateForm(forms.Form):
    name = forms.RegexField(
        label=_("Name"),
        regex=r"^[a-z0-9_]{1,512}$",
        max_length=512,
        help_text=_("Lowercase letters, digits and underscores, e.g. order_update."),
    )
    category = forms.ChoiceField(label=_("Category"), choices=TemplateCategory.choices)
    language = forms.ChoiceField(
        label=_("Language"), choices=[("pt_BR", "Português (BR)"), ("en_US", "English (US)"), ("es", "Español")]
    )
    header = forms.CharField(label=_("Header"), max_length=60, required=False)
    body = forms.CharField(
        label=_("Body"),
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=1024,
        help_text=_("Use {{1}}, {{2}}... for the parts that change per customer."),
    )
    footer = forms.CharField(label=_("Footer"), max_length=60, required=False)
    quick_replies = forms.CharField(
        label=_("Quick reply buttons"), max_length=200, required=False, help_text=_("Up to 3, separated by commas.")
    )

    def clean_quick_replies(self) -> list[str]:
        items = [item.strip() for item in self.cleaned_data["quick_replies"].split(",") if item.strip()]
        if len(items) > 3:
            raise forms.ValidationError(_("At most 3 quick reply buttons."))
        return items
