"""Tenant isolation, generated from the URL configuration and the API router.

Every route of the tenant URLconf (through every include, the DRF router's routes too) is collected at
import time. Tenant B gets one object of every tenant model (a factory per model; a model without one fails
``test_every_tenant_model_has_a_factory``), with ids that do not exist in tenant A. Then:

- on A's host, A's owner (session) and A's API token ask for every route that takes an object id with
  B's ids, with every method: the answer is 404/403 (or 405), never the object, and B's object is unchanged;
- on A's host, every route without an id (lists, forms, search) never shows B's unique markers;
- on B's host, A's session and A's token are treated exactly like an anonymous visitor.

A new route is covered without editing this file; a route whose id names a resource this file does not
know, or a kwarg it cannot fill, fails with a message saying what to add.
"""

from __future__ import annotations

import datetime
import random
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, models, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts.models import ApiToken, AuditAction, AuditEntry, Invitation, Membership, Role, User
from accounts.services import api_token_create, invitation_create
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.support import make_member

MARK = f"zqiso{uuid.uuid4().hex[:10]}"  # in every name of B's objects; never on any page of A
B_PHONE = f"+55119{random.randrange(10**8):08d}"
ID_BASE = 1_500_000_000 + random.randrange(10**8)  # B's ids: far above anything A's sequences reach

# --- the routes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    route: str  # the full pattern text, for messages
    name: str
    kwargs: tuple[tuple[str, str], ...]  # (kwarg, the literal path segment just before it)

    @property
    def is_api(self) -> bool:
        return self.route.startswith("api/")

    def __str__(self) -> str:
        return self.route


def _pattern_kwargs(text: str, pattern: Any) -> list[tuple[str, str]]:
    names = list(getattr(pattern, "converters", {}) or {}) or list(pattern.regex.groupindex)
    found = []
    for name in names:
        match = re.search(rf"<(?:\w+:)?{name}>|\(\?P<{name}>", text)
        before = text[: match.start()] if match else ""
        segments = [s for s in re.sub(r"[\^$\\]", "", before).split("/") if s and "<" not in s and "(" not in s]
        found.append((name, segments[-1] if segments else ""))
    return found


def _walk(patterns: list[Any], prefix: str = "", kwargs: tuple[tuple[str, str], ...] = ()) -> Iterator[Route]:
    for entry in patterns:
        text = prefix + str(entry.pattern)
        own = tuple(_pattern_kwargs(text, entry.pattern))
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, text, kwargs + own)
        elif isinstance(entry, URLPattern):
            yield Route(route=text, name=entry.name or "", kwargs=kwargs + own)


# `format` routes are the DRF suffix twins of routes collected anyway (same view, same lookup).
ROUTES = [r for r in _walk(get_resolver(settings.ROOT_URLCONF).url_patterns) if "format" not in dict(r.kwargs)]

