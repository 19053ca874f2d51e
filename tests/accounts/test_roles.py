"""The role table (core.roles), walked over HTTP: every action, as each role, on pages and the API.

Each action has its exercises below (method, URL, payload, on the page or the API). A role the table
allows must get past the permission layer (no 403/404, no 500: a 400 for a deliberately incomplete form
still proves the door opened without calling out); a role it refuses gets 403. An action with no
exercise fails the walk, and so does a page or endpoint that names no action, so table, pages and API
cannot drift apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.models import Membership, Role, User
from accounts.services import api_token_create
from analytics.api import REPORTS as ANALYTICS_REPORTS
from automations.models import Rule
from automations.services import rule_save
from campaigns.models import Cadence, Campaign, Enrollment
from campaigns.services import cadence_enroll, cadence_save, campaign_save
from core.roles import PERMISSIONS, ROLES, Action, role_allows
from crm.imports import import_start
from crm.models import Contact, CustomField, Tag
from crm.services import contact_get_or_create
from inbox.models import Channel, Conversation, InboxSettings
from inbox.services import conversation_assign
from kanban.models import Board, Card, Stage
from kanban.services import board_create, card_create
from tenants.models import Tenant
from tests.conftest import tenant_client
from tests.messaging import open_conversation

pytestmark = pytest.mark.django_db


@dataclass
class World:
    """One of everything an exercise needs, in tenant alpha, rolled back after the test."""

    tenant: Tenant
    users: dict[str, User]
    owner2: Membership  # a second owner: what only owners may demote or remove
    target: Membership  # an agent whose role others change, whom they remove or hand ownership to
    contact: Contact
    duplicate: Contact
    conversation: Conversation
    hidden: Conversation  # assigned to someone else, with agents kept to their own
    tag: Tag
    custom_field: CustomField
    board: Board
    stages: list[Stage]
    card: Card
    campaign: Campaign
    cadence: Cadence
    enrollment: Enrollment
    media_url: str
    channels: dict[str, int]
    rule: Rule


@dataclass(frozen=True)
class Exercise:
    surface: str  # "page" or "api"
    method: str
    url: Callable[[World], str]
    data: Callable[[World], dict[str, Any]] = field(default=lambda w: {})
    setup: Callable[[World], None] | None = None
    refused: int = 403  # what a role the table refuses gets: 404 where even existence is hidden

    def __str__(self) -> str:
        return f"{self.surface}:{self.method}"


def page(
    method: str, url: Callable[[World], str], data: Callable[[World], dict[str, Any]] | None = None, **kw: Any
) -> Exercise:
    return Exercise("page", method, url, data or (lambda w: {}), **kw)


def api(
    method: str, url: Callable[[World], str], data: Callable[[World], dict[str, Any]] | None = None, **kw: Any
) -> Exercise:
    return Exercise("api", method, url, data or (lambda w: {}), **kw)


def _voice_agent() -> Any:
    from voice.models import VoiceAgent

    return VoiceAgent.objects.get_or_create(name="Roles agent", defaults={"prompt": "p"})[0]


def _voice_number() -> Any:
    from voice.models import VoiceNumber

    return VoiceNumber.objects.get_or_create(e164="+5511930009999")[0]


def _agents_keep_to_their_own(w: World) -> None:
    InboxSettings.objects.update_or_create(pk=1, defaults={"agents_see_all": False})


def _alert(w: World) -> Any:
    from alerts.services import alert_raise

    alert, _opened = alert_raise(kind="channel.needs_rescan", key=uuid.uuid4().hex[:8], detail={"name": "Loja"})
    return alert


def _faq_suggestion(w: World) -> Any:
    from ai.models import FaqSuggestion

    return FaqSuggestion.objects.create(
        conversation=w.conversation, through_message_id=uuid.uuid4().int % 10**9, question="q?", answer="a"
    )


EXERCISES: dict[Action, list[Exercise]] = {
    Action.WORKSPACE_VIEW: [page("get", lambda w: "/"), api("get", lambda w: "/api/v1/me/")],
    Action.TEAM_VIEW: [page("get", lambda w: "/team/"), api("get", lambda w: "/api/v1/members/")],
    Action.TOKEN_MANAGE: [
        page("post", lambda w: "/settings/api-tokens/", lambda w: {"name": "ci"}),
        api("post", lambda w: "/api/v1/tokens/", lambda w: {"name": "ci"}),
    ],
    Action.MEDIA_VIEW: [page("get", lambda w: w.media_url)],
    Action.MEMBER_INVITE: [
        page("post", lambda w: "/team/", lambda w: {"email": f"new-{uuid.uuid4().hex[:6]}@alpha.test", "role": "agent"})
    ],
    Action.MEMBER_ROLE_CHANGE: [
        page("post", lambda w: f"/team/members/{w.target.pk}/role/", lambda w: {"role": "admin"}),
        api("patch", lambda w: f"/api/v1/members/{w.target.pk}/", lambda w: {"role": "admin"}),
    ],
    Action.MEMBER_REMOVE: [
        page("post", lambda w: f"/team/members/{w.target.pk}/remove/"),
        api("delete", lambda w: f"/api/v1/members/{w.target.pk}/"),
    ],
    Action.OWNER_MANAGE: [
        page(
            "post", lambda w: "/team/", lambda w: {"email": f"boss-{uuid.uuid4().hex[:6]}@alpha.test", "role": "owner"}
        ),
        page("post", lambda w: f"/team/members/{w.owner2.pk}/role/", lambda w: {"role": "agent"}),
        api("patch", lambda w: f"/api/v1/members/{w.target.pk}/", lambda w: {"role": "owner"}),
        api("delete", lambda w: f"/api/v1/members/{w.owner2.pk}/"),
    ],
    Action.OWNERSHIP_TRANSFER: [
        page("post", lambda w: "/team/ownership/", lambda w: {"member": w.target.pk}),
        api("post", lambda w: f"/api/v1/members/{w.target.pk}/transfer-ownership/"),
    ],
    Action.SETTINGS_MANAGE: [page("get", lambda w: "/settings/")],
    Action.AUDIT_VIEW: [page("get", lambda w: "/settings/audit/"), api("get", lambda w: "/api/v1/audit/")],
    Action.USAGE_VIEW: [page("get", lambda w: "/settings/usage/")],
    Action.CONTACT_VIEW: [
        page("get", lambda w: f"/contacts/{w.contact.pk}/"),
        api("get", lambda w: f"/api/v1/contacts/{w.contact.pk}/"),
    ],
    Action.CONTACT_EDIT: [
        page("post", lambda w: f"/contacts/{w.contact.pk}/", lambda w: {"name": "Nome novo", "email": ""}),
        api("patch", lambda w: f"/api/v1/contacts/{w.contact.pk}/", lambda w: {"name": "Nome novo"}),
    ],
    Action.CONTACT_MERGE: [
        page("post", lambda w: f"/contacts/{w.contact.pk}/merge/", lambda w: {"duplicate": w.duplicate.phone}),
        api("post", lambda w: f"/api/v1/contacts/{w.contact.pk}/merge/", lambda w: {"duplicate": w.duplicate.pk}),
    ],
    Action.CONTACT_DELETE: [
        page("post", lambda w: "/contacts/bulk/", lambda w: {"action": "delete", "ids": [w.duplicate.pk]}),
        api("delete", lambda w: f"/api/v1/contacts/{w.duplicate.pk}/"),
    ],
    Action.CONTACT_ERASE: [
        page("post", lambda w: f"/contacts/{w.contact.pk}/erase/"),
        api("post", lambda w: f"/api/v1/contacts/{w.contact.pk}/erase/"),
    ],
    Action.CONTACT_EXPORT: [
        page("get", lambda w: "/contacts/export/"),
        api("get", lambda w: "/api/v1/contacts/export/"),
    ],
    Action.CONTACT_IMPORT: [page("get", lambda w: "/contacts/import/")],
    Action.TAG_CREATE: [
        page(
            "post", lambda w: "/contacts/bulk/", lambda w: {"action": "tag", "tag_name": "novo", "ids": [w.contact.pk]}
        ),
        api("post", lambda w: "/api/v1/tags/", lambda w: {"name": "novo"}),
    ],
    Action.TAG_MANAGE: [api("delete", lambda w: f"/api/v1/tags/{w.tag.pk}/")],
    Action.SEGMENT_MANAGE: [
        page("post", lambda w: "/contacts/bulk/", lambda w: {"action": "segment", "segment_name": "S", "ids": []}),
        api("post", lambda w: "/api/v1/segments/", lambda w: {"name": "S", "filters": {}}),
    ],
    Action.CUSTOMFIELD_MANAGE: [
        page("post", lambda w: "/contacts/fields/", lambda w: {"key": "cidade", "label": "Cidade", "kind": "text"}),
        api("post", lambda w: "/api/v1/custom-fields/", lambda w: {"key": "cidade", "label": "Cidade", "kind": "text"}),
    ],
    Action.CUSTOMFIELD_DELETE: [api("delete", lambda w: f"/api/v1/custom-fields/{w.custom_field.pk}/")],
    Action.CONVERSATION_VIEW: [
        page("get", lambda w: f"/conversations/{w.conversation.pk}/"),
        api("get", lambda w: f"/api/v1/conversations/{w.conversation.pk}/messages/"),
    ],
    Action.CONVERSATION_VIEW_ALL: [
        page("get", lambda w: f"/conversations/{w.hidden.pk}/", setup=_agents_keep_to_their_own, refused=404),
        page("get", lambda w: f"/conversations/{w.hidden.pk}/template/", setup=_agents_keep_to_their_own, refused=404),
        api(
            "get",
            lambda w: f"/api/v1/conversations/{w.hidden.pk}/messages/",
            setup=_agents_keep_to_their_own,
            refused=404,
        ),
    ],
    Action.CONVERSATION_REPLY: [
        page(
            "post", lambda w: f"/conversations/{w.conversation.pk}/action/", lambda w: {"action": "note", "note": "oi"}
        ),
        api("post", lambda w: f"/api/v1/conversations/{w.conversation.pk}/notes/", lambda w: {"body": "oi"}),
    ],
    Action.CONVERSATION_ASSIGN: [
        page("post", lambda w: f"/conversations/{w.conversation.pk}/action/", lambda w: {"action": "resolved"}),
        api("post", lambda w: f"/api/v1/conversations/{w.conversation.pk}/status/", lambda w: {"status": "resolved"}),
    ],
    Action.SAVEDREPLY_VIEW: [page("get", lambda w: "/inbox/replies/"), api("get", lambda w: "/api/v1/saved-replies/")],
    Action.SAVEDREPLY_MANAGE: [
        page("post", lambda w: "/inbox/replies/", lambda w: {"shortcut": "oi", "title": "Oi", "body": "Olá!"}),
        api("post", lambda w: "/api/v1/saved-replies/", lambda w: {"shortcut": "oi", "title": "Oi", "body": "Olá!"}),
    ],
    Action.INBOX_SETTINGS: [page("get", lambda w: "/inbox/settings/")],
    Action.CHANNEL_VIEW: [page("get", lambda w: "/channels/")],
    Action.CHANNEL_MANAGE: [
        page("post", lambda w: "/channels/add/whatsapp_cloud/"),  # an empty form: refused with 400, nothing called
        page("post", lambda w: "/channels/whatsapp/signup/"),  # Embedded Signup with nothing relayed: 400
        page("post", lambda w: f"/channels/{w.channels['sms']}/remove/"),
    ],
    Action.TEMPLATE_VIEW: [page("get", lambda w: f"/channels/{w.channels['whatsapp']}/templates/")],
    Action.TEMPLATE_MANAGE: [page("post", lambda w: f"/channels/{w.channels['whatsapp']}/templates/")],
    Action.PIPELINE_VIEW: [
        page("get", lambda w: f"/boards/{w.board.pk}/"),
        api("get", lambda w: "/api/v1/boards/"),
        api("get", lambda w: "/api/v1/lead-suggestions/"),
    ],
    Action.PIPELINE_MANAGE: [
        page("post", lambda w: f"/boards/{w.board.pk}/stages/", lambda w: {"name": "Nova", "kind": "open"}),
        api("post", lambda w: "/api/v1/stages/", lambda w: {"board": w.board.pk, "name": "Nova", "kind": "open"}),
        page("get", lambda w: "/ai/lead-progression/"),
    ],
    Action.CARD_EDIT: [
        page("post", lambda w: f"/cards/{w.card.pk}/move/", lambda w: {"stage": w.stages[1].pk}),
        api("patch", lambda w: f"/api/v1/cards/{w.card.pk}/", lambda w: {"title": "Padaria 2"}),
    ],
    Action.CAMPAIGN_VIEW: [page("get", lambda w: "/campaigns/"), api("get", lambda w: "/api/v1/campaigns/")],
    Action.CAMPAIGN_MANAGE: [
        page("get", lambda w: f"/campaigns/{w.campaign.pk}/edit/"),
        api("patch", lambda w: f"/api/v1/campaigns/{w.campaign.pk}/", lambda w: {"name": "Outra"}),
        page("post", lambda w: f"/campaigns/{w.campaign.pk}/duplicate/"),
        api("post", lambda w: f"/api/v1/campaigns/{w.campaign.pk}/duplicate/"),
    ],
    Action.CAMPAIGN_LAUNCH: [
        page("post", lambda w: f"/campaigns/{w.campaign.pk}/launch/"),
        api("post", lambda w: f"/api/v1/campaigns/{w.campaign.pk}/launch/"),
    ],
    Action.CAMPAIGN_SETTINGS: [page("get", lambda w: "/campaigns/quiet-hours/")],
    Action.CADENCE_VIEW: [page("get", lambda w: "/cadences/"), api("get", lambda w: "/api/v1/cadences/")],
    Action.CADENCE_MANAGE: [
        page("get", lambda w: f"/cadences/{w.cadence.pk}/edit/"),
        api("patch", lambda w: f"/api/v1/cadences/{w.cadence.pk}/", lambda w: {"name": "Outra"}),
    ],
    Action.CADENCE_ENROLL: [
        page("post", lambda w: f"/contacts/{w.duplicate.pk}/cadence/", lambda w: {"cadence": w.cadence.pk}),
        api("post", lambda w: f"/api/v1/cadences/{w.cadence.pk}/enroll/", lambda w: {"contacts": [w.duplicate.pk]}),
    ],
    Action.CADENCE_ENROLL_AUDIENCE: [
        page(
            "post",
            lambda w: "/contacts/bulk/",
            lambda w: {"action": "cadence_start", "cadence": w.cadence.pk, "scope": "all", "filter": ""},
        ),
        api("post", lambda w: f"/api/v1/cadences/{w.cadence.pk}/enroll/", lambda w: {"filter": {}}),
        api(
            "post",
            lambda w: f"/api/v1/cadences/{w.cadence.pk}/enroll/",
            lambda w: {"contacts": [w.contact.pk, w.duplicate.pk]},
        ),
    ],
    Action.ENROLLMENT_PAUSE: [
        page("post", lambda w: f"/cadences/enrollments/{w.enrollment.pk}/pause/"),
        api("post", lambda w: f"/api/v1/enrollments/{w.enrollment.pk}/resume/"),
    ],
    Action.ENROLLMENT_STOP: [
        page("post", lambda w: f"/cadences/enrollments/{w.enrollment.pk}/stop/"),
        api("post", lambda w: f"/api/v1/enrollments/{w.enrollment.pk}/stop/"),
    ],
    Action.CADENCE_PAUSE: [
        page("post", lambda w: f"/cadences/{w.cadence.pk}/pause/"),
        api("post", lambda w: f"/api/v1/cadences/{w.cadence.pk}/resume/"),
    ],
    Action.CALL_VIEW: [page("get", lambda w: "/calls/"), api("get", lambda w: "/api/v1/calls/")],
    Action.ANALYTICS_VIEW: [
        page("get", lambda w: "/analytics/export/summary.csv"),
        *(api("get", lambda w, r=report: f"/api/v1/analytics/{r}/") for report in ANALYTICS_REPORTS),
    ],
    Action.CALL_START: [
        page("post", lambda w: "/calls/start/", lambda w: {"contact": w.contact.pk}),  # no agent: refused, no call
        api("post", lambda w: "/api/v1/calls/", lambda w: {"contact_id": w.contact.pk}),
    ],
    Action.VOICEAGENT_VIEW: [page("get", lambda w: "/voice/agents/"), api("get", lambda w: "/api/v1/voice-agents/")],
    Action.VOICEAGENT_MANAGE: [
        page("get", lambda w: "/voice/agents/new/"),
        api("post", lambda w: "/api/v1/voice-agents/", lambda w: {}),  # invalid: 400 before any Retell call
        # no Retell key in this world: the sync is refused with a reason (400 / a message), never a 403
        page("post", lambda w: f"/voice/agents/{_voice_agent().pk}/sync/"),
        api("post", lambda w: f"/api/v1/voice-agents/{_voice_agent().pk}/sync/"),
        api("get", lambda w: f"/api/v1/voice-agents/{_voice_agent().pk}/drift/"),
    ],
    Action.VOICE_SETTINGS: [page("get", lambda w: "/voice/settings/")],
    Action.VOICENUMBER_VIEW: [
        page("get", lambda w: "/voice/numbers/"),
        page("get", lambda w: f"/voice/numbers/{_voice_number().pk}/"),  # the preflight, all red here
        api("get", lambda w: "/api/v1/voice-numbers/"),
        api("get", lambda w: f"/api/v1/voice-numbers/{_voice_number().pk}/preflight/"),
    ],
    Action.VOICENUMBER_MANAGE: [
        page("post", lambda w: "/voice/numbers/buy/", lambda w: {"phone_number": "+551140028922"}),  # no Twilio
        page("post", lambda w: f"/voice/numbers/{_voice_number().pk}/assign/", lambda w: {"agent": ""}),
        page("post", lambda w: f"/voice/numbers/{_voice_number().pk}/test-call/"),
    ],
    Action.WEBHOOK_MANAGE: [
        page("get", lambda w: "/settings/webhooks/"),
        api("get", lambda w: "/api/v1/webhook-endpoints/"),
        api("get", lambda w: "/api/v1/webhook-deliveries/"),
        page("get", lambda w: "/settings/webhooks/inbound/"),
    ],
    Action.RULE_VIEW: [
        page("get", lambda w: "/automations/"),
        page("get", lambda w: "/automations/runs/"),
        page("get", lambda w: f"/automations/{w.rule.pk}/"),
        api("get", lambda w: "/api/v1/rules/"),
        api("get", lambda w: "/api/v1/rule-runs/"),
    ],
    Action.RULE_MANAGE: [
        page("get", lambda w: "/automations/new/"),
        page("post", lambda w: f"/automations/{w.rule.pk}/", lambda w: {"name": ""}),  # invalid: 400, nothing saved
        page("post", lambda w: f"/automations/{w.rule.pk}/test/", lambda w: {"contact": w.contact.pk}),
        page("post", lambda w: f"/automations/{w.rule.pk}/toggle/", lambda w: {"enabled": "0"}),
        page("post", lambda w: f"/automations/{w.rule.pk}/delete/"),
        api("post", lambda w: "/api/v1/rules/", lambda w: {}),  # invalid: 400 past the door
        api("post", lambda w: f"/api/v1/rules/{w.rule.pk}/test/", lambda w: {"contact_id": w.contact.pk}),
        api("delete", lambda w: f"/api/v1/rules/{w.rule.pk}/"),
    ],
    Action.KNOWLEDGE_VIEW: [page("get", lambda w: "/knowledge/"), api("get", lambda w: "/api/v1/knowledge-bases/")],
    Action.KNOWLEDGE_MANAGE: [
        page("post", lambda w: "/knowledge/", lambda w: {"name": ""}),  # invalid: the page again, nothing made
        api("post", lambda w: "/api/v1/knowledge-bases/", lambda w: {}),  # invalid: 400
    ],
    Action.AI_SETTINGS: [page("get", lambda w: "/ai/settings/")],
    Action.ASSISTANT_VIEW: [page("get", lambda w: "/ai/assistants/"), api("get", lambda w: "/api/v1/assistants/")],
    Action.ASSISTANT_MANAGE: [
        page("get", lambda w: "/ai/assistants/new/"),
        api("post", lambda w: "/api/v1/assistants/", lambda w: {}),  # invalid (no name): 400 past the door
        page("get", lambda w: "/ai/tools/"),
        api("get", lambda w: "/api/v1/ai-tools/"),
        api("post", lambda w: "/api/v1/ai-tools/", lambda w: {}),  # invalid: 400 past the door
    ],
    Action.ALERT_VIEW: [page("get", lambda w: "/alerts/"), api("get", lambda w: "/api/v1/alerts/")],
    Action.ALERT_MANAGE: [
        page("post", lambda w: f"/alerts/{_alert(w).pk}/resolve/"),
        page("post", lambda w: f"/alerts/{_alert(w).pk}/dismiss/"),
        api("post", lambda w: f"/api/v1/alerts/{_alert(w).pk}/resolve/"),
        api("post", lambda w: f"/api/v1/alerts/{_alert(w).pk}/dismiss/"),
    ],
    # no key and no assistant: the copilot answers 400 with what to do, past the door
    Action.COPILOT_USE: [
        page("post", lambda w: f"/conversations/{w.conversation.pk}/copilot/summarize/"),
        api("post", lambda w: f"/api/v1/conversations/{w.conversation.pk}/copilot/", lambda w: {"task": "summarize"}),
    ],
    Action.FAQ_REVIEW: [
        page("get", lambda w: "/ai/faq-suggestions/"),
        page("post", lambda w: f"/ai/faq-suggestions/{_faq_suggestion(w).pk}/", lambda w: {"action": "dismiss"}),
        api("get", lambda w: "/api/v1/faq-suggestions/"),
        api("post", lambda w: f"/api/v1/faq-suggestions/{_faq_suggestion(w).pk}/dismiss/"),
    ],
}


def _member(tenant: Tenant, email: str, role: str) -> User:
    """A member without a password (the clients log in directly): hashing one is most of a test's time."""
    user = User.objects.create_user(email=email, password=None, name=email.split("@")[0])
    Membership.objects.create(user=user, tenant=tenant, role=role)
    return user


