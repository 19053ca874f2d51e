from __future__ import annotations

import contextlib
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand
from django.utils import timezone
from django_tenants.utils import schema_context

from emulators import demo
from tenants.models import Tenant
from voice.models import AgentStatus, VoiceAgent, VoiceNumber, VoiceSettings


class Command(BaseCommand):
    help = (
        "Give the demo tenant Retell and Twilio voice settings pointed at the emulators, a voice number and a "
        "voice agent, published to the Retell emulator when it is running."
    )

    def handle(self, *args: Any, **opts: Any) -> None:
        from intake.services import route_register
        from voice.services import ROUTE_KIND, voice_agent_sync, voice_api_key_set, voice_twilio_set

        tenant = Tenant.objects.get(slug="demo")
        with schema_context(tenant.schema_name):
            if not VoiceSettings.objects.exists():
                # A fixed route, so the Twilio emulator (started apart by `make run`) knows the Voice URL.
                row = VoiceSettings.objects.create(webhook_route=demo.DEMO_VOICE_ROUTE)
                route_register(kind=ROUTE_KIND, external_id=row.webhook_route, tenant_id=tenant.pk, channel_id=row.pk)
            voice_api_key_set(api_key=demo.DEMO_RETELL_KEY)
            voice_twilio_set(
                account_sid=demo.DEMO_SID, auth_token=demo.DEMO_AUTH, sip_termination_uri="demo.pstn.twilio.com"
            )
            agent = VoiceAgent.objects.filter(name="Ana (demo)").first() or VoiceAgent.objects.create(
                name="Ana (demo)",
                prompt=(
                    "Você é a Ana, assistente da loja demo. Seja simpática e breve, confirme o interesse do "
                    "cliente {{contact_first_name}} e ofereça agendar uma demonstração."
                ),
                begin_message="Olá! Aqui é a Ana, da loja demo. Posso falar um minutinho com você?",
                from_number=demo.DEMO_VOICE_NUMBER,
            )
            number, _created = VoiceNumber.objects.get_or_create(
                e164=demo.DEMO_VOICE_NUMBER, defaults={"friendly_name": "Voz Demo", "agent": agent}
            )
            # Without the Retell emulator up yet (`make run` starts it next) the sync fails as "unavailable":
            # beat's resync publishes the agent at its first tick once the emulator is up.
            with contextlib.suppress(ValidationError):
                voice_agent_sync(agent=agent)
            if agent.sync_retry_at is not None:
                VoiceAgent.objects.filter(pk=agent.pk).update(sync_retry_at=timezone.now())
            agent.refresh_from_db()
        state = "published" if agent.status == AgentStatus.PUBLISHED else "publishes itself once Retell answers"
        self.stdout.write(self.style.SUCCESS(f" voice       : agent {agent.name} ({state}), number {number.e164}"))
        self.stdout.write(" simulate a call to the voice number (Twilio rings the app):")
        self.stdout.write(
            f'   curl -X POST localhost:8711/_emulator/call -d \'{{"to": "{demo.DEMO_VOICE_NUMBER}", '
            '"from_phone": "+5511987654321"}\''
        )