# The literal segment before an id kwarg names the resource: /contacts/<pk>/, /boards/<pk>/stages/<stage_id>/.
RESOURCES = {
    "contacts": "crm.Contact",
    "imports": "crm.ContactImport",
    "tags": "crm.Tag",
    "custom-fields": "crm.CustomField",
    "segments": "crm.Segment",
    "channels": "inbox.Channel",
    "conversations": "inbox.Conversation",
    "messages": "inbox.Message",
    "saved-replies": "inbox.CannedResponse",
    "boards": "kanban.Board",
    "stages": "kanban.Stage",
    "cards": "kanban.Card",
    "campaigns": "campaigns.Campaign",
    "cadences": "campaigns.Cadence",
    "enrollments": "campaigns.Enrollment",
    "calls": "voice.Call",
    "agents": "voice.VoiceAgent",
    "voice-agents": "voice.VoiceAgent",
    "numbers": "voice.VoiceNumber",
    "voice-numbers": "voice.VoiceNumber",
    "voice-campaigns": "voice.VoiceCampaign",
    "webhooks": "webhooks.Endpoint",
    "webhook-endpoints": "webhooks.Endpoint",
    "deliveries": "webhooks.Delivery",
    "webhook-deliveries": "webhooks.Delivery",
    "inbound": "webhooks.InboundHook",
    "events": "webhooks.InboundEvent",
    "automations": "automations.Rule",
    "rules": "automations.Rule",
    "rule-runs": "automations.RuleRun",
    "alerts": "alerts.Alert",
    "knowledge": "knowledge.KnowledgeBase",
    "knowledge-bases": "knowledge.KnowledgeBase",
    "documents": "knowledge.Document",
    "knowledge-documents": "knowledge.Document",
    "qa": "knowledge.QAPair",
    "qa-pairs": "knowledge.QAPair",
    "assistants": "ai.Assistant",
    "faq-suggestions": "ai.FaqSuggestion",
    "tools": "ai.HttpTool",
    "ai-tools": "ai.HttpTool",
    "lead-suggestions": "ai.LeadSuggestion",
    "members": "accounts.Membership",
    "tokens": "accounts.ApiToken",
    "api-tokens": "accounts.ApiToken",
    "invitations": "accounts.Invitation",
    "audit": "accounts.AuditEntry",
}
ID_KWARGS = {"pk", "id"} | {f"{r}_id" for r in ("contact", "message", "stage", "board", "card", "campaign", "channel")}
# Tenant-app models with no object of their own to leak (framework tables).
NOT_TENANT_DATA = {"contenttypes.ContentType", "analytics.TenantUsage"}  # a proxy of the public Tenant
SINGLETONS = {"inbox.InboxSettings", "campaigns.QuietHours", "reports.ReportSettings"}
# Public-schema rows that belong to one tenant: their ids are shared by every tenant's URLs.
PUBLIC_TENANT_MODELS = [
    "accounts.Membership",
    "accounts.Invitation",
    "accounts.ApiToken",
    "accounts.AuditEntry",
    "tenants.UsageDay",
    "tenants.LimitOverride",
]


def _id_kwargs(route: Route) -> list[tuple[str, str]]:
    return [(k, seg) for k, seg in route.kwargs if k in ID_KWARGS]


# --- tenant B's world: one object of every model -------------------------------------------------


class World:
    """B's objects, made on demand in dependency order, with ids A does not have."""

    def __init__(self, tenant: Tenant, owner: User) -> None:
        self.tenant, self.owner = tenant, owner
        self.objects: dict[str, models.Model] = {}
        self.invitation_token = ""
        self.media_name = ""
        self._next = ID_BASE

    def new_id(self) -> int:
        self._next += 1
        return self._next

    def get(self, label: str) -> Any:
        if label not in self.objects:
            factory = FACTORIES.get(label)
            assert factory is not None, f"no factory for {label}: add one to FACTORIES in {__name__}"
            self.objects[label] = factory(self)
        return self.objects[label]

    def make(self, model_label: str, /, **fields: Any) -> Any:
        model = apps.get_model(model_label)
        return model.objects.create(pk=self.new_id(), **fields)


# Kwargs that are not object ids: a value that reaches the view (B's own where the kwarg names B's data).
OTHER_KWARGS: dict[str, Callable[[World], str]] = {
    "kind": lambda w: "whatsapp_cloud",
    "report": lambda w: "summary",  # an analytics CSV: A's own numbers, whatever B holds
    "action": lambda w: "pause",
    "operation": lambda w: "assign",  # voice numbers: the inbound agent (no call out)
    "provider": lambda w: "google",
    "token": lambda w: w.invitation_token,  # B's invitation link, tried on A's host
    "uidb64": lambda w: "MQ",
    "schema": lambda w: w.tenant.schema_name,  # B's media, by URL
    "path": lambda w: w.media_name,
    "key": lambda w: w.get("webhooks.InboundHook").key,  # B's inbound webhook, posted on A's host
    "task": lambda w: "suggest",  # the copilot on B's conversation, asked on A's host
    "event_id": lambda w: w.get("inbox.ConversationEvent").pk,  # a line of B's conversation's timeline
}


def _invitation(w: World) -> Invitation:
    invitation, raw = invitation_create(tenant=w.tenant, email=f"{MARK}@beta.test", role=Role.AGENT, invited_by=w.owner)
    w.invitation_token = raw
    return invitation


def _message(w: World) -> Any:
    message = w.make(
        "inbox.Message",
        conversation=w.get("inbox.Conversation"),
        channel=w.get("inbox.Channel"),
        direction="in",
        body=f"{MARK} message body",
        status="delivered",
        idempotency_key=f"{MARK}-msg",
    )
    message.media.save(f"{MARK}.txt", ContentFile(f"secret of beta {MARK}".encode()), save=True)
    w.media_name = message.media.name
    return message