@pytest.fixture
def world(in_tenant_a: Tenant, channels: dict[str, int]) -> World:
    tenant = in_tenant_a
    tag = uuid.uuid4().hex[:8]
    users = {role: _member(tenant, f"{role}-{tag}@alpha.test", role) for role in ROLES}
    owner2_user = _member(tenant, f"owner2-{tag}@alpha.test", Role.OWNER)
    target_user = _member(tenant, f"target-{tag}@alpha.test", Role.AGENT)
    contact = contact_get_or_create(phone="+5511976540001", name="Bia Souza")
    duplicate = contact_get_or_create(phone="+5511976540002", name="Bia (SMS)")
    conversation = open_conversation(channels["whatsapp"], contact.phone)
    hidden = open_conversation(channels["whatsapp"], "+5511976540003")
    conversation_assign(conversation=hidden, assignee=target_user)
    vip = Tag.objects.create(name=f"vip-{tag}")
    contact.tags.add(vip)
    board = board_create(name="Vendas")
    stages = list(board.stages.order_by("rank"))
    sms = Channel.objects.get(pk=channels["sms"])
    cadence = cadence_save(
        name="Boas-vindas",
        channel=sms,
        respect_quiet_hours=False,
        steps=[{"delay_minutes": 0, "kind": "text", "body": "Oi"}],
    )
    cadence_enroll(cadence=cadence, contacts=Contact.objects.filter(pk=contact.pk), enrolled_by=users[Role.OWNER])
    stored = default_storage.save(f"probe/{tag}.txt", ContentFile(b"hi"))
    return World(
        tenant=tenant,
        users=users,
        owner2=Membership.objects.get(user=owner2_user, tenant=tenant),
        target=Membership.objects.get(user=target_user, tenant=tenant),
        contact=contact,
        duplicate=duplicate,
        conversation=conversation,
        hidden=hidden,
        tag=vip,
        custom_field=CustomField.objects.create(key=f"f{tag}", label="Campo", kind="text"),
        board=board,
        stages=stages,
        card=card_create(board=board, stage=stages[0], title="Padaria"),
        campaign=campaign_save(
            name="Promo", channel=sms, audience={"tags": [vip.pk]}, kind="text", body="Oi!", respect_quiet_hours=False
        ),
        cadence=cadence,
        enrollment=Enrollment.objects.get(cadence=cadence, contact=contact),
        media_url=default_storage.url(stored),
        channels=channels,
        rule=rule_save(
            name="Quente",
            trigger="tag_added",
            trigger_config={"tag_id": vip.pk},
            actions=[{"type": "assign_round_robin"}],
        ),
    )


