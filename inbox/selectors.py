from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db.models import Count, F, Min, OuterRef, Q, QuerySet, Subquery

from core.realtime import Audience
from core.roles import PERMISSIONS, Action, role_allows
from inbox.models import (
    BusinessAppContact,
    Channel,
    Conversation,
    ConversationEvent,
    Direction,
    HistoryImport,
    InboxSettings,
    Message,
    MessageOrigin,
    MessageType,
)

PAGE = 30


def channels_all() -> QuerySet[Channel]:
    return Channel.objects.order_by("name")


def channel_identity_scope(channel: Channel) -> str:
    """Where a WhatsApp user id (BSUID) seen on this channel means one person: the Meta business
    portfolio of its WABA (learnt when the channel connects); for a channel connected before that was
    known, its WABA (narrower: never two people as one)."""
    if channel.business_portfolio_id:
        return channel.business_portfolio_id
    return f"waba:{channel.waba_id}" if channel.waba_id else f"channel:{channel.pk}"


def inbox_settings() -> InboxSettings:
    """The tenant's inbox rules, read without writing: the defaults, unsaved, until someone saves them."""
    return InboxSettings.objects.filter(pk=1).first() or InboxSettings(pk=1)


def agents_see_all() -> bool:
    return inbox_settings().agents_see_all


def conversations_visible(*, user: Any, is_manager: bool) -> QuerySet[Conversation]:
    """What this member may see: everything, or (if the tenant says so) agents see their own and unassigned."""
    qs = Conversation.objects.select_related("contact", "channel", "assignee")
    if is_manager or agents_see_all():
        return qs
    return qs.filter(Q(assignee=user) | Q(assignee=None))


def conversations_visible_to(*, user: Any, role: str | None) -> QuerySet[Conversation]:
    """conversations_visible for a member of this role (the role table says who sees everything)."""
    return conversations_visible(user=user, is_manager=role_allows(role, Action.CONVERSATION_VIEW_ALL))


def conversation_audience(*, conversation_id: int) -> Audience | None:
    """Who may get a live event about this conversation: everyone (None), or, when agents keep to their
    own, the roles that see everything and the assignee."""
    if agents_see_all():
        return None
    row = Conversation.objects.filter(pk=conversation_id).values("assignee_id").first()
    if row is not None and row["assignee_id"] is None:
        return None
    users = frozenset({row["assignee_id"]}) if row is not None else frozenset()
    return Audience(roles=PERMISSIONS[Action.CONVERSATION_VIEW_ALL], user_ids=users)


def conversation_audiences(*, conversation_ids: list[int]) -> dict[int, Audience | None]:
    """conversation_audience for many conversations: one read of the setting, one of the assignees."""
    if agents_see_all():
        return dict.fromkeys(conversation_ids)
    found = dict(Conversation.objects.filter(pk__in=set(conversation_ids)).values_list("pk", "assignee_id"))
    roles = PERMISSIONS[Action.CONVERSATION_VIEW_ALL]
    result: dict[int, Audience | None] = {}
    for pk in conversation_ids:
        if pk in found and found[pk] is None:
            result[pk] = None
        else:
            result[pk] = Audience(roles=roles, user_ids=frozenset({found[pk]}) if pk in found else frozenset())
    return result


def _word_query(text: str) -> SearchQuery | None:
    words = re.findall(r"\w+", text.lower())[:6]
    if not words:
        return None
    return SearchQuery(" & ".join(f"{w}:*" for w in words), config="simple", search_type="raw")


SEARCH_CAP = 5000  # more matches than this and the user should narrow the search


def _contacts_matching(text: str) -> list[int]:
    """Contacts by name, WhatsApp profile name or username, or phone digits: one bounded query of its
    own, so the inbox query stays on its recency index instead of probing contacts row by row."""
    from crm.models import Contact

    match = Q(name__icontains=text) | Q(wa_profile_name__icontains=text)
    if text.lstrip("@"):
        match |= Q(wa_username__icontains=text.lstrip("@"))
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) >= 4:
        match |= Q(phone__contains=digits)
    return list(Contact.objects.filter(match).values_list("pk", flat=True)[:SEARCH_CAP])


