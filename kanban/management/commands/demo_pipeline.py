from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from crm.services import contact_get_or_create
from kanban.models import Board
from kanban.services import board_create, card_create
from tenants.models import Tenant

SAMPLE = [
    ("Ana Cliente", "+5511987654321", "Pedido de 20 camisetas", "1800.00", 0),
    ("Bruno Lima", "+5511976543210", "Uniformes da escola", "5400.00", 1),
    ("Carla Dias", "+5511965432109", "Brindes de fim de ano", "2300.00", 3),
]


class Command(BaseCommand):
    help = "Give the demo tenant a sales pipeline with a few cards (once)."

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.get(slug="demo")
        with schema_context(tenant.schema_name):
            if not Board.objects.exists():
                self._sample_board()
        self.stdout.write(" pipeline    : a 'Vendas' board with sample leads")

    def _sample_board(self) -> None:
        board = board_create(name="Vendas")
        stages = list(board.stages.order_by("rank"))
        for name, phone, title, value, stage in SAMPLE:
            contact = contact_get_or_create(phone=phone, name=name)
            card_create(
                board=board, stage=stages[stage], title=title, contact=contact, value=Decimal(value), source="demo"
            )
