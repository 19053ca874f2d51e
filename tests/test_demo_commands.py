"""`make run`'s demo commands, run as it runs them (twice: a rerun reuses everything)."""

from __future__ import annotations

from io import StringIO
from typing import Any

from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from accounts.models import Membership, Role, User
from emulators import demo
from inbox.models import Channel, ChannelKind, Conversation
from intake.models import ChannelRoute
from kanban.models import Board, Card
from tenants.models import Tenant


def test_demo_commands_make_a_working_tenant_and_rerun_cleanly(tenants: Any, committed: Any, settings: Any) -> None:
    # As under `make run`: the APIs are the demo's emulators on their fixed ports (demo_channels starts them).
    settings.META_GRAPH_BASE_URL, settings.TWILIO_API_BASE_URL = "http://127.0.0.1:8710", "http://127.0.0.1:8711"
    outputs = []
    for _run in range(2):
        out = StringIO()
        for command in ("demo_setup", "demo_channels", "demo_pipeline", "demo_assistant"):
            call_command(command, stdout=out)
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]  # the same logins and channels on every rerun
    assert "owner@demo.localhost" in outputs[0] and demo.DEMO_PNID in outputs[0]
    connection.set_schema_to_public()
    tenant = Tenant.objects.get(slug="demo")
    owner = User.objects.get(email="owner@demo.localhost")
    assert Membership.objects.get(user=owner, tenant=tenant).role == Role.OWNER
    assert User.objects.get(email="admin@localhost").is_superuser
    with schema_context(tenant.schema_name):
        wa = Channel.objects.get(kind=ChannelKind.WHATSAPP_CLOUD)
        sms = Channel.objects.get(kind=ChannelKind.SMS_TWILIO)
        assert (wa.phone_number, sms.phone_number) == (demo.DEMO_WA_NUMBER, demo.DEMO_SMS_NUMBER)
        assert Conversation.objects.filter(channel=wa, contact__phone="+5511987654321").exists()
        assert Board.objects.count() == 1 and Card.objects.count() >= 3
        from ai.models import AISettings, AssistantBinding

        assert AISettings.objects.get().has_api_key  # the demo's assistant talks to the local model emulator
        assert AssistantBinding.objects.get(channel=wa).assistant.name == "Sol"
    routes = ChannelRoute.objects.filter(tenant=tenant)
    assert {(r.kind, r.external_id) for r in routes} >= {
        ("whatsapp_cloud", demo.DEMO_PNID),
        ("whatsapp_waba", demo.DEMO_WABA),
        ("sms_twilio", f"{demo.DEMO_SID}:{demo.DEMO_SMS_NUMBER}"),
    }