def _conversations_with_words(text: str) -> list[int]:
    """Conversations with a message containing every word (prefixes too), through the full-text index."""
    words = _word_query(text)
    if words is None:
        return []
    hits = (
        Message.objects.annotate(search=SearchVector("body", config="simple"))
        .filter(search=words)
        .values_list("conversation_id", flat=True)
        .distinct()
    )
    return list(hits[:SEARCH_CAP])


def conversations_search(
    base: QuerySet[Conversation],
    *,
    view: str = "all",
    user: Any = None,
    status: str = "",
    channel: str | int = "",
    tag: str | int = "",
    q: str = "",
    cursor: str = "",
    limit: int = PAGE,
) -> tuple[list[Conversation], str]:
    """One page of the inbox, newest activity first, and the cursor of the next page ("" at the end).
    Search matches the contact's name or phone, or words of any message of the conversation."""
    qs = base
    if view == "mine":
        qs = qs.filter(assignee=user)
    elif view == "unassigned":
        qs = qs.filter(assignee=None)
    if status:
        qs = qs.filter(status=status)
    if str(channel).isdigit():
        qs = qs.filter(channel_id=int(channel))
    if str(tag).isdigit():
        qs = qs.filter(contact__tags=int(tag))
    text = q.strip()
    if text:
        qs = qs.filter(Q(contact_id__in=_contacts_matching(text)) | Q(id__in=_conversations_with_words(text)))
    if cursor:
        when, last_id = cursor_decode(cursor)
        qs = qs.filter(Q(last_message_at__lt=when) | Q(last_message_at=when, id__lt=last_id))
    page = list(qs.order_by("-last_message_at", "-id")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return page, (cursor_encode(page[-1]) if more and page else "")


def conversations_page(
    base: QuerySet[Conversation], params: Any, *, user: Any, limit: int = PAGE
) -> tuple[list[Conversation], str]:
    """conversations_search driven by query parameters (the inbox page and the API share them).
    Raises ValueError for a cursor we did not make."""
    return conversations_search(
        base,
        view=params.get("view", "all"),
        user=user,
        status=params.get("status", ""),
        channel=params.get("channel", ""),
        tag=params.get("tag", ""),
        q=params.get("q", ""),
        cursor=params.get("cursor", ""),
        limit=limit,
    )


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cursor_encode(conversation: Conversation) -> str:
    """URL-safe and exact: microseconds since the epoch, and the id."""
    micros = (conversation.last_message_at - EPOCH) // timedelta(microseconds=1)
    return f"{micros}.{conversation.pk}"


def cursor_decode(cursor: str) -> tuple[datetime, int]:
    """Raises ValueError for a cursor we did not make."""
    micros, _, last_id = cursor.partition(".")
    return EPOCH + timedelta(microseconds=int(micros)), int(last_id)


def conversation_latest_of(*, contact_id: int) -> int | None:
    """The id of the contact's most recently active conversation (where its lead's moves are shown)."""
    return (
        Conversation.objects.filter(contact_id=contact_id)
        .order_by("-last_message_at", "-id")
        .values_list("pk", flat=True)
        .first()
    )


def conversation_timeline(
    *, conversation: Conversation, before: int | None = None, limit: int = 50
) -> tuple[list[Any], bool]:
    """conversation_messages as the conversation pane shows them: reactions folded onto the message they
    react to (`reactions`), the quoted message of a reply attached (`quoted`), and the conversation's
    events (assigned, resolved, handed off, stage moved) merged in time order within the page's span."""
    messages, has_older = conversation_messages(conversation=conversation, before=before, limit=limit)
    by_provider_id = {m.provider_message_id: m for m in messages if m.provider_message_id}
    shown: list[Any] = []
    for message in messages:
        message.reactions = []  # type: ignore[attr-defined]
        message.quoted = None  # type: ignore[attr-defined]
    for message in messages:
        if message.type == MessageType.REACTION:
            target = by_provider_id.get(str(message.payload.get("message_id", "")))
            if target is not None:
                if message.body:
                    target.reactions.append(message.body)  # type: ignore[attr-defined]
                continue
        shown.append(message)
    wanted = {m.reply_to_provider_id for m in messages if m.reply_to_provider_id} - by_provider_id.keys()
    quoted = dict(by_provider_id)
    if wanted:
        quoted.update(
            (str(m.provider_message_id), m)
            for m in Message.objects.filter(conversation=conversation, provider_message_id__in=wanted)
        )
    for message in shown:
        if message.reply_to_provider_id:
            message.quoted = quoted.get(message.reply_to_provider_id)  # type: ignore[attr-defined]
    events = ConversationEvent.objects.filter(conversation=conversation).select_related("actor")
    if has_older and messages:
        events = events.filter(created_at__gte=messages[0].created_at)
    if before and messages:
        events = events.filter(created_at__lt=_after_page(conversation, messages[-1]))
    elif before:
        return shown, has_older
    merged = sorted([*shown, *events[:200]], key=lambda item: item.created_at)
    return merged, has_older


def message_decorated(*, message: Message) -> Message:
    """One message as the timeline shows it (for a reaction: the message it reacts to), with `reactions`
    and `quoted` as conversation_timeline sets them."""
    if message.type == MessageType.REACTION:
        target = Message.objects.filter(
            conversation_id=message.conversation_id, provider_message_id=str(message.payload.get("message_id", ""))
        ).first()
        if target is not None:
            message = target
    message.reactions = (  # type: ignore[attr-defined]
        [
            body
            for body in Message.objects.filter(
                conversation_id=message.conversation_id,
                type=MessageType.REACTION,
                payload__message_id=message.provider_message_id,
            )
            .exclude(body="")
            .values_list("body", flat=True)
        ]
        if message.provider_message_id
        else []
    )
    message.quoted = (  # type: ignore[attr-defined]
        Message.objects.filter(
            conversation_id=message.conversation_id, provider_message_id=message.reply_to_provider_id
        ).first()
        if message.reply_to_provider_id
        else None
    )
    return message


def _after_page(conversation: Conversation, last: Message) -> datetime:
    """Where an older page ends: the time of the message after its last one."""
    following = (
        Message.objects.filter(conversation=conversation)
        .filter(Q(created_at__gt=last.created_at) | Q(created_at=last.created_at, id__gt=last.pk))
        .order_by("created_at", "id")
        .values_list("created_at", flat=True)
        .first()
    )
    return following or last.created_at


@dataclass
class RowFacts:
    """What the inbox list shows of a conversation beyond its own columns."""

    preview: str = ""
    preview_type: str = ""
    preview_direction: str = ""
    handled_by: str = ""  # "bot", "human" or ""
    waiting_since: datetime | None = None


def conversation_rows_facts(conversations: list[Conversation]) -> None:
    """Decorate one page of the inbox list (`facts`): the last message's preview, whether the assistant or
    a person handles it, and since when the customer waits for an answer. Three queries per page."""
    ids = [c.pk for c in conversations]
    facts = {pk: RowFacts() for pk in ids}
    if ids:
        shown = Message.objects.filter(conversation_id__in=ids).exclude(type=MessageType.REACTION)
        for row in (
            shown.exclude(direction=Direction.NOTE)
            .order_by("conversation_id", "-created_at", "-id")
            .distinct("conversation_id")
            .values("conversation_id", "body", "type", "direction")
        ):
            fact = facts[row["conversation_id"]]
            fact.preview, fact.preview_type, fact.preview_direction = row["body"][:120], row["type"], row["direction"]
        for out in (
            shown.filter(direction=Direction.OUTBOUND)
            .order_by("conversation_id", "-created_at", "-id")
            .distinct("conversation_id")
            .values("conversation_id", "author_id", "payload__sender")
        ):
            fact = facts[out["conversation_id"]]
            fact.handled_by = "bot" if out["payload__sender"] == "bot" else ("human" if out["author_id"] else "")
        waiting = [pk for pk, fact in facts.items() if fact.preview_direction == Direction.INBOUND]
        last_out = Subquery(
            Message.objects.filter(conversation=OuterRef("conversation_id"), direction=Direction.OUTBOUND)
            .order_by("-created_at")
            .values("created_at")[:1]
        )
        for wait in (
            Message.objects.filter(conversation_id__in=waiting, direction=Direction.INBOUND)
            .annotate(last_out=last_out)
            .filter(Q(last_out=None) | Q(created_at__gt=F("last_out")))
            .values("conversation_id")
            .annotate(since=Min("created_at"))
            .values("conversation_id", "since")
        ):
            facts[wait["conversation_id"]].waiting_since = wait["since"]
    for conversation in conversations:
        fact = facts[conversation.pk]
        if conversation.assignee_id:
            fact.handled_by = "human"
        conversation.facts = fact  # type: ignore[attr-defined]


def conversation_messages(
    *, conversation: Conversation, before: int | None = None, limit: int = 50
) -> tuple[list[Message], bool]:
    """The newest `limit` messages (before message id `before`), oldest first, and whether older ones exist.
    Paged by (created_at, id), the timeline's own order: history imported later has higher ids than the
    live messages it precedes."""
    qs = Message.objects.filter(conversation=conversation).select_related("author")
    if before:
        anchor = (
            Message.objects.filter(conversation=conversation, pk=before).values_list("created_at", flat=True).first()
        )
        if anchor is None:
            qs = qs.filter(id__lt=before)
        else:
            qs = qs.filter(Q(created_at__lt=anchor) | Q(created_at=anchor, id__lt=before))
    page = list(qs.order_by("-created_at", "-id")[: limit + 1])
    return list(reversed(page[:limit])), len(page) > limit


@dataclass(frozen=True)
class CoexistenceSummary:
    """What a channel's page shows of its WhatsApp Business app side (coexistence)."""

    history: HistoryImport | None
    history_messages: int
    echoes: int
    app_contacts: int
    app_contacts_removed: int


def coexistence_summaries(*, channel_ids: list[int]) -> dict[int, CoexistenceSummary]:
    """Per channel that has any coexistence data: the history import's state, how many messages came
    from history and from the phone, and the app's address book. Channels without any are left out."""
    imports = {row.channel_id: row for row in HistoryImport.objects.filter(channel_id__in=channel_ids)}
    counts: dict[tuple[int, str], int] = {
        (row["channel_id"], row["origin"]): row["n"]
        for row in Message.objects.filter(channel_id__in=channel_ids)
        .exclude(origin=MessageOrigin.PLATFORM)
        .values("channel_id", "origin")
        .annotate(n=Count("id"))
    }
    book = {
        row["channel_id"]: (row["n"], row["removed"])
        for row in BusinessAppContact.objects.filter(channel_id__in=channel_ids)
        .values("channel_id")
        .annotate(n=Count("id", filter=Q(removed_at=None)), removed=Count("id", filter=~Q(removed_at=None)))
    }
    found = {}
    for channel_id in channel_ids:
        history = counts.get((channel_id, MessageOrigin.HISTORY), 0)
        echoes = counts.get((channel_id, MessageOrigin.BUSINESS_APP), 0)
        in_book, removed = book.get(channel_id, (0, 0))
        if channel_id in imports or history or echoes or in_book or removed:
            found[channel_id] = CoexistenceSummary(imports.get(channel_id), history, echoes, in_book, removed)
    return found
