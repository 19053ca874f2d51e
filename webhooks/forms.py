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


def _stage_choices() -> list[tuple[str, str]]:
    from kanban.models import Stage

    return [("", "—")] + [
        (f"{s.board_id}:{s.pk}", f"{s.board.name} → {s.name}")
        for s in Stage.objects.select_related("board").order_by("board__name", "rank")
    ]


class InboundHookForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    phone_path = forms.CharField(label=_("Phone number is at"), max_length=200, initial="customer.phone")
    name_path = forms.CharField(label=_("Name is at"), max_length=200, required=False, initial="customer.name")
    email_path = forms.CharField(label=_("E-mail is at"), max_length=200, required=False, initial="customer.email")
    contact_upsert = forms.BooleanField(label=_("Update the contact's name and e-mail"), required=False, initial=True)
    tag_add: forms.ModelChoiceField[Any] = forms.ModelChoiceField(label=_("Add the tag"), queryset=None, required=False)
    tag_remove: forms.ModelChoiceField[Any] = forms.ModelChoiceField(
        label=_("Remove the tag"), queryset=None, required=False
    )
    card_stage = forms.ChoiceField(label=_("Create or move the lead card to"), required=False)
    cadence: forms.ModelChoiceField[Any] = forms.ModelChoiceField(
        label=_("Start the cadence"), queryset=None, required=False
    )
    enabled = forms.BooleanField(label=_("Enabled"), required=False, initial=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from campaigns.models import Cadence
        from crm.models import Tag

        super().__init__(*args, **kwargs)
        tags = Tag.objects.order_by("name")
        self.fields["tag_add"].queryset = tags  # type: ignore[attr-defined]
        self.fields["tag_remove"].queryset = tags  # type: ignore[attr-defined]
        self.fields["cadence"].queryset = Cadence.objects.order_by("name")  # type: ignore[attr-defined]
        self.fields["card_stage"].choices = _stage_choices()  # type: ignore[attr-defined]

    def mapping(self) -> dict[str, str]:
        data = self.cleaned_data
        return {k: data[f"{k}_path"] for k in ("phone", "name", "email") if data.get(f"{k}_path")}

    def actions(self) -> list[dict[str, Any]]:
        data = self.cleaned_data
        found: list[dict[str, Any]] = []
        if data.get("contact_upsert"):
            found.append({"type": "contact_upsert"})
        if data.get("tag_add"):
            found.append({"type": "tag_add", "tag_id": data["tag_add"].pk})
        if data.get("tag_remove"):
            found.append({"type": "tag_remove", "tag_id": data["tag_remove"].pk})
        if data.get("card_stage"):
            board_id, stage_id = (int(x) for x in data["card_stage"].split(":"))
            found.append({"type": "card_move", "board_id": board_id, "stage_id": stage_id})
        if data.get("cadence"):
            found.append({"type": "cadence_enroll", "cadence_id": data["cadence"].pk})
        return found

    @staticmethod
    def initial_for(hook: Any) -> dict[str, Any]:
        initial: dict[str, Any] = {"name": hook.name, "enabled": hook.enabled, "contact_upsert": False}
        for key in ("phone", "name", "email"):
            initial[f"{key}_path"] = hook.mapping.get(key, "")
        for action in hook.actions:
            kind = action["type"]
            if kind == "contact_upsert":
                initial["contact_upsert"] = True
            elif kind in ("tag_add", "tag_remove"):
                initial[kind] = action["tag_id"]
            elif kind == "card_move":
                initial["card_stage"] = f"{action['board_id']}:{action['stage_id']}"
            elif kind == "cadence_enroll":
                initial["cadence"] = action["cadence_id"]
        return initial
