from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone
from django_tenants.utils import schema_context

from crm.services import contact_get_or_create
from emulators import demo
from inbox.models import Channel, ChannelKind, Conversation
from inbox.services import channel_create, conversation_open
from tenants.models import Tenant


@contextlib.contextmanager
def _emulators_up() -> Iterator[None]:
    try:
        emulators = demo.emulators_build()
    except OSError:  # their ports are taken: the demo's emulators are already running
        yield
        return
    for emulator in emulators:
        emulator.start()
    try:
        yield
    finally:
        for emulator in emulators:
            emulator.stop()


class Command(BaseCommand):
    help = "Give the demo tenant a WhatsApp Cloud and an SMS channel pointed at the local emulators."

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.get(slug="demo")
        # Connecting a number asks the provider whether the credentials own it, as in production: the
        # demo's emulators answer, started here for the moment unless they already run (`make run`).
        with schema_context(tenant.schema_name), _emulators_up():
            wa = Channel.objects.filter(
                kind=ChannelKind.WHATSAPP_CLOUD, phone_number_id=demo.DEMO_PNID
            ).first() or channel_create(
                kind=ChannelKind.WHATSAPP_CLOUD,
                name="WhatsApp Demo",
                phone_number=demo.DEMO_WA_NUMBER,
                credentials={"access_token": demo.DEMO_TOKEN},
                waba_id=demo.DEMO_WABA,
                phone_number_id=demo.DEMO_PNID,
            )
            Channel.objects.filter(kind=ChannelKind.SMS_TWILIO).first() or channel_create(
                kind=ChannelKind.SMS_TWILIO,
                name="SMS Demo",
                phone_number=demo.DEMO_SMS_NUMBER,
                credentials={"account_sid": demo.DEMO_SID, "auth_token": demo.DEMO_AUTH},
                rate_limit_per_s=10,
            )
            # A customer who wrote recently, so the 24-hour window is open for a first reply.
            contact = contact_get_or_create(phone="+5511987654321", name="Ana Cliente")
            conversation = conversation_open(contact=contact, channel=wa)
            Conversation.objects.filter(pk=conversation.pk).update(
                last_inbound_at=timezone.now(), last_message_at=timezone.now()
            )
        self.stdout.write(
            self.style.SUCCESS(f" channels    : WhatsApp Demo {demo.DEMO_WA_NUMBER}, SMS Demo {demo.DEMO_SMS_NUMBER}")
        )
        self.stdout.write(" simulate a customer message:")
        self.stdout.write(
            "   curl -X POST localhost:8710/_emulator/inbound -d "
            f'\'{{"phone_number_id": "{demo.DEMO_PNID}", "from_phone": "5511987654321", "text": "Oi!"}}\''
        )
        self.stdout.write(" simulate the owner answering from the WhatsApp Business app, and shared chat history:")
        self.stdout.write(
            "   curl -X POST localhost:8710/_emulator/echo -d "
            f'\'{{"phone_number_id": "{demo.DEMO_PNID}", "to_phone": "5511987654321", "text": "Oi, Ana!"}}\''
        )
        self.stdout.write(
            "   curl -X POST localhost:8710/_emulator/history -d "
            f'\'{{"phone_number_id": "{demo.DEMO_PNID}", "threads": [{{"customer": "5511987650001", '
            '"messages": [{"text": "Vocês abrem sábado?", "age_s": 864000}, '
            '{"text": "Abrimos!", "age_s": 863000, "from_business": true}]}]}\''
        )
