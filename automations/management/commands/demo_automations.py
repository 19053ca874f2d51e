from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from automations.models import Rule, Trigger
from automations.services import rule_save
from campaigns.cadences import cadence_save, call_agent_choices
from campaigns.models import Cadence
from crm.models import Tag
from inbox.models import Channel, ChannelKind
from tenants.models import Tenant

RULE_NAME = "Lead quente"
CADENCE_NAME = "Follow-up quente"


class Command(BaseCommand):
    help = "Give the demo tenant the 'quente' rule: tag quente added -> assign round-robin and enroll (once)."

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.get(slug="demo")
        with schema_context(tenant.schema_name):
            if not Rule.objects.filter(name=RULE_NAME).exists():
                self._quente_rule()
        self.stdout.write(f" automations : '{RULE_NAME}' (tag quente -> round-robin + cadence '{CADENCE_NAME}')")

    def _quente_rule(self) -> None:
        channel = Channel.objects.filter(kind=ChannelKind.WHATSAPP_CLOUD).first() or Channel.objects.first()
        if channel is None:
            raise SystemExit("demo_automations needs a channel: run demo_channels first")
        quente, _created = Tag.objects.get_or_create(name="quente")
        cadence = Cadence.objects.filter(name=CADENCE_NAME).first() or cadence_save(
            name=CADENCE_NAME, channel=channel, respect_quiet_hours=True, steps=self._steps()
        )
        rule_save(
            name=RULE_NAME,
            trigger=Trigger.TAG_ADDED,
            trigger_config={"tag_id": quente.pk},
            actions=[{"type": "assign_round_robin"}, {"type": "cadence_enroll", "cadence_id": cadence.pk}],
        )

    def _steps(self) -> list[dict[str, Any]]:
        """WhatsApp now; SMS two business days later at 10:00; then an AI call when a voice agent exists."""
        sms = Channel.objects.filter(kind=ChannelKind.SMS_TWILIO).first()
        steps: list[dict[str, Any]] = [
            {"kind": "text", "body": "Oi {{first_name}}! Vi que você tem interesse. Posso ajudar?"},
            {
                "channel": sms.pk if sms else None,
                "timing": "business_day",
                "business_days": 2,
                "at_time": "10:00",
                "only_if_no_reply": True,
                "kind": "text",
                "body": "{{first_name}}, ainda pensando? Estou por aqui.",
            },
        ]
        agents = call_agent_choices()
        if agents:
            steps.append(
                {
                    "action": "call",
                    "call_agent": agents[0][0],
                    "timing": "business_day",
                    "business_days": 1,
                    "at_time": "10:00",
                    "only_if_no_reply": True,
                }
            )
        return steps
