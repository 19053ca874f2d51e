from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

from core.media import filename_clean, upload_type
from crm.services import phone_normalize
from inbox.models import Channel


class PhoneField(forms.CharField):
    def clean(self, value: Any) -> str:
        raw = super().clean(value)
        try:
            return phone_normalize(raw)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from exc


# Meta's ids go into Graph URL paths: one segment each, never a link (the Graph client checks it again).
graph_id = RegexValidator(
    r"^[A-Za-z0-9_-]+$", _("Paste the ID from Meta's WhatsApp API setup page (digits), not a link."), code="graph_id"
)


class CloudChannelForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=80)
    phone_number = PhoneField(label=_("Phone number"))
    phone_number_id = forms.CharField(label=_("Phone number ID"), max_length=40, validators=[graph_id])
    waba_id = forms.CharField(label=_("WhatsApp Business Account ID"), max_length=40, validators=[graph_id])
    access_token = forms.CharField(label=_("Access token"), widget=forms.PasswordInput(render_value=False))
    # Manual entry is for the business's own Meta app only (the platform's app connects through Embedded
    # Signup): its secret proves it issued the token, and its webhooks come to a URL of its own.
    app_id = forms.RegexField(label=_("Your Meta app ID"), regex=r"^[0-9]{1,20}$")
    app_secret = forms.CharField(label=_("App secret"), widget=forms.PasswordInput(render_value=False), max_length=200)
    verify_token = forms.CharField(
        label=_("Webhook verify token"), widget=forms.PasswordInput(render_value=False), max_length=200
    )


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

    def clean_attachment(self) -> Any:
        """Only kinds of file the channels carry, up to MEDIA_UPLOAD_MAX_BYTES; the type comes from our
        table by extension, not from what the browser claims."""
        upload = self.cleaned_data.get("attachment")
        if upload is None:
            return None
        limit = settings.MEDIA_UPLOAD_MAX_BYTES
        if upload.size is not None and upload.size > limit:
            raise ValidationError(
                _("The file is too large (at most %(size)s MB).") % {"size": limit // (1024 * 1024)},
                code="too_large",
            )
        mime = upload_type(upload.name or "")
        if mime is None:
            raise ValidationError(
                _("This kind of file cannot be sent. Attach an image, audio, video, PDF or office document."),
                code="file_type",
            )
        upload.name = filename_clean(upload.name or "") or "file"
        upload.content_type = mime
        return upload

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