FACTORIES: dict[str, Callable[[World], Any]] = {
    "crm.Tag": lambda w: w.make("crm.Tag", name=f"{MARK}-tag"),
    "crm.CustomField": lambda w: w.make("crm.CustomField", key=f"{MARK}_field", label=f"{MARK} field"),
    "crm.Contact": lambda w: w.make("crm.Contact", phone=B_PHONE, name=f"{MARK} Contact"),
    "crm.ContactConsent": lambda w: w.make(
        "crm.ContactConsent",
        contact=w.get("crm.Contact"),
        medium="whatsapp",
        status="opted_in",
        source=f"{MARK}-source",
        changed_at=timezone.now(),
    ),
    "crm.Segment": lambda w: w.make("crm.Segment", name=f"{MARK} segment", filters={"q": MARK}),
    "crm.ContactIdentity": lambda w: w.make(
        "crm.ContactIdentity", contact=w.get("crm.Contact"), kind="wa_bsuid", scope="1", value="BR.1502576394655843"
    ),
    "crm.ContactMerge": lambda w: w.make(
        "crm.ContactMerge", contact=w.get("crm.Contact"), merged_contact_id=1, merged_label=f"{MARK} merged"
    ),
    "crm.ContactImport": lambda w: w.make(
        "crm.ContactImport", file=ContentFile(b"phone\n", name=f"{MARK}.csv"), original_name=f"{MARK}.csv"
    ),
    "inbox.Channel": lambda w: w.make(
        "inbox.Channel", kind="sms_twilio", name=f"{MARK} channel", phone_number=f"+55119{random.randrange(10**8):08d}"
    ),
    "inbox.Conversation": lambda w: w.make(
        "inbox.Conversation", contact=w.get("crm.Contact"), channel=w.get("inbox.Channel")
    ),
    "inbox.Message": _message,
    "inbox.CannedResponse": lambda w: w.make(
        "inbox.CannedResponse", shortcut=f"{MARK}-reply", title=f"{MARK} reply", body=f"{MARK} reply body"
    ),
    "inbox.InboxSettings": lambda w: apps.get_model("inbox.InboxSettings").objects.get_or_create()[0],
    "inbox.AgentState": lambda w: w.make("inbox.AgentState", user=w.owner),
    "inbox.ConversationEvent": lambda w: w.make(
        "inbox.ConversationEvent",
        conversation=w.get("inbox.Conversation"),
        kind="stage_moved",
        detail={"from": f"{MARK} from", "to": f"{MARK} to"},
    ),
    "inbox.HistoryImport": lambda w: w.make(
        "inbox.HistoryImport", channel=w.get("inbox.Channel"), status="declined", error_text=f"{MARK} declined"
    ),
    "inbox.BusinessAppContact": lambda w: w.make(
        "inbox.BusinessAppContact",
        channel=w.get("inbox.Channel"),
        contact=w.get("crm.Contact"),
        phone=B_PHONE,
        full_name=f"{MARK} app contact",
        changed_at=timezone.now(),
    ),
    "whatsapp.MessageTemplate": lambda w: w.make(
        "whatsapp.MessageTemplate",
        waba_id=f"{MARK}-waba",
        template_id=f"{MARK}-tpl",
        name=f"{MARK}_template",
        language="pt_BR",
        category="MARKETING",
    ),
    "whatsapp.QrPacing": lambda w: w.make("whatsapp.QrPacing", channel=w.get("inbox.Channel")),
    "kanban.Board": lambda w: w.make("kanban.Board", name=f"{MARK} board"),
    "kanban.Stage": lambda w: w.make("kanban.Stage", board=w.get("kanban.Board"), name=f"{MARK} stage", rank="a0"),
    "kanban.Card": lambda w: w.make(
        "kanban.Card",
        board=w.get("kanban.Board"),
        stage=w.get("kanban.Stage"),
        rank="a0",
        title=f"{MARK} card",
        contact=w.get("crm.Contact"),
    ),
    "kanban.CardMove": lambda w: w.make(
        "kanban.CardMove", card=w.get("kanban.Card"), to_stage=w.get("kanban.Stage"), reason=f"{MARK} move"
    ),
    "campaigns.QuietHours": lambda w: apps.get_model("campaigns.QuietHours").current(),
    "campaigns.Campaign": lambda w: w.make(
        "campaigns.Campaign", name=f"{MARK} campaign", channel=w.get("inbox.Channel"), body=f"{MARK} campaign body"
    ),
    "campaigns.CampaignRecipient": lambda w: w.make(
        "campaigns.CampaignRecipient", campaign=w.get("campaigns.Campaign"), contact=w.get("crm.Contact")
    ),
    "campaigns.ChannelDailyCap": lambda w: w.make(
        "campaigns.ChannelDailyCap", channel=w.get("inbox.Channel"), daily_cap=1000
    ),
    "campaigns.Cadence": lambda w: w.make("campaigns.Cadence", name=f"{MARK} cadence", channel=w.get("inbox.Channel")),
    "campaigns.CadenceStep": lambda w: w.make(
        "campaigns.CadenceStep", cadence=w.get("campaigns.Cadence"), position=0, body=f"{MARK} step"
    ),
    "campaigns.Enrollment": lambda w: w.make(
        "campaigns.Enrollment",
        cadence=w.get("campaigns.Cadence"),
        contact=w.get("crm.Contact"),
        next_run_at=timezone.now() + timedelta(days=365),
    ),
    "campaigns.StepRun": lambda w: w.make(
        "campaigns.StepRun",
        enrollment=w.get("campaigns.Enrollment"),
        step=w.get("campaigns.CadenceStep"),
        ran_at=timezone.now(),
        detail=f"{MARK} run",
    ),
    "voice.VoiceSettings": lambda w: w.make("voice.VoiceSettings", webhook_route=f"{MARK}-route"),
    "voice.VoiceAgent": lambda w: w.make("voice.VoiceAgent", name=f"{MARK} agent", prompt=f"{MARK} prompt"),
    "voice.VoiceNumber": lambda w: w.make("voice.VoiceNumber", e164="+5511930004242", friendly_name=f"{MARK} number"),
    "voice.Call": lambda w: w.make(
        "voice.Call",
        agent=w.get("voice.VoiceAgent"),
        contact=w.get("crm.Contact"),
        direction="out",
        to_number=B_PHONE,
        summary=f"{MARK} call summary",
    ),
    "voice.VoiceCampaign": lambda w: w.make(
        "voice.VoiceCampaign", name=f"{MARK} voice campaign", agent=w.get("voice.VoiceAgent")
    ),
    "voice.VoiceCampaignRecipient": lambda w: w.make(
        "voice.VoiceCampaignRecipient", campaign=w.get("voice.VoiceCampaign"), contact=w.get("crm.Contact")
    ),
    "webhooks.Endpoint": lambda w: w.make(
        "webhooks.Endpoint",
        url="https://hooks.example.com/in",
        description=f"{MARK} endpoint",
        events=["message.received"],
        secrets={"current": "whsec_" + "A" * 32},
    ),
    "webhooks.Delivery": lambda w: w.make(
        "webhooks.Delivery",
        endpoint=w.get("webhooks.Endpoint"),
        webhook_id=f"msg_{MARK}",
        event_type="message.received",
        payload={"data": {"body": f"{MARK} payload"}},
        next_attempt_at=timezone.now() + timedelta(days=365),
    ),
    "webhooks.Attempt": lambda w: w.make(
        "webhooks.Attempt",
        delivery=w.get("webhooks.Delivery"),
        number=1,
        started_at=timezone.now(),
        response_body=f"{MARK} answer",
    ),
    "webhooks.InboundHook": lambda w: w.make(
        "webhooks.InboundHook", name=f"{MARK} hook", key=f"{MARK}-key", mapping={"phone": "p"}, secret={"value": "s"}
    ),
    "webhooks.InboundEvent": lambda w: w.make(
        "webhooks.InboundEvent", hook=w.get("webhooks.InboundHook"), payload={"p": f"{MARK} payload"}, status="applied"
    ),
    "knowledge.KnowledgeBase": lambda w: w.make("knowledge.KnowledgeBase", name=f"{MARK} knowledge"),
    "knowledge.Document": lambda w: w.make(
        "knowledge.Document",
        knowledge_base=w.get("knowledge.KnowledgeBase"),
        name=f"{MARK} document",
        kind="qa",
        text=f"{MARK} text",
        status="ready",
    ),
    "knowledge.QAPair": lambda w: w.make(
        "knowledge.QAPair", document=w.get("knowledge.Document"), question=f"{MARK} question", answer=f"{MARK} answer"
    ),
    "knowledge.Chunk": lambda w: w.make(
        "knowledge.Chunk",
        document=w.get("knowledge.Document"),
        knowledge_base=w.get("knowledge.KnowledgeBase"),
        position=0,
        version=1,
        text=f"{MARK} passage",
    ),
    "knowledge.Lexeme": lambda w: w.make(
        "knowledge.Lexeme", knowledge_base=w.get("knowledge.KnowledgeBase"), lexeme=f"{MARK}lexeme", chunks=1
    ),
    "ai.AISettings": lambda w: w.make("ai.AISettings", chat_model=f"{MARK}-model"),
    "ai.AIUsageDay": lambda w: w.make("ai.AIUsageDay", day=timezone.localdate(), model=f"{MARK}-model", kind="chat"),
    "ai.Assistant": lambda w: w.make("ai.Assistant", name=f"{MARK} assistant", instructions=f"{MARK} instructions"),
    "ai.AssistantBinding": lambda w: w.make(
        "ai.AssistantBinding", assistant=w.get("ai.Assistant"), channel=w.get("inbox.Channel")
    ),
    "ai.ConversationBot": lambda w: w.make(
        "ai.ConversationBot", conversation=w.get("inbox.Conversation"), handoff_reason=f"{MARK} reason"
    ),
    "ai.FaqSuggestion": lambda w: w.make(
        "ai.FaqSuggestion",
        conversation=w.get("inbox.Conversation"),
        through_message_id=1,
        question=f"{MARK} question",
        answer=f"{MARK} answer",
    ),
    "ai.BotReply": lambda w: w.make(
        "ai.BotReply", message=w.get("inbox.Message"), assistant=w.get("ai.Assistant"), mode="model"
    ),
    "ai.HttpTool": lambda w: w.make(
        "ai.HttpTool", name=f"{MARK}-tool", description=f"{MARK} tool", url="https://example.com/hook", secret="whsec_x"
    ),
    "ai.LeadSettings": lambda w: w.make("ai.LeadSettings", board=w.get("kanban.Board"), enabled=True),
    "ai.ConversationLead": lambda w: w.make("ai.ConversationLead", conversation=w.get("inbox.Conversation")),
    "ai.LeadSuggestion": lambda w: w.make(
        "ai.LeadSuggestion",
        conversation=w.get("inbox.Conversation"),
        card=w.get("kanban.Card"),
        board=w.get("kanban.Board"),
        stage=w.get("kanban.Stage"),
        reason=f"{MARK} reason",
        intent=f"{MARK} intent",
    ),
    # analytics rollups: numbers only, read back by tests/analytics/test_live_and_api.py's isolation test
    "analytics.MessageHour": lambda w: w.make(
        "analytics.MessageHour", hour=timezone.now().replace(minute=0, second=0, microsecond=0), channel_id=1, inbound=7
    ),
    "analytics.ConversationHour": lambda w: w.make(
        "analytics.ConversationHour", hour=timezone.now().replace(minute=0, second=0, microsecond=0), channel_id=1
    ),
    "analytics.Resolution": lambda w: w.make(
        "analytics.Resolution", conversation_id=1, channel_id=1, resolved_at=timezone.now()
    ),
    "analytics.ResponseSample": lambda w: w.make(
        "analytics.ResponseSample",
        reply_id=w.new_id(),
        conversation_id=1,
        hour=timezone.now(),
        channel_id=1,
        agent_id=1,
        seconds=30,
        is_first=True,
    ),
    "analytics.ResponseDay": lambda w: w.make(
        "analytics.ResponseDay", day=timezone.now().date(), channel_id=1, agent_id=1, is_first=True, bucket=30
    ),
    "analytics.CallHour": lambda w: w.make(
        "analytics.CallHour", hour=timezone.now(), direction="out", status="ended", outcome=f"{MARK}-outcome"
    ),
    "analytics.LeadMoveHour": lambda w: w.make(
        "analytics.LeadMoveHour", hour=timezone.now(), board_id=1, to_stage_id=1
    ),
    "analytics.OptOutHour": lambda w: w.make("analytics.OptOutHour", hour=timezone.now(), medium="whatsapp"),
    "automations.Rule": lambda w: w.make(
        "automations.Rule",
        name=f"{MARK} rule",
        trigger="tag_added",
        trigger_config={"tag_id": w.get("crm.Tag").pk},
        actions=[{"type": "reply", "text": f"{MARK} rule reply"}],
    ),
    "automations.RuleEvent": lambda w: w.make(
        "automations.RuleEvent",
        kind="tag_added",
        payload={"contact_id": w.get("crm.Contact").pk, "tag": f"{MARK}-tag"},
        status="done",
    ),
    "automations.RuleRun": lambda w: w.make(
        "automations.RuleRun",
        rule=w.get("automations.Rule"),
        event=w.get("automations.RuleEvent"),
        kind="tag_added",
        contact_id=w.get("crm.Contact").pk,
        outcome="done",
        actions_done=[{"type": "reply", "ok": True, "detail": f"{MARK} run detail"}],
    ),
    "alerts.Alert": lambda w: w.make(
        "alerts.Alert",
        kind="campaign.auto_paused",
        key=f"{MARK}-alert",
        detail={"campaign_id": w.get("campaigns.Campaign").pk, "name": f"{MARK} alert"},
        first_raised_at=timezone.now(),
        last_seen_at=timezone.now(),
    ),
    "reports.ReportSettings": lambda w: apps.get_model("reports.ReportSettings").objects.update_or_create(
        pk=1, defaults={"whatsapp_number": "+5511912340000", "whatsapp_channel": w.get("inbox.Channel")}
    )[0],
    "reports.ReportRun": lambda w: w.make(
        "reports.ReportRun",
        frequency="daily",
        period_start=timezone.now().date(),
        period_end=timezone.now().date(),
        medium="email",
        is_test=True,
        status="skipped",
        detail=f"{MARK} report run",
    ),
    # public schema, owned by B
    "accounts.Membership": lambda w: Membership.objects.get(user=w.owner, tenant=w.tenant),
    "accounts.Invitation": _invitation,
    "accounts.ApiToken": lambda w: api_token_create(user=w.owner, tenant=w.tenant, name=f"{MARK} token")[0],
    "tenants.UsageDay": lambda w: apps.get_model("tenants.UsageDay").objects.create(
        tenant=w.tenant, metric="messages.sms", day=datetime.date(2026, 1, 1), amount=1
    ),
    "tenants.LimitOverride": lambda w: apps.get_model("tenants.LimitOverride").objects.create(
        tenant=w.tenant, metric="messages.sms", limit=7, reason=f"{MARK} override"
    ),
    "accounts.AuditEntry": lambda w: AuditEntry.objects.create(
        tenant=w.tenant, actor=w.owner, action=AuditAction.EXPORT, target_label=f"{MARK} audit"
    ),
}


