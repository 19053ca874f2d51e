"""`make run`'s demo commands, run as it runs them (twice: a rerun reuses everything)."""

from __future__ import annotations

from io import StringIO
from typing import Any

from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from accounts.models import Membership, Role, User
from crm.models import Tag
from emulators import demo
from inbox.models import Channel, ChannelKind, Conversation
from intake.models import ChannelRoute
from kanban.models import Board, Card
from tenants.models import Tenant


def test_demo_commands_make_a_working_tenant_and_rerun_cleanly(
    tenants: Any, committed: Any, settings: Any, retell_emulator: Any
) -> None:
    # As under `make run`: the APIs are the demo's emulators on their fixed ports (demo_channels starts them).
    settings.META_GRAPH_BASE_URL, settings.TWILIO_API_BASE_URL = "http://127.0.0.1:8710", "http://127.0.0.1:8711"
    settings.RETELL_API_BASE_URL = retell_emulator.base_url
    outputs = []
    for _run in range(2):
        out = StringIO()
        for command in (
            "demo_setup",
            "demo_channels",
            "demo_pipeline",
            "demo_assistant",
            "demo_automations",
            "demo_voice",
        ):
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
        from knowledge.models import KnowledgeBase

        kb = KnowledgeBase.objects.get(name="Loja Sol")  # once, on every rerun
        assert AssistantBinding.objects.get(channel=wa).assistant.knowledge_base_ids == [kb.pk]
        assert kb.documents.count() == 2  # the shop's page and its Q&A pairs, indexed by the worker
        from ai.models import LeadSettings

        (leads,) = LeadSettings.objects.all()  # AI lead progression suggests moves on every board
        assert leads.board_id is None and leads.enabled and not leads.auto_move
        from automations.models import Rule

        (rule,) = Rule.objects.filter(name="Lead quente")  # the "done when" rule, made once
        assert rule.trigger_config == {"tag_id": Tag.objects.get(name="quente").pk}
        assert [a["type"] for a in rule.actions] == ["assign_round_robin", "cadence_enroll"]
        from voice.models import VoiceAgent, VoiceNumber, VoiceSettings

        (voice_agent,) = VoiceAgent.objects.all()  # published to the Retell emulator, once
        assert voice_agent.status == "published" and voice_agent.retell_agent_id in retell_emulator.agents
        assert VoiceNumber.objects.get(e164=demo.DEMO_VOICE_NUMBER).agent == voice_agent
        assert VoiceSettings.objects.get().webhook_route == demo.DEMO_VOICE_ROUTE
        import datetime as dt

        from campaigns.models import Cadence

        # The cadence: WhatsApp, then SMS two business days later at 10:00, then a call when an agent exists.
        cadence = Cadence.objects.get(pk=rule.actions[1]["cadence_id"])
        steps = list(cadence.steps.filter(removed_at__isnull=True).order_by("position"))
        kinds = [(s.step_channel or cadence.channel).kind for s in steps if s.action == "message"]
        assert kinds == ["whatsapp_cloud", "sms_twilio"]
        assert (steps[1].timing, steps[1].business_days, steps[1].at_time) == ("business_day", 2, dt.time(10, 0))
        # demo_automations runs before demo_voice publishes its agent: the demo cadence has no call step
        assert [s.action for s in steps[2:]] == []
    routes = ChannelRoute.objects.filter(tenant=tenant)
    assert {(r.kind, r.external_id) for r in routes} >= {
        ("whatsapp_cloud", demo.DEMO_PNID),
        ("whatsapp_waba", demo.DEMO_WABA),
        ("sms_twilio", f"{demo.DEMO_SID}:{demo.DEMO_SMS_NUMBER}"),
    }
