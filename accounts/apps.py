from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.admin.models import LogEntry
        from django.contrib.auth.signals import user_logged_in
        from django.db.models.signals import post_save

        from accounts import audit, checks  # noqa: F401  (checks registers the deployment checks)

        user_logged_in.connect(audit.on_user_logged_in, dispatch_uid="accounts.audit.login")
        post_save.connect(audit.on_admin_log_entry, sender=LogEntry, dispatch_uid="accounts.audit.admin")
