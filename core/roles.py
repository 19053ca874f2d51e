"""The role table: which roles may do what, in one place, for pages, API and services alike.

Every write and every sensitive read names an `Action`; `permission_check` is the one check, and
`accounts.decorators.action_required` (pages) and `accounts.permissions.RequiresAction` (API) are
built on it, so the two surfaces cannot drift. Roles are plain strings here (`accounts.models.Role`
holds the same values): core sits left of accounts and never imports it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from django.core.exceptions import PermissionDenied

OWNER = "owner"
ADMIN = "admin"
AGENT = "agent"
ROLES = (OWNER, ADMIN, AGENT)

EVERYONE = frozenset(ROLES)
MANAGERS = frozenset({OWNER, ADMIN})
OWNERS = frozenset({OWNER})


class Action(StrEnum):
    # workspace and team
    WORKSPACE_VIEW = "workspace.view"  # the home page, who am I
    TEAM_VIEW = "team.view"
    TOKEN_MANAGE = "token.manage"  # noqa: S105 (an action name): one's own API tokens
    MEDIA_VIEW = "media.view"
    MEMBER_INVITE = "member.invite"
    MEMBER_ROLE_CHANGE = "member.role_change"
    MEMBER_REMOVE = "member.remove"
    OWNER_MANAGE = "owner.manage"  # make someone owner, demote or remove an owner
    OWNERSHIP_TRANSFER = "ownership.transfer"
    SETTINGS_MANAGE = "settings.manage"
    AUDIT_VIEW = "audit.view"  # the audit log of sensitive actions
    USAGE_VIEW = "usage.view"  # the plan's limits and this month's use
    # contacts
    CONTACT_VIEW = "contact.view"
    CONTACT_EDIT = "contact.edit"
    CONTACT_MERGE = "contact.merge"
    CONTACT_DELETE = "contact.delete"
    CONTACT_ERASE = "contact.erase"
    CONTACT_EXPORT = "contact.export"
    CONTACT_IMPORT = "contact.import"
    TAG_CREATE = "tag.create"
    TAG_MANAGE = "tag.manage"
    SEGMENT_MANAGE = "segment.manage"
    CUSTOMFIELD_MANAGE = "customfield.manage"
    CUSTOMFIELD_DELETE = "customfield.delete"
    # inbox
    CONVERSATION_VIEW = "conversation.view"
    CONVERSATION_VIEW_ALL = "conversation.view_all"  # even others' when the inbox keeps agents to their own
    CONVERSATION_REPLY = "conversation.reply"  # send, template send, notes, start a conversation
    CONVERSATION_ASSIGN = "conversation.assign"  # assign and status
    SAVEDREPLY_VIEW = "savedreply.view"
    SAVEDREPLY_MANAGE = "savedreply.manage"
    INBOX_SETTINGS = "inbox.settings"
    CHANNEL_VIEW = "channel.view"
    CHANNEL_MANAGE = "channel.manage"  # connect, remove, QR session
    TEMPLATE_VIEW = "template.view"
    TEMPLATE_MANAGE = "template.manage"  # create, sync
    # pipeline
    PIPELINE_VIEW = "pipeline.view"
    PIPELINE_MANAGE = "pipeline.manage"  # boards and stages
    CARD_EDIT = "card.edit"
    # campaigns and cadences
    CAMPAIGN_VIEW = "campaign.view"
    CAMPAIGN_MANAGE = "campaign.manage"  # create, edit, delete, pause, cancel
    CAMPAIGN_LAUNCH = "campaign.launch"  # launch, resume
    CAMPAIGN_SETTINGS = "campaign.settings"  # quiet hours
    CADENCE_VIEW = "cadence.view"
    CADENCE_MANAGE = "cadence.manage"
    CADENCE_ENROLL = "cadence.enroll"  # named contacts
    CADENCE_ENROLL_AUDIENCE = "cadence.enroll_audience"  # everyone matching a filter
    ENROLLMENT_STOP = "enrollment.stop"
    ENROLLMENT_PAUSE = "enrollment.pause"  # pause or resume one contact's cadence
    CADENCE_PAUSE = "cadence.pause"  # pause or resume a whole cadence
    # voice
    CALL_VIEW = "call.view"
    CALL_START = "call.start"
    VOICEAGENT_VIEW = "voiceagent.view"
    VOICEAGENT_MANAGE = "voiceagent.manage"
    VOICE_SETTINGS = "voice.settings"
    VOICENUMBER_VIEW = "voicenumber.view"  # the voice numbers and their preflight
    VOICENUMBER_MANAGE = "voicenumber.manage"  # buy a number, set its webhooks, import it, test calls
    # integrations
    WEBHOOK_MANAGE = "webhook.manage"  # outgoing endpoints, their secrets and delivery log (customer data)
    RULE_VIEW = "rule.view"  # automation rules and their run log
    RULE_MANAGE = "rule.manage"  # create, edit, enable, delete, test-run
    # knowledge
    KNOWLEDGE_VIEW = "knowledge.view"  # knowledge bases, documents, Q&A pairs, search
    KNOWLEDGE_MANAGE = "knowledge.manage"  # create, upload, edit, delete, re-index
    # AI assistants
    AI_SETTINGS = "ai.settings"  # the model server, models, API key, prices
    ASSISTANT_VIEW = "assistant.view"
    ASSISTANT_MANAGE = "assistant.manage"  # create, edit, delete, bind, playground
    COPILOT_USE = "copilot.use"  # suggest, summarise, improve, translate in the composer
    FAQ_REVIEW = "faq.review"  # approve suggested FAQ pairs into a knowledge base, or dismiss them
    # analytics
    ANALYTICS_VIEW = "analytics.view"  # the dashboard's numbers, their API and CSV exports
    # alerts
    ALERT_VIEW = "alert.view"  # the bell, the alerts list and its API
    ALERT_MANAGE = "alert.manage"  # resolve (close by hand) or dismiss (out of the bell) an alert


PERMISSIONS: dict[Action, frozenset[str]] = {
    Action.WORKSPACE_VIEW: EVERYONE,
    Action.TEAM_VIEW: EVERYONE,
    Action.TOKEN_MANAGE: EVERYONE,
    Action.MEDIA_VIEW: EVERYONE,
    Action.MEMBER_INVITE: MANAGERS,
    Action.MEMBER_ROLE_CHANGE: MANAGERS,
    Action.MEMBER_REMOVE: MANAGERS,
    Action.OWNER_MANAGE: OWNERS,
    Action.OWNERSHIP_TRANSFER: OWNERS,
    Action.SETTINGS_MANAGE: MANAGERS,
    Action.AUDIT_VIEW: MANAGERS,
    Action.USAGE_VIEW: MANAGERS,
    Action.CONTACT_VIEW: EVERYONE,
    Action.CONTACT_EDIT: EVERYONE,
    Action.CONTACT_MERGE: EVERYONE,
    Action.CONTACT_DELETE: MANAGERS,
    Action.CONTACT_ERASE: MANAGERS,
    Action.CONTACT_EXPORT: MANAGERS,
    Action.CONTACT_IMPORT: MANAGERS,
    Action.TAG_CREATE: EVERYONE,
    Action.TAG_MANAGE: MANAGERS,
    Action.SEGMENT_MANAGE: MANAGERS,
    Action.CUSTOMFIELD_MANAGE: MANAGERS,
    Action.CUSTOMFIELD_DELETE: MANAGERS,
    Action.CONVERSATION_VIEW: EVERYONE,
    Action.CONVERSATION_VIEW_ALL: MANAGERS,
    Action.CONVERSATION_REPLY: EVERYONE,
    Action.CONVERSATION_ASSIGN: EVERYONE,
    Action.SAVEDREPLY_VIEW: EVERYONE,
    Action.SAVEDREPLY_MANAGE: MANAGERS,
    Action.INBOX_SETTINGS: MANAGERS,
    Action.CHANNEL_VIEW: EVERYONE,
    Action.CHANNEL_MANAGE: MANAGERS,
    Action.TEMPLATE_VIEW: EVERYONE,
    Action.TEMPLATE_MANAGE: MANAGERS,
    Action.PIPELINE_VIEW: EVERYONE,
    Action.PIPELINE_MANAGE: MANAGERS,
    Action.CARD_EDIT: EVERYONE,
    Action.CAMPAIGN_VIEW: EVERYONE,
    Action.CAMPAIGN_MANAGE: MANAGERS,
    Action.CAMPAIGN_LAUNCH: MANAGERS,
    Action.CAMPAIGN_SETTINGS: MANAGERS,
    Action.CADENCE_VIEW: EVERYONE,
    Action.CADENCE_MANAGE: MANAGERS,
    Action.CADENCE_ENROLL: EVERYONE,
    Action.CADENCE_ENROLL_AUDIENCE: MANAGERS,
    Action.ENROLLMENT_STOP: EVERYONE,
    Action.ENROLLMENT_PAUSE: EVERYONE,
    Action.CADENCE_PAUSE: MANAGERS,
    Action.CALL_VIEW: EVERYONE,
    Action.CALL_START: EVERYONE,
    Action.VOICEAGENT_VIEW: EVERYONE,
    Action.VOICEAGENT_MANAGE: MANAGERS,
    Action.VOICE_SETTINGS: MANAGERS,
    Action.VOICENUMBER_VIEW: EVERYONE,
    Action.VOICENUMBER_MANAGE: MANAGERS,
    Action.WEBHOOK_MANAGE: MANAGERS,
    Action.RULE_VIEW: EVERYONE,
    Action.RULE_MANAGE: MANAGERS,
    Action.KNOWLEDGE_VIEW: EVERYONE,
    Action.KNOWLEDGE_MANAGE: MANAGERS,
    Action.AI_SETTINGS: MANAGERS,
    Action.ASSISTANT_VIEW: EVERYONE,
    Action.ASSISTANT_MANAGE: MANAGERS,
    Action.COPILOT_USE: EVERYONE,
    Action.FAQ_REVIEW: MANAGERS,
    Action.ANALYTICS_VIEW: MANAGERS,
    Action.ALERT_VIEW: EVERYONE,
    Action.ALERT_MANAGE: MANAGERS,
}


class HasRole(Protocol):
    role: str


def _role_of(actor: str | HasRole | None) -> str | None:
    if actor is None or isinstance(actor, str):
        return actor
    return str(getattr(actor, "role", "")) or None


def role_allows(actor: str | HasRole | None, action: Action) -> bool:
    """Whether this role (or membership) may do `action`. An action missing from the table is refused."""
    role = _role_of(actor)
    return role is not None and role in PERMISSIONS.get(action, frozenset())


def permission_check(actor: str | HasRole | None, action: Action) -> None:
    """The one check. `actor` is a role string or anything with a `.role` (a Membership); None is a
    non-member. Raises PermissionDenied."""
    if not role_allows(actor, action):
        raise PermissionDenied(f"{_role_of(actor) or 'non-member'} may not {action}")
