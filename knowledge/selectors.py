"""Reads of the knowledge app."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from knowledge.models import Document, DocumentKind, KnowledgeBase, QAPair


def knowledge_bases_list() -> QuerySet[KnowledgeBase]:
    return KnowledgeBase.objects.annotate(document_count=Count("documents")).order_by("name", "pk")


def documents_of(*, knowledge_base: KnowledgeBase) -> QuerySet[Document]:
    return Document.objects.filter(knowledge_base=knowledge_base)


def qa_pairs_of(*, knowledge_base: KnowledgeBase) -> QuerySet[QAPair]:
    """The pairs typed in the UI (imported CSV pairs stay with their file's document)."""
    return QAPair.objects.filter(document__knowledge_base=knowledge_base, document__kind=DocumentKind.QA)
