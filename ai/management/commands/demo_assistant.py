from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from ai.models import AISettings, Assistant, LeadSettings, Tool
from ai.services import assistant_save
from inbox.models import Channel
from tenants.models import Tenant

DEMO_KEY = "sk-demo-emulator"  # the local OpenAI-compatible emulator (emulators/demo.py) takes any key
DEMO_KNOWLEDGE = "Loja Sol"
DEMO_DOCUMENT = """# Loja Sol: camisetas personalizadas

## Horário
Atendemos de segunda a sexta, das 9h às 18h, e aos sábados das 9h às 13h.

## Entregas
Entregamos em Campinas e região em até 2 dias úteis, com frete de R$ 15. Para outras cidades enviamos pelos
Correios, com prazo de 5 a 8 dias úteis.

## Pagamento
Aceitamos Pix, cartão de crédito em até 3x sem juros e boleto.

## Trocas
Trocas em até 7 dias após o recebimento, com a etiqueta, direto na loja ou pelo WhatsApp.
"""
DEMO_PAIRS = [
    ("Qual o pedido mínimo de camisetas personalizadas?", "O pedido mínimo é de 10 camisetas por estampa."),
    ("Quanto tempo leva para produzir?", "A produção leva de 3 a 5 dias úteis depois da aprovação da arte."),
]


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
            self._knowledge()
            # AI lead progression on every board: suggestions to accept or dismiss on the cards (no auto-move).
            LeadSettings.objects.get_or_create(board=None, defaults={"enabled": True, "auto_move": False})
        self.stdout.write(" leads       : the AI classifies settled conversations and suggests stage moves")
        self.stdout.write(" assistant   : 'Sol' answers the WhatsApp channel (model: the local emulator)")
        self.stdout.write(" knowledge   : 'Loja Sol' grounds Sol's answers and the inbox copilot's suggestions")

    def _knowledge(self) -> None:
        """A small knowledge base for Sol (indexed by the worker), so answers and copilot suggestions are
        grounded in the demo too."""
        from knowledge.models import KnowledgeBase
        from knowledge.services import document_add_text, knowledge_base_create, qa_pair_create

        kb = KnowledgeBase.objects.filter(name=DEMO_KNOWLEDGE).first()
        if kb is None:
            kb = knowledge_base_create(name=DEMO_KNOWLEDGE, description="Horário, entregas, pagamento e trocas")
            document_add_text(knowledge_base=kb, name="loja-sol.md", text=DEMO_DOCUMENT, markdown=True)
            for question, answer in DEMO_PAIRS:
                qa_pair_create(knowledge_base=kb, question=question, answer=answer)
        for assistant in Assistant.objects.filter(name="Sol"):
            if kb.pk not in assistant.knowledge_base_ids:
                assistant.knowledge_base_ids = [*assistant.knowledge_base_ids, kb.pk]
                assistant.save(update_fields=["knowledge_base_ids", "updated_at"])