def _tenant_model_labels() -> list[str]:
    labels = []
    for app in settings.TENANT_APPS:
        config = next((c for c in apps.get_app_configs() if c.name == app), None)
        assert config is not None, app
        labels += [m._meta.label for m in config.get_models() if m._meta.label not in NOT_TENANT_DATA]
    return labels + PUBLIC_TENANT_MODELS


@dataclass
class Setup:
    alpha: Tenant
    beta: Tenant
    world: World
    owner_a: User
    token_a: str
    alpha_marker: str


@pytest.fixture(scope="module")
def setup(tenants: tuple[Tenant, Tenant], django_db_blocker: Any) -> Iterator[Setup]:
    """B's world and A's owner, made once for the module inside a transaction that is rolled back."""
    alpha, beta = tenants
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            tag = uuid.uuid4().hex[:8]
            owner_a = make_member(alpha, f"iso-owner-{tag}@alpha.test", Role.OWNER)
            owner_b = make_member(beta, f"iso-owner-{tag}@beta.test", Role.OWNER)
            _token, raw_a = api_token_create(user=owner_a, tenant=alpha, name="isolation")
            world = World(beta, owner_b)
            connection.set_tenant(beta)
            for label in _tenant_model_labels():
                if label in FACTORIES:
                    world.get(label)
            connection.set_tenant(alpha)
            alpha_marker = f"alphaseen{uuid.uuid4().hex[:8]}"
            apps.get_model("crm.Contact").objects.create(
                phone=f"+55119{random.randrange(10**8):08d}", name=alpha_marker
            )
            for label, obj in world.objects.items():
                model = apps.get_model(label)
                # Per-schema singletons (pk 1 in every schema) are never addressed by id in a URL.
                if label not in PUBLIC_TENANT_MODELS and label not in SINGLETONS:
                    assert not model.objects.filter(pk=obj.pk).exists(), f"{label} {obj.pk} exists in A too"
            connection.set_schema_to_public()
            yield Setup(alpha, beta, world, owner_a, raw_a, alpha_marker)
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            connection.set_tenant(beta)
            for label in ("inbox.Message", "crm.ContactImport"):
                made = world.objects.get(label)
                field = "media" if label == "inbox.Message" else "file"
                if made is not None and getattr(made, field):
                    getattr(made, field).delete(save=False)
            connection.set_schema_to_public()


