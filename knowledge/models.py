"""Knowledge bases, their documents (a file, a web page, pasted text or question/answer pairs) and the
chunks retrieval searches: each chunk's embedding with the model name and dimension it came from, and a
full-text vector in the Portuguese and English configurations (accents folded)."""

from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.utils.translation import gettext_lazy as _
from pgvector.django import VectorField


class KnowledgeBase(models.Model):
    name = models.CharField(_("name"), max_length=120)
    description = models.TextField(_("description"), blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]
        verbose_name = _("knowledge base")
        verbose_name_plural = _("knowledge bases")

    def __str__(self) -> str:
        return self.name


class DocumentKind(models.TextChoices):
    TEXT = "text", _("Pasted text")
    MARKDOWN = "markdown", _("Markdown")
    TXT = "txt", _("Text file")
    PDF = "pdf", _("PDF")
    DOCX = "docx", _("Word document")
    CSV = "csv", _("Questions and answers (CSV)")
    URL = "url", _("Web page")
    QA = "qa", _("Questions and answers")


class DocumentStatus(models.TextChoices):
    PENDING = "pending", _("Waiting")
    INDEXING = "indexing", _("Indexing")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Failed")


class Document(models.Model):
    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="documents")
    name = models.CharField(_("name"), max_length=255)
    kind = models.CharField(_("kind"), max_length=10, choices=DocumentKind.choices)
    file = models.FileField(upload_to="knowledge/%Y/%m/", blank=True, max_length=300)
    source_url = models.URLField(_("web page"), blank=True, max_length=2000)
    text = models.TextField(blank=True)  # pasted text, or what was extracted from the file or page
    status = models.CharField(max_length=10, choices=DocumentStatus.choices, default=DocumentStatus.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)  # percent of chunks embedded
    error = models.TextField(blank=True)  # why indexing failed, for the user
    # Bumped on every change: an index run for an older version stops and leaves the newer run's chunks.
    version = models.PositiveIntegerField(default=1)
    indexed_version = models.PositiveIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    indexed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("document")
        verbose_name_plural = _("documents")

    def __str__(self) -> str:
        return self.name


class QAPair(models.Model):
    """A question and its answer, in a document of kind `qa` (typed in the UI) or `csv` (imported)."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="qa_pairs")
    question = models.TextField(_("question"))
    answer = models.TextField(_("answer"))
    position = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "pk"]
        verbose_name = _("question and answer")
        verbose_name_plural = _("questions and answers")

    def __str__(self) -> str:
        return self.question[:80]


class Chunk(models.Model):
    """One passage. `embedding` has no fixed dimension (a tenant's OpenAI model and the local one differ);
    the HNSW indexes are partial expression indexes, one per supported dimension (migration 0002)."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    version = models.PositiveIntegerField()
    text = models.TextField()
    embedding = VectorField(null=True)
    embedding_model = models.CharField(max_length=120, blank=True)
    embedding_dim = models.PositiveIntegerField(default=0)
    search_vector = SearchVectorField(null=True)

    class Meta:
        ordering = ["document_id", "position"]
        indexes = [
            GinIndex(fields=["search_vector"], name="knowledge_chunk_fts"),
            models.Index(fields=["knowledge_base", "embedding_model"], name="knowledge_chunk_kb_model"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.position}"


class Lexeme(models.Model):
    """How many indexed chunks of a knowledge base hold a full-text lexeme: the document frequency that
    full-text retrieval weighs query words by (a word every chunk has tells nothing, BM25's IDF). Kept
    in step when a document's new version is swapped in or a document is deleted (knowledge.services)."""

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="+")
    lexeme = models.TextField()
    chunks = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["knowledge_base", "lexeme"], name="knowledge_lexeme_unique")]

    def __str__(self) -> str:
        return f"{self.lexeme} ({self.chunks})"
