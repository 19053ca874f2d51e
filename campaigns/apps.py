from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from campaigns import contributions, exits, suspension

        contributions.connect()
        exits.connect()
        suspension.connect()
