from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VoiceConfig(AppConfig):
    name = "voice"
    verbose_name = _("Voice")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from voice import campaigns, contributions, services

        contributions.connect()
        services.subscribe()  # contact.erased: wipe that person's transcripts and recording links
        campaigns.subscribe()  # call.ended: a voice campaign starts its next calls
