from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from crm.services import phone_normalize
from inbox.models import Channel


class PhoneField(forms.CharField):
    def clean(self, value: Any) -> str:
        raw = super().clean(value)
        try:
            return phone_normalize(raw)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from exc


class CloudChannelForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=80)
    phone_number = PhoneField(label=_("Phone number"))
    phone_number_id = forms.CharField(label=_("Phone number ID"), max_length=40)
    waba_id = forms.CharField(label=_("WhatsApp Business Account ID"), max_length=40)
    access_token = forms.CharField(label=_("Access token"), widget=forms.PasswordInput(render_value=False))
    # Only with the business's own Meta app (otherwise the platform's app receives the webhooks).
    app_id = forms.RegexField(label=_("Your Meta app ID (optional)"), regex=r"^[0-9]{1,20}$", required=False)
    app_secret = forms.CharField(
        label=_("App secret"), required=False, widget=forms.PasswordInput(render_value=False), max_length=200
    )
    verify_token = forms.CharField(
        label=_("Webhook verify token"), required=False, widget=forms.PasswordInput(render_value=False), max_length=200
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        own_app = [data.get("app_id"), data.get("app_secret"), data.get("verify_token")]
        if any(own_app) and not all(own_app):
            raise ValidationError(_("Your own Meta app needs its app ID, app secret and a verify token."))
        return data


class TwilioChannelForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=80)
    phone_number = PhoneField(label=_("Twilio phone number"))
    account_sid = forms.CharField(label=_("Account SID"), max_length=64)
    auth_token = forms.CharField(label=_("Auth token"), widget=forms.PasswordInput(render_value=False))


class NewConversationForm(forms.Form):
    channel = forms.ModelChoiceField(label=_("Channel"), queryset=Channel.objects.all())
    phone = PhoneField(label=_("Phone number"))
    name = forms.CharField(label=_("Name"), max_length=150, required=False)


class ReplyForm(forms.Form):
    body = forms.CharField(
        label=_("Message"), widget=forms.Textarea(attrs={"rows": 2}), max_length=4096, required=False
    )
    attachment = forms.FileField(label=_("Attachment"), required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("body") and not data.get("attachment"):
            raise ValidationError(_("Write a message or attach a file."))
        return data


class NoteForm(forms.Form):
    note = forms.CharField(label=_("Internal note"), widget=forms.Textarea(attrs={"rows": 2}), max_length=4096)


class CannedResponseForm(forms.Form):
    shortcut = forms.SlugField(label=_("Shortcut"), max_length=40)
    title = forms.CharField(label=_("Title"), max_length=80)
    body = forms.CharField(label=_("Text"), widget=forms.Textarea(attrs={"rows": 3}))


class InboxSettingsForm(forms.Form):
    agents_see_all = forms.BooleanField(
        label=_("Agents see every conversation (otherwise only theirs and unassigned)"), required=False
    )
    auto_assign = forms.BooleanField(label=_("Assign new conversations round-robin"), required=False)
