"""WhatsApp pages: a channel's templates (sync, create, approval status) and sending a template."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from core.roles import Action
from inbox.models import Channel, ChannelKind, ChannelStatus
from inbox.selectors import conversations_visible_to
from inbox.services import channel_create, message_send
from whatsapp.client import GraphError
from whatsapp.forms import QrPacingForm, TemplateCreateForm
from whatsapp.models import MessageTemplate, QrPacing
from whatsapp.selectors import qr_pacing_decide, templates_approved, templates_of
from whatsapp.services import pacing_resume, pacing_save, template_create, templates_sync
from whatsapp.signup import SessionInfo, embedded_signup_complete
from whatsapp.web import bus
from whatsapp.web.manager import qr_svg


def _cloud_channel(pk: int) -> Channel:
    channel = get_object_or_404(Channel, pk=pk)
    if channel.kind != ChannelKind.WHATSAPP_CLOUD:
        raise Http404
    return channel


@action_required(Action.TEMPLATE_VIEW, post=Action.TEMPLATE_MANAGE)
def template_list(request: HttpRequest, pk: int) -> HttpResponse:
    channel = _cloud_channel(pk)
    form = TemplateCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
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
@action_required(Action.TEMPLATE_MANAGE)
def template_sync(request: HttpRequest, pk: int) -> HttpResponse:
    channel = _cloud_channel(pk)
    try:
        count = templates_sync(channel=channel)
    except GraphError as exc:
        messages.error(request, _("Meta did not answer the sync: %(reason)s") % {"reason": exc.message})
    else:
        messages.success(request, _("%(count)s templates synced.") % {"count": count})
    return redirect("template_list", pk=pk)


@action_required(Action.CONVERSATION_REPLY)
def template_send(request: HttpRequest, pk: int) -> HttpResponse:
    """Send an approved template in a conversation: the way back in when the 24-hour window is closed."""
    visible = conversations_visible_to(user=request.user, role=request.membership.role)  # type: ignore[attr-defined]
    conversation = get_object_or_404(visible, pk=pk)
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


# --- WhatsApp Web (QR) ------------------------------------------------------------------------------


@require_POST
@action_required(Action.CHANNEL_MANAGE)
def qr_channel_new(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("name", "").strip() or _("WhatsApp (QR)")
    channel = channel_create(
        kind=ChannelKind.WHATSAPP_WEB, name=name, phone_number="", credentials={}, rate_limit_per_s=1
    )
    Channel.objects.filter(pk=channel.pk).update(status=ChannelStatus.PENDING)
    return redirect("qr_channel", pk=channel.pk)


@action_required(Action.CHANNEL_MANAGE)
def qr_channel(request: HttpRequest, pk: int) -> HttpResponse:
    """Connect a number by scanning a QR code (or a pairing code); the code refreshes and the page turns
    connected, live. Owners and admins only: whoever sees the code can link a phone to the workspace."""
    channel = get_object_or_404(Channel, pk=pk, kind=ChannelKind.WHATSAPP_WEB)
    key = bus.session_key(request.tenant.schema_name, channel.pk)  # type: ignore[attr-defined]
    notice = ""
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "rescan":
            Channel.objects.filter(pk=pk).update(status=ChannelStatus.PENDING, status_detail="")
        elif action == "logout":
            bus.command(key, "logout", wait_s=10)
        elif action == "pair":
            answer = bus.command(key, "pair", wait_s=15, phone=request.POST.get("phone", ""))
            notice = (
                _("Enter this code on the phone: %(code)s") % {"code": answer["code"]}
                if answer and "code" in answer
                else _("The WhatsApp session is not running yet. Try again in a few seconds.")
            )
        elif action == "demo_scan" and settings.WA_WEB_ENGINE == "fake":
            bus.command(key, "fake_scan", wait_s=10, phone=request.POST.get("phone") or "+5511955550000")
        if not notice:
            return redirect("qr_channel", pk=pk)
    channel.refresh_from_db()
    code = bus.latest_qr(key)
    context = {
        "channel": channel,
        "qr_svg": qr_svg(code) if code and channel.status == ChannelStatus.PENDING else "",
        "notice": notice,
        "demo": settings.WA_WEB_ENGINE == "fake",
        "usage": bus.usage(key),
    }
    return render(request, "whatsapp/qr.html", context)


@require_POST
@action_required(Action.CHANNEL_MANAGE)
def embedded_signup(request: HttpRequest) -> JsonResponse:
    """What the channels page relays from Meta's Embedded Signup window (code, event, ids): the channel is
    connected server side, or the tenant gets a message to act on."""
    data = request.POST
    session = SessionInfo(
        code=data.get("code", ""),
        event=data.get("event", ""),
        waba_id=data.get("waba_id", ""),
        phone_number_id=data.get("phone_number_id", ""),
        business_id=data.get("business_id", ""),
    )
    try:
        channel = embedded_signup_complete(session=session)
    except ValidationError as exc:
        return JsonResponse({"error": " ".join(exc.messages), "code": exc.code or ""}, status=400)
    messages.success(request, _("Channel %(name)s connected.") % {"name": channel.name})
    return JsonResponse({"ok": True, "channel": channel.pk, "redirect": reverse("channel_list")})


REASON_TEXT = {
    "ready": _lazy("Ready: the next message may go now."),
    "delay": _lazy("Waiting the random pause between messages."),
    "batch_pause": _lazy("Resting after a batch."),
    "daily_cap": _lazy("Today's limit is reached: sending resumes tomorrow."),
    "stop_failures": _lazy(
        "Stopped: too many of the last sends failed. Check the numbers and the message, then resume."
    ),
    "stop_unanswered": _lazy(
        "Stopped: almost nobody answered the last sends. Review the message and the audience, then resume."
    ),
}


@action_required(Action.CHANNEL_MANAGE)
def qr_pacing(request: HttpRequest, pk: int) -> HttpResponse:
    """A QR number's anti-ban pacing: the settings with their reasons, and what the policy says right now."""
    channel = get_object_or_404(Channel, pk=pk, kind=ChannelKind.WHATSAPP_WEB)
    instance = QrPacing.objects.filter(channel=channel).first() or QrPacing(channel=channel)
    form = QrPacingForm(request.POST or None, instance=instance)
    if request.method == "POST":
        if request.POST.get("action") == "resume":
            pacing_resume(channel=channel)
            messages.success(request, _("Sending resumed: the earlier sends are no longer judged."))
            return redirect("qr_pacing", pk=pk)
        if form.is_valid():
            try:
                pacing_save(channel=channel, **{name: form.cleaned_data[name] for name in form.Meta.fields})
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, _("Pacing saved."))
                return redirect("qr_pacing", pk=pk)
    decision = qr_pacing_decide(channel=channel)
    context = {
        "channel": channel,
        "form": form,
        "decision": decision,
        "reason": REASON_TEXT.get(decision.reason, decision.reason),
    }
    return render(request, "whatsapp/qr_pacing.html", context, status=400 if form.errors else 200)
