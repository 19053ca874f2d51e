"""Staff pages: channels, and conversations with a live message timeline."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import manager_required, member_required
from crm.services import contact_get_or_create
from inbox.forms import CloudChannelForm, NewConversationForm, ReplyForm, TwilioChannelForm
from inbox.models import Channel, ChannelKind, Conversation, Message
from inbox.providers import provider_class
from inbox.selectors import channels_all, conversation_messages, conversations_recent
from inbox.services import (
    channel_create,
    channel_delete,
    conversation_mark_read,
    conversation_open,
    message_send,
    window_open,
)


def _channels_context(**forms: object) -> dict[str, object]:
    context: dict[str, object] = {
        "channels": channels_all(),
        "cloud_form": CloudChannelForm(prefix="wa"),
        "sms_form": TwilioChannelForm(prefix="sms"),
        "webhook_base": settings.PUBLIC_WEBHOOK_BASE_URL,
    }
    context.update(forms)
    return context


@member_required
def channel_list(request: HttpRequest) -> HttpResponse:
    return render(request, "inbox/channels.html", _channels_context())


@require_POST
@manager_required
def channel_add(request: HttpRequest, kind: str) -> HttpResponse:
    if kind == ChannelKind.WHATSAPP_CLOUD:
        form: CloudChannelForm | TwilioChannelForm = CloudChannelForm(request.POST, prefix="wa")
    elif kind == ChannelKind.SMS_TWILIO:
        form = TwilioChannelForm(request.POST, prefix="sms")
    else:
        return HttpResponse(status=404)
    if form.is_valid():
        data = form.cleaned_data
        if kind == ChannelKind.WHATSAPP_CLOUD:
            channel = channel_create(
                kind=kind,
                name=data["name"],
                phone_number=data["phone_number"],
                credentials={"access_token": data["access_token"]},
                waba_id=data["waba_id"],
                phone_number_id=data["phone_number_id"],
            )
        else:
            channel = channel_create(
                kind=kind,
                name=data["name"],
                phone_number=data["phone_number"],
                credentials={"account_sid": data["account_sid"], "auth_token": data["auth_token"]},
                rate_limit_per_s=10,
            )
        messages.success(request, _("Channel %(name)s connected.") % {"name": channel.name})
        return redirect("channel_list")
    key = "cloud_form" if kind == ChannelKind.WHATSAPP_CLOUD else "sms_form"
    return render(request, "inbox/channels.html", _channels_context(**{key: form}), status=400)


@require_POST
@manager_required
def channel_remove(request: HttpRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(Channel, pk=pk)
    channel_delete(channel=channel)
    messages.success(request, _("Channel removed."))
    return redirect("channel_list")


@member_required
def conversation_list(request: HttpRequest) -> HttpResponse:
    form = NewConversationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        contact = contact_get_or_create(phone=form.cleaned_data["phone"], name=form.cleaned_data["name"])
        conversation = conversation_open(contact=contact, channel=form.cleaned_data["channel"])
        return redirect("conversation_detail", pk=conversation.pk)
    return render(
        request,
        "inbox/conversations.html",
        {"conversations": conversations_recent(), "form": form},
        status=400 if form.errors else 200,
    )


def _detail_context(conversation: Conversation, form: ReplyForm) -> dict[str, object]:
    caps = provider_class(conversation.channel.kind).capabilities
    return {
        "conversation": conversation,
        "timeline": conversation_messages(conversation=conversation),
        "form": form,
        "window_open": window_open(conversation),
        "supports_templates": caps.templates,
    }


@member_required
def conversation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = get_object_or_404(Conversation.objects.select_related("contact", "channel"), pk=pk)
    form = ReplyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            message_send(conversation=conversation, body=form.cleaned_data["body"], author=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("conversation_detail", pk=pk)
    elif request.method == "GET" and conversation.unread_count:
        conversation_mark_read(conversation=conversation)
    return render(
        request, "inbox/conversation.html", _detail_context(conversation, form), status=400 if form.errors else 200
    )


@member_required
def message_row(request: HttpRequest, pk: int, message_id: int) -> HttpResponse:
    """One message, rendered: what the live timeline swaps in when an event names it."""
    message = get_object_or_404(Message, pk=message_id, conversation_id=pk)
    return render(request, "inbox/_message.html", {"message": message})
