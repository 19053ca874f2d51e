"""Knowledge pages: the list of bases, one base (documents with live status, uploads, pasted text, a web
page, Q&A pairs) and a search box that runs the assistants' retrieval."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.decorators import action_required
from core.roles import Action
from knowledge import services
from knowledge.models import Document, DocumentKind, DocumentStatus, KnowledgeBase, QAPair
from knowledge.selectors import documents_of, knowledge_bases_list, qa_pairs_of


def _errors(request: HttpRequest, exc: ValidationError) -> None:
    messages.error(request, " ".join(exc.messages))


@action_required(Action.KNOWLEDGE_VIEW, post=Action.KNOWLEDGE_MANAGE)
def knowledge_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            kb = services.knowledge_base_create(
                name=request.POST.get("name", ""), description=request.POST.get("description", "")
            )
        except ValidationError as exc:
            _errors(request, exc)
        else:
            messages.success(request, _("Knowledge base created."))
            return redirect("knowledge_detail", pk=kb.pk)
    return render(request, "knowledge/list.html", {"knowledge_bases": knowledge_bases_list()})


def _documents_context(kb: KnowledgeBase) -> dict[str, object]:
    documents = list(documents_of(knowledge_base=kb))
    busy = any(d.status in (DocumentStatus.PENDING, DocumentStatus.INDEXING) for d in documents)
    return {"kb": kb, "documents": documents, "busy": busy}


@action_required(Action.KNOWLEDGE_VIEW, post=Action.KNOWLEDGE_MANAGE)
def knowledge_detail(request: HttpRequest, pk: int) -> HttpResponse:
    kb = get_object_or_404(KnowledgeBase, pk=pk)
    if request.method == "POST":
        try:
            if request.POST.get("delete"):
                services.knowledge_base_delete(knowledge_base=kb)
                messages.success(request, _("Knowledge base deleted."))
                return redirect("knowledge_list")
            services.knowledge_base_update(
                knowledge_base=kb, name=request.POST.get("name", ""), description=request.POST.get("description", "")
            )
        except ValidationError as exc:
            _errors(request, exc)
        return redirect("knowledge_detail", pk=kb.pk)
    context = {
        **_documents_context(kb),
        "pairs": qa_pairs_of(knowledge_base=kb),
        "max_mb": settings.KNOWLEDGE_UPLOAD_MAX_BYTES // (1024 * 1024),
    }
    return render(request, "knowledge/detail.html", context)


@action_required(Action.KNOWLEDGE_VIEW)
def knowledge_documents(request: HttpRequest, pk: int) -> HttpResponse:
    """The documents table alone: htmx polls it while something is indexing."""
    kb = get_object_or_404(KnowledgeBase, pk=pk)
    return render(request, "knowledge/_documents.html", _documents_context(kb))


@require_POST
@action_required(Action.KNOWLEDGE_MANAGE)
def knowledge_document_add(request: HttpRequest, pk: int) -> HttpResponse:
    kb = get_object_or_404(KnowledgeBase, pk=pk)
    try:
        files = request.FILES.getlist("files")
        if files:
            for upload in files:
                services.document_add_file(
                    knowledge_base=kb,
                    filename=upload.name or "",
                    data=upload.read(settings.KNOWLEDGE_UPLOAD_MAX_BYTES + 1),
                )
        elif request.POST.get("url"):
            services.document_add_url(knowledge_base=kb, url=request.POST["url"])
        elif request.POST.get("text"):
            services.document_add_text(
                knowledge_base=kb,
                name=request.POST.get("name", ""),
                text=request.POST["text"],
                markdown=bool(request.POST.get("markdown")),
            )
        else:
            raise ValidationError(_("Choose a file, type a web page address or paste some text."))
    except ValidationError as exc:
        _errors(request, exc)
    else:
        messages.success(request, _("Added: it is being indexed."))
    return redirect("knowledge_detail", pk=kb.pk)


@action_required(Action.KNOWLEDGE_VIEW, post=Action.KNOWLEDGE_MANAGE)
def knowledge_document_detail(request: HttpRequest, pk: int) -> HttpResponse:
    document = get_object_or_404(Document.objects.select_related("knowledge_base"), pk=pk)
    if request.method == "POST":
        try:
            if request.POST.get("delete"):
                services.document_delete(document=document)
                messages.success(request, _("Document deleted."))
                return redirect("knowledge_detail", pk=document.knowledge_base_id)
            if request.POST.get("reindex"):
                services.document_index_enqueue(document)
                messages.success(request, _("Re-indexing."))
            else:
                services.document_update_text(
                    document=document, text=request.POST.get("text", ""), name=request.POST.get("name", "")
                )
                messages.success(request, _("Saved: it is being indexed again."))
        except ValidationError as exc:
            _errors(request, exc)
        return redirect("knowledge_document_detail", pk=document.pk)
    chunks = document.chunks.filter(version=document.indexed_version).only("position", "text")[:200]
    return render(request, "knowledge/document.html", {"document": document, "chunks": chunks})


@require_POST
@action_required(Action.KNOWLEDGE_MANAGE)
def knowledge_qa_add(request: HttpRequest, pk: int) -> HttpResponse:
    kb = get_object_or_404(KnowledgeBase, pk=pk)
    try:
        services.qa_pair_create(
            knowledge_base=kb, question=request.POST.get("question", ""), answer=request.POST.get("answer", "")
        )
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("knowledge_detail", pk=kb.pk)


@require_POST
@action_required(Action.KNOWLEDGE_MANAGE)
def knowledge_qa_edit(request: HttpRequest, pk: int) -> HttpResponse:
    pair = get_object_or_404(QAPair.objects.select_related("document"), pk=pk, document__kind=DocumentKind.QA)
    try:
        if request.POST.get("delete"):
            services.qa_pair_delete(pair=pair)
        else:
            services.qa_pair_update(
                pair=pair, question=request.POST.get("question", ""), answer=request.POST.get("answer", "")
            )
    except ValidationError as exc:
        _errors(request, exc)
    return redirect("knowledge_detail", pk=pair.document.knowledge_base_id)


@action_required(Action.KNOWLEDGE_VIEW)
def knowledge_search(request: HttpRequest, pk: int) -> HttpResponse:
    kb = get_object_or_404(KnowledgeBase, pk=pk)
    query = request.GET.get("q", "").strip()[:2000]
    passages = services.retrieve(query=query, knowledge_base_ids=[kb.pk], k=10) if query else []
    template = "knowledge/_results.html" if request.headers.get("HX-Request") else "knowledge/search.html"
    return render(request, template, {"kb": kb, "query": query, "passages": passages})
