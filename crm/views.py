"""Contacts: a filtered, paginated table with bulk actions, and a contact's own page."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from core.contributions import (
    CONTACT_BULK,
    CONTACT_CONVERSATIONS,
    CONTACT_FILTERS,
    CONTACT_PANEL,
    CONTACT_TIMELINE,
    collect,
)
from core.roles import Action, permission_check, role_allows
from crm.api import csv_response, filter_spec
from crm.forms import ContactForm, CustomFieldForm
from crm.imports import import_configure, import_start
from crm.models import ContactImport, CustomField, ImportStatus, Segment, Tag
from crm.selectors import consent_summary, contact_identities, contacts_filter
from crm.services import (
    contact_erase,
    contact_merge,
    contact_update,
    contacts_delete,
    contacts_tag,
    contacts_untag,
    segment_save,
)

PAGE_SIZE = 50


def _filter_context(params: QueryDict) -> dict[str, Any]:
    return {
        "tags": Tag.objects.all(),
        "segments": Segment.objects.all(),
        "params": params,
        "selected_tags": [int(t) for t in params.getlist("tag") if t.isdigit()],
    }


@action_required(Action.CONTACT_VIEW)
def contact_list(request: HttpRequest) -> HttpResponse:
    contacts = contacts_filter(filter_spec(request.GET)).prefetch_related("tags")
    page = Paginator(contacts, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "query": query.urlencode(),
        **_filter_context(request.GET),
        "filter_controls": collect(CONTACT_FILTERS, params=request.GET),
        "bulk_actions": [b for b in collect(CONTACT_BULK) if role_allows(request.membership, Action(b.required))],  # type: ignore[attr-defined]
    }
    return render(request, "crm/contacts.html", context)


@action_required(Action.CONTACT_EXPORT)
def contact_export(request: HttpRequest) -> StreamingHttpResponse:
    return csv_response(contacts_filter(filter_spec(request.GET)))


@require_POST
@action_required(Action.CONTACT_EDIT)
def contact_bulk(request: HttpRequest) -> HttpResponse:
    """Tag, untag, delete, save as segment (or a contributed action such as starting a cadence) the
    selected contacts, or every contact matching the filter."""
    params = QueryDict(request.POST.get("filter", ""))
    contacts = contacts_filter(filter_spec(params))
    if request.POST.get("scope") != "all":
        contacts = contacts.filter(pk__in=[int(i) for i in request.POST.getlist("ids") if i.isdigit()])
    action = request.POST.get("action")
    membership = request.membership  # type: ignore[attr-defined]
    if action in ("tag", "untag"):
        name = request.POST.get("tag_name", "").strip()
        if not name:
            messages.error(request, _("Type a tag name."))
            return redirect(f"/contacts/?{params.urlencode()}")
        tag = Tag.objects.filter(name=name).first()
        if tag is None:
            permission_check(membership, Action.TAG_CREATE)
            tag = Tag.objects.create(name=name)
        count = (
            contacts_tag(contacts=contacts, tag=tag) if action == "tag" else contacts_untag(contacts=contacts, tag=tag)
        )
        messages.success(request, _("%(count)s contacts updated.") % {"count": count})
    elif action == "delete":
        permission_check(membership, Action.CONTACT_DELETE)
        messages.success(request, _("%(count)s contacts deleted.") % {"count": contacts_delete(contacts=contacts)})
    elif action == "segment":
        permission_check(membership, Action.SEGMENT_MANAGE)
        name = request.POST.get("segment_name", "").strip() or _("Segment")
        try:
            segment_save(segment=Segment.objects.filter(name=name).first(), name=name, filters=filter_spec(params))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, _("Segment %(name)s saved.") % {"name": name})
    else:  # an action another app adds (e.g. start a cadence)
        contributed = {bulk.key: bulk for bulk in collect(CONTACT_BULK)}
        if action in contributed:
            permission_check(membership, Action(contributed[action].required))
            try:
                done = contributed[action].run(contacts=contacts, data=request.POST, user=request.user)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(request, done)
    return redirect(f"/contacts/?{params.urlencode()}")


@action_required(Action.CONTACT_VIEW, post=Action.CONTACT_EDIT)
def contact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    contact = get_object_or_404(contacts_filter(), pk=pk)
    initial = {
        "phone": contact.phone,
        "name": contact.name,
        "email": contact.email,
        **{
            f"cf_{k}": ("true" if v is True else "false" if v is False else v) for k, v in contact.custom_fields.items()
        },
    }
    form = ContactForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            contact_update(
                contact=contact,
                name=form.cleaned_data["name"],
                email=form.cleaned_data["email"],
                custom_fields=form.custom_values(),
                tags=[int(t) for t in request.POST.getlist("tags")],
                **({"phone": form.cleaned_data["phone"]} if form.cleaned_data["phone"] else {}),
            )
        except ValidationError as exc:
            for key, errors in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
                field = key if key in ("phone", "name", "email") else f"cf_{key}"
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, _("Contact saved."))
            return redirect("contact_detail", pk=pk)
    # Messages, stage changes, campaigns, calls... each app adds its own, the inbox only what this member
    # may see.
    member = {"user": request.user, "role": request.membership.role}  # type: ignore[attr-defined]
    timeline: list[dict[str, Any]] = collect(CONTACT_TIMELINE, contact=contact, **member)
    timeline.sort(key=lambda entry: entry["when"], reverse=True)
    context = {
        "contact": contact,
        "form": form,
        "tags": Tag.objects.all(),
        "contact_tags": set(contact.tags.values_list("pk", flat=True)),
        "consent": consent_summary(contact),
        "identities": contact_identities(contact),
        "merges": contact.merges.all()[:20],  # type: ignore[attr-defined]
        "timeline": timeline[:100],
        "conversations": collect(CONTACT_CONVERSATIONS, contact=contact, **member),
        "panels": collect(CONTACT_PANEL, contact=contact, request=request),  # e.g. the pipeline's lead cards
    }
    return render(request, "crm/contact.html", context, status=400 if form.errors else 200)


@require_POST
@action_required(Action.CONTACT_ERASE)
def contact_erase_view(request: HttpRequest, pk: int) -> HttpResponse:
    contact_erase(contact=get_object_or_404(contacts_filter(), pk=pk))
    messages.success(request, _("Personal data erased."))
    return redirect("contact_list")


@require_POST
@action_required(Action.CONTACT_MERGE)
def contact_merge_view(request: HttpRequest, pk: int) -> HttpResponse:
    primary = get_object_or_404(contacts_filter(), pk=pk)
    phone_or_id = request.POST.get("duplicate", "").strip()
    duplicate = contacts_filter({"q": phone_or_id}).exclude(pk=pk).first() if phone_or_id else None
    if duplicate is None:
        messages.error(request, _("No other contact matches %(text)s.") % {"text": phone_or_id})
    else:
        contact_merge(
            primary=primary,
            duplicate=duplicate,
            user=request.user,
            role=request.membership.role,  # type: ignore[attr-defined]
        )
        messages.success(request, _("Contacts merged."))
    return redirect("contact_detail", pk=pk)


@action_required(Action.CUSTOMFIELD_MANAGE)
def custom_field_list(request: HttpRequest) -> HttpResponse:
    form = CustomFieldForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("Field created."))
        return redirect("custom_field_list")
    return render(
        request,
        "crm/fields.html",
        {"fields": CustomField.objects.all(), "form": form},
        status=400 if form.errors else 200,
    )


@action_required(Action.CONTACT_IMPORT)
def import_upload(request: HttpRequest) -> HttpResponse:
    error = ""
    upload = request.FILES.get("file") if request.method == "POST" else None
    if upload is not None and not isinstance(upload, list):
        try:
            started = import_start(file=upload, original_name=upload.name or "contacts.csv", created_by=request.user)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            return redirect("import_detail", pk=started.pk)
    return render(
        request,
        "crm/import_upload.html",
        {"error": error, "imports": ContactImport.objects.all()[:10]},
        status=400 if error else 200,
    )


@action_required(Action.CONTACT_IMPORT)
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    upload = get_object_or_404(ContactImport, pk=pk)
    error = ""
    if request.method == "POST" and upload.status == ImportStatus.MAPPING:
        mapping = {column: request.POST.get(f"map_{i}", "") for i, column in enumerate(upload.columns)}
        tag_ids = [int(t) for t in request.POST.getlist("tags") if t.isdigit()]
        try:
            import_configure(
                upload=upload, mapping=mapping, update_existing=request.POST.get("dedupe") != "skip", tag_ids=tag_ids
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            return redirect("import_detail", pk=pk)
    targets = [("", _("Ignore")), ("phone", _("Phone")), ("name", _("Name")), ("email", _("Email"))]
    targets += [
        ("wa_bsuid", _("WhatsApp user id (BSUID)")),
        ("wa_portfolio", _("WhatsApp business portfolio")),
        ("wa_username", _("WhatsApp username")),
    ]
    targets += [(f"cf:{f.key}", f.label) for f in CustomField.objects.all()]
    template = "crm/_import_progress.html" if request.headers.get("HX-Request") else "crm/import_detail.html"
    context = {
        "upload": upload,
        "targets": targets,
        "tags": Tag.objects.all(),
        "error": error,
        "columns": list(enumerate(upload.columns)),
    }
    return render(request, template, context, status=400 if error else 200)