@pytest.fixture
def iso(setup: Setup, django_db_blocker: Any) -> Iterator[Setup]:
    """Each test in a savepoint of the module's transaction."""
    with django_db_blocker.unblock():
        savepoint = transaction.atomic()
        savepoint.__enter__()
        try:
            yield setup
        finally:
            transaction.set_rollback(True)
            savepoint.__exit__(None, None, None)
            connection.set_schema_to_public()


# --- helpers ----------------------------------------------------------------------------------------

METHODS = ("get", "post", "put", "patch", "delete")
REFUSED = {400, 403, 404, 405}  # 400: the input was refused before any lookup


def _url(route: Route, world: World) -> str:
    kwargs: dict[str, Any] = {}
    for name, segment in route.kwargs:
        if name in ID_KWARGS:
            label = RESOURCES.get(segment)
            assert label, (
                f"{route}: cannot tell which model `{name}` after '{segment}/' names; add '{segment}' to RESOURCES "
                f"(and a factory for the model) in {__name__}"
            )
            kwargs[name] = world.get(label).pk
        else:
            assert name in OTHER_KWARGS, (
                f"{route}: no value for the kwarg `{name}`; add it to OTHER_KWARGS in {__name__}"
            )
            kwargs[name] = OTHER_KWARGS[name](world)
    assert route.name, f"{route}: give the route a name, so tests can reverse it"
    return reverse(route.name, kwargs=kwargs or None)


