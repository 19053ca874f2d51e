from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from whatsapp.models import QrPacing, TemplateCategory


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


class QrPacingForm(forms.ModelForm):
    """A QR number's anti-ban pacing; each help text says why the default is what it is."""

    class Meta:
        model = QrPacing
        fields = [
            "min_delay_s",
            "max_delay_s",
            "batch_size",
            "batch_pause_min_s",
            "batch_pause_max_s",
            "warmup_start",
            "warmup_days",
            "daily_cap",
            "stop_failure_rate",
            "stop_unanswered_rate",
            "stop_window",
            "reply_wait_s",
        ]
        help_texts = {
            "min_delay_s": _(
                "Default 25. Each message waits a random time between these two values, so the number does "
                "not send at a machine's steady beat."
            ),
            "max_delay_s": _("Default 75: about one message a minute on average."),
            "batch_size": _("Default 30. After this many messages the number rests, as a person would."),
            "batch_pause_min_s": _(
                "Default 600 (10 minutes). The rest after a batch is random between these two values."
            ),
            "batch_pause_max_s": _("Default 1200 (20 minutes)."),
            "warmup_start": _(
                "Default 20. A newly connected number starts low: WhatsApp watches new numbers most closely."
            ),
            "warmup_days": _(
                "Default 14. The limit grows a little every day until it reaches the daily limit on this day."
            ),
            "daily_cap": _(
                "Default 200 per number per day (the tenant's local day). With several QR numbers, a "
                "campaign rotates across them."
            ),
            "stop_failure_rate": _(
                "Default 0.15. Sending stops when 15 in 100 of the last sends failed: failures to many "
                "numbers are a ban signal."
            ),
            "stop_unanswered_rate": _(
                "Default 0.97. Sending stops when 97 in 100 of the last sends got no reply: nobody "
                "answering often comes before blocks and reports."
            ),
            "stop_window": _("Default 50: the rates above are measured over the last 50 sends (at least 20)."),
            "reply_wait_s": _("Default 21600 (6 hours) before a send without a reply counts as unanswered."),
        }
