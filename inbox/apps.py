from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core.contributions import (
            CONTACT_CONVERSATIONS,
            CONTACT_FILTERS,
            CONTACT_MERGE_GUARD,
            CONTACT_TIMELINE,
            MEDIA_GUARD,
            contribute,
        )
        from inbox import coexistence, live, suspension
        from inbox.contributions import (
            channel_filter,
            contact_conversations,
            media_guard,
            merge_guard,
            message_timeline,
        )

        live.connect()
        coexistence.connect()
        suspension.connect()
        contribute(CONTACT_FILTERS, channel_filter)
        contribute(CONTACT_CONVERSATIONS, contact_conversations)
        contribute(CONTACT_TIMELINE, message_timeline)
        contribute(CONTACT_MERGE_GUARD, merge_guard)
        contribute(MEDIA_GUARD, media_guard)
