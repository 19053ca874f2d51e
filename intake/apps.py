from django.apps import AppConfig


class IntakeConfig(AppConfig):
    """Public-schema intake of provider webhooks: routing table and raw events, before any tenant is known."""

    name = "intake"
    default_auto_field = "django.db.models.BigAutoField"
