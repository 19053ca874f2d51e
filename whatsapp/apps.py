from typing import Any

from django.apps import AppConfig
from django.core import checks


class WhatsappConfig(AppConfig):
    name = "whatsapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from whatsapp import contributions

        contributions.connect()
        checks.register(store_dir_check, checks.Tags.security)


def store_dir_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The live WhatsApp Web device stores hold plaintext keys: their folder must be memory-backed."""
    from pathlib import Path

    from django.conf import settings

    from whatsapp.web.store import store_dir_problem

    if settings.WA_WEB_ENGINE != "neonize":
        return []
    problem = store_dir_problem(Path(settings.WA_WEB_STORE_DIR))
    if not problem:
        return []
    return [
        checks.Warning(
            problem,
            hint="Set WA_WEB_STORE_DIR to a folder on tmpfs (such as /dev/shm/cp-waweb).",
            id="whatsapp.W001",
        )
    ]
