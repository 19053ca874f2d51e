"""Staff pages: channels, and conversations with a live message timeline."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from accounts.selectors import members_of
from core.contributions import (
    CHANNEL_CONNECT,
    CONTACT_PANEL,
    CONVERSATION_COMPOSER,
    CONVERSATION_PANEL,
    PageBlock,
    collect,
)
from core.roles import Action, permission_check
from crm.models import Tag
from crm.services import contact_get_or_create
from inbox.forms import (
    CannedResponseForm,
    CloudChannelForm,
    InboxSettingsForm,
    NewConversationForm,
    NoteForm,
    ReplyForm,
    TwilioChannelForm,
)
from inbox.models import CannedResponse, Channel, ChannelKind, Conversation, ConversationStatus, InboxSettings, Message
from inbox.providers import provider_class
from inbox.selectors import (
    channels_all,
    coexistence_summaries,
    conversation_rows_facts,
    conversation_timeline,
    conversations_page,
    conversations_visible_to,
    message_decorated,
)
from inbox.services import (
    channel_create,
    channel_delete,
    conversation_assign,
    conversation_assign_round_robin,
    conversation_mark_read,
    conversation_open,
    conversation_set_status,
    message_send,
    note_add,
    window_open,
)


def _channels_page(request: HttpRequest, status: int = 200, **forms: object) -> HttpResponse:
    """The channels page, with the ways other apps add to connect a number (and the headers they need)."""
    blocks: list[PageBlock] = collect(CHANNEL_CONNECT, request=request)
    context = _channels_context(**forms)
    context["connect_blocks"] = [
        mark_safe(block.html) for block in blocks
    ]  # rendered by the contributing app's templates
    response = render(request, "inbox/channels.html", context, status=status)
    csp: dict[str, list[str]] = {}
    for block in blocks:
        for directive, sources in block.csp.items():
            csp.setdefault(directive, []).extend(sources)
        if block.opener_policy:
            response["Cross-Origin-Opener-Policy"] = block.opener_policy
    if csp:
        response._csp_update = csp  # type: ignore[attr-defined]  # django-csp's per-response update
    return response


def _channels_context(**forms: object) -> dict[str, object]:
    channels = list(channels_all())
    coexistence = coexistence_summaries(channel_ids=[c.pk for c in channels])
    for channel in channels:
        channel.webhook_url = provider_class(channel.kind).webhook_url(channel)  # type: ignore[attr-defined]
        channel.coexistence_summary = coexistence.get(channel.pk)  # type: ignore[attr-defined]
    context: dict[str, object] = {
        "channels": channels,
        "cloud_form": CloudChannelForm(prefix="wa"),
        "sms_form": TwilioChannelForm(prefix="sms"),
        "webhook_base": settings.PUBLIC_WEBHOOK_BASE_URL,
    }
    context.update(forms)
    return context


@action_required(Action.CHANNEL_VIEW)
def channel_list(request: HttpRequest) -> HttpResponse:
    return _channels_page(request)


def _channel_connect(kind: str, data: dict[str, Any]) -> Channel:
    if kind == ChannelKind.WHATSAPP_CLOUD:
        credentials = {"access_token": data["access_token"]}
        if data.get("app_id"):  # the tenant's own Meta app instead of the platform's
            credentials.update(
                {"app_id": data["app_id"], "app_secret": data["app_secret"], "verify_token": data["verify_token"]}
            )
        return channel_create(
            kind=kind,
            name=data["name"],
            phone_number=data["phone_number"],
            credentials=credentials,
            waba_id=data["waba_id"],
            phone_number_id=data["phone_number_id"],
        )
    return channel_create(
        kind=kind,
        name=data["name"],
        phone_number=data["phone_number"],
        credentials={"account_sid": data["account_sid"], "auth_token": data["auth_token"]},
        rate_limit_per_s=10,
    )


@require_POST
@action_required(Action.CHANNEL_MANAGE)
def channel_add(request: HttpRequest, kind: str) -> HttpResponse:
    if kind == ChannelKind.WHATSAPP_CLOUD:
        form: CloudChannelForm | TwilioChannelForm = CloudChannelForm(request.POST, prefix="wa")
    elif kind == ChannelKind.SMS_TWILIO:
        form = TwilioChannelForm(request.POST, prefix="sms")
    else:
        return HttpResponse(status=404)
    if form.is_valid():
        data = form.cleaned_data
        try:
            channel = _channel_connect(kind, data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, _("Channel %(name)s connected.") % {"name": channel.name})
            return redirect("channel_list")
    key = "cloud_form" if kind == ChannelKind.WHATSAPP_CLOUD else "sms_form"
    return _channels_page(request, status=400, **{key: form})


@require_POST
@action_required(Action.CHANNEL_MANAGE)
def channel_remove(request: HttpRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(Channel, pk=pk)
    try:
        channel_delete(channel=channel)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, _("Channel removed."))
    return redirect("channel_list")


def _visible(request: HttpRequest) -> Any:
    return conversations_visible_to(user=request.user, role=request.membership.role)  # type: ignore[attr-defined]


def _htmx_partial(request: HttpRequest) -> bool:
    """An in-page swap (not a full page load, nor htmx restoring a page from history)."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


