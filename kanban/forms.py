from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from crm.models import Tag
from kanban.models import Card, Stage


class CardForm(forms.ModelForm):  # type: ignore[type-arg]
    contact_phone = forms.CharField(label=_("Contact phone"), required=False, max_length=30)

    class Meta:
        model = Card
        fields = ["title", "value", "owner", "tags", "next_action_at", "source", "notes"]
        widgets = {
            "next_action_at": forms.DateInput(attrs={"type": "date"}),
            "notes": forms.Textarea(attrs={"rows": 3}),
            "tags": forms.CheckboxSelectMultiple,
        }
        labels = {"owner": _("Owner"), "tags": _("Tags")}

    def __init__(self, *args: Any, members: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = members  # type: ignore[attr-defined]
        self.fields["owner"].label_from_instance = lambda u: u.get_full_name()  # type: ignore[attr-defined]
        self.fields["tags"].queryset = Tag.objects.all()  # type: ignore[attr-defined]
        self.fields["tags"].required = False
        if self.instance.pk and self.instance.contact_id:
            self.fields["contact_phone"].initial = self.instance.contact.phone


class StageForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Stage
        fields = ["name", "kind", "meaning", "color"]
        widgets = {"color": forms.TextInput(attrs={"type": "color"})}


class BoardForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=80)
