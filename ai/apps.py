from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AiConfig(AppConfig):
    name = "ai"
    verbose_name = _("AI assistants")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ai import contributions, inbox_bot

        contributions.connect()
        inbox_bot.subscribe()  # message.created: inbound -> a debounced bot reply; an agent's reply -> human mode