EMOJI = [
    "😀",
    "😂",
    "😊",
    "😍",
    "🙏",
    "👍",
    "👏",
    "🎉",
    "❤️",
    "🔥",
    "✅",
    "❌",
    "👋",
    "🤝",
    "😉",
    "😢",
    "😅",
    "🤔",
    "🙌",
    "💬",
    "📦",
    "🚚",
    "💰",
    "⏰",
    "📍",
    "📞",
    "✨",
    "🎁",
]
LIST_FILTERS = ("view", "status", "channel", "tag", "q")


def _list_context(request: HttpRequest, current: Conversation | None = None) -> dict[str, object]:
    """The list pane: one page of conversations (decorated for the rows) and the filters it was asked with.
    Raises ValueError for a cursor we did not make."""
    params = request.GET
    page, next_cursor = conversations_page(_visible(request), params, user=request.user)
    conversation_rows_facts(page)
    query = QueryDict(mutable=True)
    for key in LIST_FILTERS:
        if params.get(key):
            query[key] = params[key]
    return {
        "conversations": page,
        "next_cursor": next_cursor,
        "query": query.urlencode(),
        "params": params,
        "channels": channels_all(),
        "tags": Tag.objects.all(),
        "current_id": current.pk if current else None,
    }


@action_required(Action.CONVERSATION_VIEW, post=Action.CONVERSATION_REPLY)
def conversation_list(request: HttpRequest) -> HttpResponse:
    """The inbox: list, conversation and contact panes side by side (one at a time on a phone). Filters,
    debounced search, infinite scroll (cursor pages) and live reordering act on the list pane alone."""
    form = NewConversationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        contact = contact_get_or_create(phone=form.cleaned_data["phone"], name=form.cleaned_data["name"])
        conversation = conversation_open(contact=contact, channel=form.cleaned_data["channel"])
        return redirect("conversation_detail", pk=conversation.pk)
    try:
        context = _list_context(request)
    except ValueError:
        return HttpResponse(status=400)  # a cursor we did not make
    context["form"] = form
    if request.GET.get("cursor"):
        return render(request, "inbox/_conversation_rows.html", context)
    if _htmx_partial(request) and request.headers.get("HX-Target") == "conversation-list":
        return render(request, "inbox/_conversation_list.html", context)
    if _htmx_partial(request) and request.headers.get("HX-Target") == "pane":
        return render(request, "inbox/_pane_empty.html", context)
    return render(request, "inbox/inbox.html", context, status=400 if form.errors else 200)