def _client(w: World, role: str, surface: str) -> Client:
    if surface == "page":
        return tenant_client(w.tenant, w.users[role])
    _token, raw = api_token_create(user=w.users[role], tenant=w.tenant, name=f"roles-{role}")
    return Client(HTTP_HOST=f"{w.tenant.slug}.localhost", HTTP_AUTHORIZATION=f"Token {raw}")


def _cases() -> Iterator[Any]:
    for action, exercises in EXERCISES.items():
        for index, exercise in enumerate(exercises):
            yield pytest.param(action, exercise, id=f"{action}-{exercise}-{index}")


@pytest.mark.parametrize(("action", "exercise"), list(_cases()))
def test_each_role_gets_what_the_table_says(world: World, action: Action, exercise: Exercise) -> None:
    outcomes = {}
    for role in ROLES:
        with transaction.atomic():  # each role starts from the same world
            client = _client(world, role, exercise.surface)
            if exercise.setup:
                exercise.setup(world)
            kwargs: dict[str, Any] = {}
            data = exercise.data(world)
            if exercise.surface == "api" and exercise.method != "get":
                kwargs["content_type"] = "application/json"
            response = getattr(client, exercise.method)(exercise.url(world), data, **kwargs)
            outcomes[role] = response.status_code
            transaction.set_rollback(True)
        connection.set_tenant(world.tenant)
    for role, status in outcomes.items():
        if role_allows(role, action):
            assert status not in (401, 403, 404) and status < 500, f"{role} refused {action}: {outcomes}"
        else:
            assert status == exercise.refused, f"{role} was let {action}: {outcomes}"


