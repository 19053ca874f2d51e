from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core import contributions
        from webhooks import services, subscribers

        subscribers.connect()
        # automation rules call an endpoint without importing this app
        contributions.contribute(contributions.RULE_WEBHOOK_ENDPOINTS, services.endpoints_for_rules)
        contributions.contribute(contributions.RULE_WEBHOOK_CALL, services.endpoint_event_send)
        contributions.contribute(contributions.RULE_INBOUND_HOOKS, services.inbound_hooks_for_rules)
