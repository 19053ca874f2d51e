from django.apps import AppConfig


class KanbanConfig(AppConfig):
    name = "kanban"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from kanban import contributions, live

        live.connect()
        contributions.connect()