def test_every_action_in_the_table_is_exercised_over_http() -> None:
    assert set(PERMISSIONS) == set(Action), "an action without roles"
    missing = [a for a in Action if not EXERCISES.get(a)]
    assert not missing, f"actions with no HTTP exercise: {missing}"


# Pages anyone may open (sign-in and its hand-offs, PWA files, health): everything else names an action.
PUBLIC_VIEWS = {
    "login_view",
    "logout_view",
    "handoff_finish",
    "social_start",
    "invite_accept",
    "PasswordResetView",
    "PasswordResetDoneView",
    "PasswordResetConfirmView",
    "PasswordResetCompleteView",
    "set_language",
    "health",
    "live",
    "manifest",
    "service_worker",
    "offline",
    "SpectacularAPIView",
    "SpectacularSwaggerView",
    "SpectacularSwaggerSplitView",
    "APIRootView",
    "inbound_receive",  # another system's POST: authenticated by the hook's signature, not by a member
}


def _patterns(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def _named_actions() -> dict[str, set[str]]:
    """The actions pages and endpoints name (what the view checks inside is not seen here)."""
    named: dict[str, set[str]] = {"page": set(), "api": set()}
    for _route, callback in _patterns(get_resolver("config.urls_tenant")):
        view_class = getattr(callback, "cls", None)
        if view_class is not None:
            named["api"].update(getattr(view_class, "required_actions", {}).values())
        else:
            named["page"].update(getattr(callback, "required_actions", ()))
    return named


def test_every_surface_that_names_an_action_is_exercised_on_it() -> None:
    exercised = {
        surface: {a for a, xs in EXERCISES.items() for x in xs if x.surface == surface} for surface in ("page", "api")
    }
    for surface, actions in _named_actions().items():
        missing = sorted(str(a) for a in actions - exercised[surface])
        assert not missing, f"named by a {surface} but not exercised there: {missing}"


def test_every_page_and_endpoint_names_its_action() -> None:
    unnamed = []
    for route, callback in _patterns(get_resolver("config.urls_tenant")):
        view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        name = view_class.__name__ if view_class else callback.__name__
        if name in PUBLIC_VIEWS:
            continue
        actions = getattr(callback, "actions", None)  # a DRF viewset route: {method: viewset action}
        if actions:
            mapping = getattr(view_class, "required_actions", {})
            unnamed += [f"{route} {m} -> {a}" for m, a in actions.items() if a not in mapping]
        elif view_class is not None and hasattr(view_class, "required_actions"):
            methods = [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)]
            unnamed += [f"{route} {m}" for m in methods if m not in view_class.required_actions]
        elif not getattr(callback, "required_actions", None):
            unnamed.append(route)
    assert not unnamed, f"pages or endpoints outside the role table: {unnamed}"


