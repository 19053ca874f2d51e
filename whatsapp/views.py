"""WhatsApp pages: a channel's templates (sync, create, approval status) and sending a template."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import manager_required, member_required
from inbox.models import Channel, ChannelKind, Conversation
from inbox.services import message_send
from whatsapp.client import GraphError
from whatsapp.forms import TemplateCreateForm
from whatsapp.models import MessageTemplate
from whatsapp.selectors import templates_approved, templates_of
from whatsapp.services import template_create, templates_sync


def _cloud_channel(pk: int) -> Channel:
    channel = get_object_or_404(Channel, pk=pk)
    if channel.kind != ChannelKind.WHATSAPP_CLOUD:
        raise Http404
    return channel


@member_required
def template_list(request: HttpRequest, pk: int) -> HttpResponse:
    channel = _cloud_channel(pk)
    form = TemplateCreateForm(request.POST or None)
    if request.method == "POST":
        if not request.membership.is_manager:  # type: ignore[attr-defined]
            return render(request, "403.html", status=403)
        if form.is_valid():
            data = form.cleaned_data
            try:
                template_create(
                    channel=channel,
                    name=data["name"],
                    category=data["category"],
                    language=data["language"],
                    body=data["body"],
                    header=data["header"],
                    footer=data["footer"],
                    quick_replies=data["quick_replies"],
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, _("Template submitted to Meta for review."))
                return redirect("template_list", pk=pk)
    context = {"channel": channel, "templates": templates_of(waba_id=channel.waba_id), "form": form}
    return render(request, "whatsapp/templates.html", context, status=400 if form.errors else 200)


@require_POST
@manager_required
def template_sync(request: HttpRequest, pk: int) -> HttpResponse:
    channel = _cloud_channel(pk)
    try:
        count = templates_sync(channel=channel)
    except GraphError as exc:
        messages.error(request, _("Meta did not answer the sync: %(reason)s") % {"reason": exc.message})
    else:
        messages.success(request, _("%(count)s templates synced.") % {"count": count})
    return redirect("template_list", pk=pk)


@member_required
def template_send(request: HttpRequest, pk: int) -> HttpResponse:
    """Send an approved template in a conversation: the way back in when the 24-hour window is closed."""
    conversation = get_object_or_404(Conversation.objects.select_related("channel", "contact"), pk=pk)
    if conversation.channel.kind != ChannelKind.WHATSAPP_CLOUD:
        raise Http404
    approved = templates_approved(waba_id=conversation.channel.waba_id)
    error = ""
    if request.method == "POST":
        template = get_object_or_404(
            MessageTemplate, pk=request.POST.get("template"), waba_id=conversation.channel.waba_id
        )
        variables = [request.POST.get(f"var{i}", "") for i in range(1, template.body_variable_count + 1)]
        try:
            message_send(
                conversation=conversation,
                type="template",
                template_name=template.name,
                template_language=template.language,
                template_variables={"body": variables},
                body=template.body_text,
                author=request.user,
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            return redirect("conversation_detail", pk=pk)
    contact = conversation.contact
    return render(
        request,
        "whatsapp/template_send.html",
        {"conversation": conversation, "templates": approved, "error": error, "suggested": contact.display_name},
    )