def _content(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else bytes(response.content)


def _call(client: Client, method: str, url: str) -> Any:
    return client.generic(method.upper(), url, data="{}", content_type="application/json")


def _snapshot(world: World, labels: list[str]) -> dict[str, Any]:
    connection.set_tenant(world.tenant)
    found = {}
    for label in labels:
        obj = world.get(label)
        found[label] = apps.get_model(label).objects.filter(pk=obj.pk).values().first()
    connection.set_schema_to_public()
    return found


def _clients(s: Setup, host_tenant: Tenant, api: bool) -> dict[str, Client]:
    clients = {"session": tenant_client(host_tenant, None)}
    clients["session"].force_login(s.owner_a, backend="django.contrib.auth.backends.ModelBackend")
    session = clients["session"].session
    session["tenant_schema"] = s.alpha.schema_name  # A's session, made on A
    session.save()
    if api:
        clients["token"] = Client(HTTP_HOST=f"{host_tenant.slug}.localhost", HTTP_AUTHORIZATION=f"Token {s.token_a}")
    return clients


ID_ROUTES = [r for r in ROUTES if _id_kwargs(r) or {"schema", "path"} <= set(dict(r.kwargs))]
LIST_ROUTES = [r for r in ROUTES if r not in ID_ROUTES]


# --- the tests ----------------------------------------------------------------------------------------


def test_every_tenant_model_has_a_factory() -> None:
    missing = [label for label in _tenant_model_labels() if label not in FACTORIES]
    assert not missing, f"add a factory to FACTORIES in {__name__} for: {', '.join(missing)}"


def test_every_route_is_collected() -> None:
    """The walk reaches the router and the includes (a broken walk would silently test nothing)."""
    names = {r.name for r in ROUTES}
    assert {"contact-detail", "card-move", "conversation_detail", "media_serve", "team_member_role"} <= names
    assert len(ID_ROUTES) > 40 and len(LIST_ROUTES) > 30


@pytest.mark.parametrize("route", ID_ROUTES, ids=str)
def test_a_cannot_reach_b_objects_by_id(iso: Setup, route: Route) -> None:
    url = _url(route, iso.world)
    labels = [RESOURCES[seg] for _k, seg in _id_kwargs(route)] or ["inbox.Message"]
    before = _snapshot(iso.world, labels)
    refused = []
    for who, client in _clients(iso, iso.alpha, api=route.is_api).items():
        # Pages take GET and POST; the API every method with the token, GET and POST with the session.
        methods = METHODS if who == "token" else ("get", "post")
        for method in methods:
            response = _call(client, method, url)
            assert response.status_code in REFUSED, f"{who} {method.upper()} {url} on A: {response.status_code}"
            assert MARK.encode() not in _content(response), f"{who} {method.upper()} {url} shows B's data"
            refused.append(response.status_code)
    assert set(refused) - {405}, f"{url}: only 405s, the view never ran"
    assert _snapshot(iso.world, labels) == before, f"{url}: B's object changed"


@pytest.mark.parametrize("route", LIST_ROUTES, ids=str)
def test_a_lists_never_show_b_objects(iso: Setup, route: Route) -> None:
    url = _url(route, iso.world)
    w = iso.world
    search = MARK[:-2]  # a prefix of B's names (the page may echo the query: B's full marker must not show)
    filters = (
        f"q={search}&search={search}&contact={w.get('crm.Contact').pk}&channel={w.get('inbox.Channel').pk}"
        f"&tag={w.get('crm.Tag').pk}&segment={w.get('crm.Segment').pk}&board={w.get('kanban.Board').pk}"
        f"&stage={w.get('kanban.Stage').pk}&cadence={w.get('campaigns.Cadence').pk}"
    )
    for who, client in _clients(iso, iso.alpha, api=route.is_api).items():
        for query in ("", filters):
            response = client.get(f"{url}?{query}" if query else url)
            assert response.status_code < 500, f"{who} GET {url}?{query}: {response.status_code}"
            body = _content(response)
            assert MARK.encode() not in body, f"{who} GET {url}?{query} shows B's data"
            assert B_PHONE.lstrip("+").encode() not in body, f"{who} GET {url}?{query} shows B's phone"


@pytest.mark.parametrize("path", ["/contacts/", "/api/v1/contacts/"])
def test_the_list_check_sees_a_own_data(iso: Setup, path: str) -> None:
    """Control for the test above: A's own marker shows on A's lists (searched for: the suite's committed
    contacts fill the first pages), so an absent B marker means something."""
    client = _clients(iso, iso.alpha, api=True)["token" if path.startswith("/api/") else "session"]
    assert iso.alpha_marker in client.get(f"{path}?q={iso.alpha_marker}").content.decode()


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_a_credentials_on_b_host_are_anonymous(iso: Setup, route: Route) -> None:
    """On B's host, with B's real ids, A's session and token get exactly what a stranger gets."""
    url = _url(route, iso.world)
    labels = [RESOURCES[seg] for _k, seg in _id_kwargs(route)]
    before = _snapshot(iso.world, labels)
    anonymous = Client(HTTP_HOST=f"{iso.beta.slug}.localhost")
    methods = ("get", "post") if labels else ("get",)
    for method in methods:
        expected = _call(anonymous, method, url).status_code
        for who, client in _clients(iso, iso.beta, api=route.is_api).items():
            response = _call(client, method, url)
            # what a stranger gets, or a refusal of the credentials themselves (a foreign token is a 401)
            assert response.status_code == expected or response.status_code in (401, 403), (
                f"A's {who} {method.upper()} {url} on B: {response.status_code}, a stranger gets {expected}"
            )
            if labels:
                assert MARK.encode() not in _content(response)
    assert _snapshot(iso.world, labels) == before, f"{url}: B's object changed"


def test_b_own_owner_reaches_the_objects_this_test_uses(iso: Setup) -> None:
    """Control: the ids are right. B's owner on B's host gets B's contact, card and media file."""
    w = iso.world
    client = tenant_client(iso.beta, w.owner)
    assert client.get(f"/contacts/{w.get('crm.Contact').pk}/").status_code == 200
    assert client.get(f"/cards/{w.get('kanban.Card').pk}/").status_code == 200
    media = client.get(f"/media/{iso.beta.schema_name}/{w.media_name}")
    assert media.status_code == 200 and MARK.encode() in b"".join(media.streaming_content)  # type: ignore[attr-defined]
    assert ApiToken.objects.filter(tenant=iso.beta, name=f"{MARK} token").exists()