def test_an_admin_cannot_crown_themselves_or_remove_the_founder_and_an_owner_hands_over(world: World) -> None:
    admin = Membership.objects.get(user=world.users[Role.ADMIN], tenant=world.tenant)
    founder = Membership.objects.get(user=world.users[Role.OWNER], tenant=world.tenant)
    admin_api = _client(world, Role.ADMIN, "api")
    crowned = admin_api.patch(f"/api/v1/members/{admin.pk}/", {"role": "owner"}, content_type="application/json")
    assert crowned.status_code == 403
    assert admin_api.delete(f"/api/v1/members/{founder.pk}/").status_code == 403
    admin_page = _client(world, Role.ADMIN, "page")
    assert admin_page.post(f"/team/members/{admin.pk}/role/", {"role": "owner"}).status_code == 403
    assert admin_page.post(f"/team/members/{founder.pk}/remove/").status_code == 403
    assert admin_page.post("/team/ownership/", {"member": admin.pk}).status_code == 403
    admin.refresh_from_db()
    founder.refresh_from_db()
    assert (admin.role, founder.role) == (Role.ADMIN, Role.OWNER)
    # The team page offers the hand-over to the owner only.
    assert "Transfer ownership" not in admin_page.get("/team/").content.decode()
    owner_page = tenant_client(world.tenant, world.users[Role.OWNER], lang="en")
    assert "Transfer ownership" in owner_page.get("/team/").content.decode()
    assert owner_page.post("/team/ownership/", {"member": admin.pk}).status_code == 302
    admin.refresh_from_db()
    founder.refresh_from_db()
    assert (admin.role, founder.role) == (Role.OWNER, Role.ADMIN)
    # The new owner may now do what only owners do, the old one may not any more.
    assert _client(world, Role.OWNER, "api").delete(f"/api/v1/members/{world.owner2.pk}/").status_code == 403
    assert admin_api.delete(f"/api/v1/members/{world.owner2.pk}/").status_code == 204


def test_pages_offer_only_what_the_role_allows_and_import_files_stay_with_importers(world: World) -> None:
    agent = tenant_client(world.tenant, world.users[Role.AGENT], lang="en")
    owner = tenant_client(world.tenant, world.users[Role.OWNER], lang="en")
    agent_page, owner_page = agent.get("/contacts/").content.decode(), owner.get("/contacts/").content.decode()
    for control in ("Export CSV", 'href="/contacts/import/"', 'value="delete"', "Save filter as segment"):
        assert control in owner_page and control not in agent_page
    board_agent = agent.get(f"/boards/{world.board.pk}/").content.decode()
    add_stage = f'action="/boards/{world.board.pk}/stages/"'
    assert add_stage not in board_agent and "Delete stage" not in board_agent
    assert add_stage in owner.get(f"/boards/{world.board.pk}/").content.decode()
    # An uploaded contact list is the whole base: the file goes to those who may import, not to every member.
    upload = import_start(
        file=ContentFile(b"nome,telefone\nAna,+5511999990000\n"),
        original_name="base.csv",
        created_by=world.users[Role.OWNER],
    )
    url = upload.file.url
    assert agent.get(url).status_code == 404
    assert b"Ana" in b"".join(owner.get(url).streaming_content)