def _detail_context(request: HttpRequest, conversation: Conversation, form: ReplyForm) -> dict[str, object]:
    caps = provider_class(conversation.channel.kind).capabilities
    timeline, has_older = conversation_timeline(conversation=conversation)
    contact = conversation.contact
    closes_at = None
    if caps.session_window_hours is not None and conversation.last_inbound_at is not None:
        closes_at = conversation.last_inbound_at + timedelta(hours=caps.session_window_hours)
    return {
        "conversation": conversation,
        "timeline": timeline,
        "has_older": has_older,
        "oldest_id": _oldest_id(timeline),
        "form": form,
        "note_form": NoteForm(),
        "window_open": window_open(conversation),
        "window_closes_at": closes_at,
        "supports_templates": caps.templates,
        "members": members_of(tenant=request.tenant),  # type: ignore[attr-defined]
        "canned": list(CannedResponse.objects.values("shortcut", "title", "body")),
        "contact_tags": contact.tags.all(),
        "other_conversations": _visible(request).filter(contact=contact).exclude(pk=conversation.pk),
        # the lead card (pipeline), the assistant's state with take over / give back (ai)
        "panels": collect(CONTACT_PANEL, contact=contact, request=request)
        + collect(CONVERSATION_PANEL, conversation=conversation, request=request),
        # tools under the composer (the AI copilot): they fill the draft, the agent sends
        "composer_tools": collect(CONVERSATION_COMPOSER, conversation=conversation, request=request),
        "list_query": _list_query(request),
        "emoji": EMOJI,
    }


def _oldest_id(timeline: list[Any]) -> int | None:
    return next((item.pk for item in timeline if not getattr(item, "is_event", False)), None)


def _list_query(request: HttpRequest) -> str:
    query = QueryDict(mutable=True)
    for key in LIST_FILTERS:
        if request.GET.get(key):
            query[key] = request.GET[key]
    return query.urlencode()


def _conversation_page(
    request: HttpRequest, conversation: Conversation, form: ReplyForm, status: int = 200
) -> HttpResponse:
    """The conversation and contact panes: alone for an in-page swap, else inside the whole inbox (a deep
    link, a reload, a form posted without JavaScript)."""
    context = _detail_context(request, conversation, form)
    if _htmx_partial(request):
        # an error is shown in the swapped pane (htmx does not swap 4xx answers)
        return render(request, "inbox/_pane.html", context)
    try:
        context.update(_list_context(request, current=conversation))
    except ValueError:
        return HttpResponse(status=400)
    return render(request, "inbox/inbox.html", context, status=status)


