from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core.contributions import CONTACT_FILTERS, contribute
        from inbox import live, suspension
        from inbox.contributions import channel_filter

        live.connect()
        suspension.connect()
        contribute(CONTACT_FILTERS, channel_filter)
