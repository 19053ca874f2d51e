from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core.contributions import MEDIA_GUARD, contribute
        from crm.contributions import import_media_guard

        contribute(MEDIA_GUARD, import_media_guard)