@action_required(Action.CONVERSATION_VIEW, post=Action.CONVERSATION_REPLY)
def conversation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = get_object_or_404(_visible(request), pk=pk)
    form = ReplyForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        attachment = form.cleaned_data.get("attachment")
        kind, extra = "text", {}
        if attachment is not None:
            mime = getattr(attachment, "content_type", "") or "application/octet-stream"
            head = mime.split("/")[0]
            kind = head if head in {"image", "audio", "video"} else "document"
            extra = {"media": attachment, "media_mime": mime, "media_filename": attachment.name}
        try:
            message_send(
                conversation=conversation, type=kind, body=form.cleaned_data["body"], author=request.user, **extra
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if _htmx_partial(request):
                conversation.refresh_from_db()
                return _conversation_page(request, conversation, ReplyForm())
            return redirect("conversation_detail", pk=pk)
    elif request.method == "GET" and conversation.unread_count:
        conversation_mark_read(conversation=conversation)
        conversation.unread_count = 0
    return _conversation_page(request, conversation, form, status=400 if form.errors else 200)


@action_required(Action.CONVERSATION_VIEW)
def conversation_older(request: HttpRequest, pk: int) -> HttpResponse:
    """Older messages, prepended when the agent scrolls up."""
    conversation = get_object_or_404(_visible(request), pk=pk)
    before = request.GET.get("before", "")
    timeline, has_older = conversation_timeline(
        conversation=conversation, before=int(before) if before.isdigit() else None
    )
    context = {"conversation": conversation, "timeline": timeline, "has_older": has_older}
    return render(request, "inbox/_older.html", {**context, "oldest_id": _oldest_id(timeline)})


@require_POST
@action_required(Action.CONVERSATION_VIEW)
def conversation_action(request: HttpRequest, pk: int) -> HttpResponse:
    """Assign (to someone, to me, round-robin), resolve, reopen, or add an internal note."""
    conversation = get_object_or_404(_visible(request), pk=pk)
    action = request.POST.get("action")
    permission_check(request.membership, Action.CONVERSATION_REPLY if action == "note" else Action.CONVERSATION_ASSIGN)  # type: ignore[attr-defined]
    notice = ""
    if action == "assign":
        member = members_of(tenant=request.tenant).filter(user_id=request.POST.get("assignee") or 0).first()  # type: ignore[attr-defined]
        conversation_assign(conversation=conversation, assignee=member.user if member else None, actor=request.user)
    elif action == "assign_me":
        conversation_assign(conversation=conversation, assignee=request.user, actor=request.user)
    elif action == "round_robin":
        chosen = conversation_assign_round_robin(conversation=conversation)
        notice = _("Assigned to %(name)s.") % {"name": chosen.get_full_name()} if chosen else _("Nobody is available.")
    elif action in (ConversationStatus.RESOLVED, ConversationStatus.OPEN, ConversationStatus.PENDING):
        conversation_set_status(conversation=conversation, status=action, actor=request.user)
    elif action == "note":
        note = NoteForm(request.POST)
        if note.is_valid():
            note_add(conversation=conversation, body=note.cleaned_data["note"], author=request.user)
    if _htmx_partial(request):
        conversation.refresh_from_db()
        response = _conversation_page(request, conversation, ReplyForm())
        if notice:
            response["HX-Trigger"] = json.dumps({"inbox:toast": notice})
        return response
    if notice:
        messages.info(request, notice)
    return redirect("conversation_detail", pk=pk)


@action_required(Action.CONVERSATION_VIEW)
def message_row(request: HttpRequest, pk: int, message_id: int) -> HttpResponse:
    """One message, rendered: what the live timeline swaps in when an event names it (for a reaction, the
    message it reacts to, with its reactions)."""
    conversation = get_object_or_404(_visible(request), pk=pk)
    message = get_object_or_404(Message, pk=message_id, conversation=conversation)
    return render(request, "inbox/_message.html", {"message": message_decorated(message=message)})


@action_required(Action.CONVERSATION_VIEW)
def event_row(request: HttpRequest, pk: int, event_id: int) -> HttpResponse:
    """One line of the timeline about the conversation (assigned, resolved, lead moved...), rendered: what
    the live timeline appends when an event names it."""
    from inbox.models import ConversationEvent

    conversation = get_object_or_404(_visible(request), pk=pk)
    event = get_object_or_404(ConversationEvent.objects.select_related("actor"), pk=event_id, conversation=conversation)
    return render(request, "inbox/_event.html", {"event": event})


@action_required(Action.SAVEDREPLY_VIEW, post=Action.SAVEDREPLY_MANAGE)
def canned_list(request: HttpRequest) -> HttpResponse:
    form = CannedResponseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        CannedResponse.objects.update_or_create(
            shortcut=form.cleaned_data["shortcut"],
            defaults={"title": form.cleaned_data["title"], "body": form.cleaned_data["body"]},
        )
        messages.success(request, _("Saved reply saved."))
        return redirect("canned_list")
    return render(
        request,
        "inbox/canned.html",
        {"canned": CannedResponse.objects.all(), "form": form},
        status=400 if form.errors else 200,
    )


@action_required(Action.INBOX_SETTINGS)
def inbox_settings(request: HttpRequest) -> HttpResponse:
    current = InboxSettings.current()
    form = InboxSettingsForm(
        request.POST or None, initial={"agents_see_all": current.agents_see_all, "auto_assign": current.auto_assign}
    )
    if request.method == "POST" and form.is_valid():
        InboxSettings.objects.filter(pk=current.pk).update(**form.cleaned_data)
        messages.success(request, _("Settings saved."))
        return redirect("inbox_settings")
    return render(request, "inbox/settings.html", {"form": form})
