from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AiConfig(AppConfig):
    name = "ai"
    verbose_name = _("AI assistants")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ai import contributions, faq, inbox_bot, leads

        contributions.connect()
        leads.subscribe()  # message.created: inbound -> the conversation's lead is classified once it settles
        inbox_bot.subscribe()  # message.created: inbound -> a debounced bot reply; an agent's reply -> human mode
        faq.subscribe()  # conversation.updated to resolved -> a suggested FAQ pair, in the background
