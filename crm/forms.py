from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from crm.models import CustomField, FieldKind
from crm.phones import phone_normalize


class ContactForm(forms.Form):
    phone = forms.CharField(
        label=_("Phone"), max_length=40, required=False, help_text=_("Leave empty to keep the current number.")
    )
    name = forms.CharField(label=_("Name"), max_length=150, required=False)
    email = forms.EmailField(label=_("Email"), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in CustomField.objects.all():
            widget: forms.Widget = forms.TextInput()
            if field.kind == FieldKind.DATE:
                widget = forms.DateInput(attrs={"type": "date"})
            elif field.kind == FieldKind.CHOICE:
                widget = forms.Select(choices=[("", "—"), *[(c, c) for c in field.choices]])
            elif field.kind == FieldKind.BOOLEAN:
                widget = forms.Select(choices=[("", "—"), ("true", _("Yes")), ("false", _("No"))])
            self.fields[f"cf_{field.key}"] = forms.CharField(label=field.label, required=False, widget=widget)

    def clean_phone(self) -> str:
        """E.164, or the reason the number cannot be a person's (area code, service number...)."""
        raw: str = self.cleaned_data["phone"].strip()
        if not raw or raw == self.initial.get("phone"):
            return ""  # unchanged: a number a provider gave us is kept even if the metadata does not know it
        return phone_normalize(raw)

    def custom_values(self) -> dict[str, Any]:
        return {name[3:]: value for name, value in self.cleaned_data.items() if name.startswith("cf_")}


class CustomFieldForm(forms.ModelForm):  # type: ignore[type-arg]
    choices_text = forms.CharField(
        label=_("Choices"), required=False, help_text=_("For choice fields, separated by commas.")
    )

    class Meta:
        model = CustomField
        fields = ["label", "key", "kind"]

    def save(self, commit: bool = True) -> CustomField:
        field: CustomField = super().save(commit=False)
        field.choices = [c.strip() for c in self.cleaned_data["choices_text"].split(",") if c.strip()]
        if commit:
            field.save()
        return field
