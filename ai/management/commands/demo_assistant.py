from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from ai.models import AISettings, Assistant, Tool
from ai.services import assistant_save
from inbox.models import Channel
from tenants.models import Tenant

DEMO_KEY = "sk-demo-emulator"  # the local OpenAI-compatible emulator (emulators/demo.py) takes any key


class Command(BaseCommand):
    help = "Give the demo tenant an AI key (for the local model emulator) and an assistant on its WhatsApp (once)."

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.get(slug="demo")
        with schema_context(tenant.schema_name):
            if not AISettings.objects.exists():
                AISettings.objects.create(api_key=DEMO_KEY)
            if not Assistant.objects.exists():
                channel = Channel.objects.filter(kind="whatsapp_cloud").order_by("pk").first()
                assistant_save(
                    channels=[channel] if channel else [],
                    name="Sol",
                    instructions="Você é a assistente da Loja Sol, uma loja de camisetas personalizadas.",
                    greeting="Oi! Eu sou a Sol, assistente virtual da Loja Sol 🌞",
                    allowed_tools=[Tool.HANDOFF, Tool.TAG_ADD, Tool.LEAD_CARD],
                    debounce_s=3,
                )
        self.stdout.write(" assistant   : 'Sol' answers the WhatsApp channel (model: the local emulator)")
