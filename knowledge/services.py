"""Writes of the knowledge app (knowledge bases, documents, Q&A pairs, indexing) and the one retrieval
the assistants, the API and the search page all use: `retrieve()`."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import F
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from core import urlguard
from core.tasks import send_on_commit
from knowledge import parsing
from knowledge.embeddings import Embedder, EmbeddingFailed, embedder_current
from knowledge.models import Chunk, Document, DocumentKind, DocumentStatus, KnowledgeBase, Lexeme, QAPair
from knowledge.query import query_expand, query_spell_out

logger = logging.getLogger(__name__)

FILE_KINDS = {
    ".pdf": DocumentKind.PDF,
    ".docx": DocumentKind.DOCX,
    ".csv": DocumentKind.CSV,
    ".md": DocumentKind.MARKDOWN,
    ".markdown": DocumentKind.MARKDOWN,
    ".txt": DocumentKind.TXT,
}
# Dimensions with an HNSW index (migration 0002); other sizes are searched exactly (still correct, slower).
INDEXED_DIMS = (384, 768, 1024, 1536)
# Reciprocal rank fusion: score = sum over the lists of weight / (RRF_K + rank). Chosen on bench/rag_eval.py
# (README "Knowledge"): the dense model is the stronger list on informal pt-BR, full-text adds exact terms
# (prices, names, codes), so it weighs 0.7 times the square of its coverage of the query (see _FTS_SQL),
# and a small k keeps the top of each list decisive.
RRF_K = 10
RRF_WEIGHTS = (1.0, 0.7)
CANDIDATES = 40  # how deep each list goes before fusion
# Full-text ranks at most this many matching chunks (an OR of common words can match a whole large base;
# ranking them all would cost seconds): latency stays bounded, the vector list covers the rest.
FTS_MAX_CANDIDATES = 2000
# Embedding the query (CPU in the local model, which releases the GIL, or a request to the tenant's
# server) runs on this pool while the full-text query runs in PostgreSQL: a retrieval costs the longer of
# the two, not their sum.
_EMBED_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="knowledge-embed")


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    document_id: int
    document_name: str
    text: str
    score: float


# --- knowledge bases and documents --------------------------------------------------------------------


def knowledge_base_create(*, name: str, description: str = "") -> KnowledgeBase:
    name = name.strip()
    if not name:
        raise ValidationError(_("Give the knowledge base a name."))
    return KnowledgeBase.objects.create(name=name[:120], description=description)


def knowledge_base_update(*, knowledge_base: KnowledgeBase, name: str, description: str) -> KnowledgeBase:
    if not name.strip():
        raise ValidationError(_("Give the knowledge base a name."))
    knowledge_base.name, knowledge_base.description = name.strip()[:120], description
    knowledge_base.save(update_fields=["name", "description", "updated_at"])
    return knowledge_base


def knowledge_base_delete(*, knowledge_base: KnowledgeBase) -> None:
    for document in knowledge_base.documents.exclude(file=""):
        _file_delete_on_commit(document)
    knowledge_base.delete()


def _file_delete_on_commit(document: Document) -> None:
    name, storage = str(document.file.name), document.file.storage
    transaction.on_commit(lambda: storage.delete(name))


def document_index_enqueue(document: Document) -> None:
    """Bump the version, show it as waiting, index it in the background after commit."""
    Document.objects.filter(pk=document.pk).update(
        version=F("version") + 1, status=DocumentStatus.PENDING, progress=0, error=""
    )
    document.refresh_from_db()
    from knowledge.tasks import document_index as task

    send_on_commit(task, document.pk, document.version, queue="ai")


def document_add_text(*, knowledge_base: KnowledgeBase, name: str, text: str, markdown: bool = False) -> Document:
    text = text.strip()
    if not text:
        raise ValidationError(_("The text is empty."))
    try:
        text = parsing.file_text("txt", text.encode())
    except parsing.ParseFailed as exc:
        raise ValidationError(str(exc)) from exc
    kind = DocumentKind.MARKDOWN if markdown else DocumentKind.TEXT
    document = Document.objects.create(
        knowledge_base=knowledge_base, name=(name.strip() or _("Pasted text"))[:255], kind=kind, text=text, version=0
    )
    document_index_enqueue(document)
    return document


def document_update_text(*, document: Document, text: str, name: str = "") -> Document:
    if document.kind not in (DocumentKind.TEXT, DocumentKind.MARKDOWN):
        raise ValidationError(_("Only pasted text can be edited; upload the file again instead."))
    if not text.strip():
        raise ValidationError(_("The text is empty."))
    document.text = text.strip()
    document.name = (name.strip() or document.name)[:255]
    document.save(update_fields=["text", "name", "updated_at"])
    document_index_enqueue(document)
    return document


def document_add_file(*, knowledge_base: KnowledgeBase, filename: str, data: bytes) -> Document:
    """Store an uploaded file (through the project's storage) and index it in the background; the file is
    parsed by the worker, so a hostile file fails its own document, never the request."""
    safe_name = os.path.basename(filename.replace("\\", "/")).strip()[:200] or "document"
    kind = FILE_KINDS.get(os.path.splitext(safe_name)[1].lower())
    if kind is None:
        raise ValidationError(
            _(
                "%(name)s: this kind of file is not supported "
                "(PDF, DOCX, TXT, Markdown or a CSV of questions and answers)."
            )
            % {"name": safe_name}
        )
    if len(data) > settings.KNOWLEDGE_UPLOAD_MAX_BYTES:
        raise ValidationError(
            _("%(name)s is larger than %(limit)s.")
            % {"name": safe_name, "limit": filesizeformat(settings.KNOWLEDGE_UPLOAD_MAX_BYTES)}
        )
    if not data:
        raise ValidationError(_("%(name)s is empty.") % {"name": safe_name})
    document = Document(knowledge_base=knowledge_base, name=safe_name, kind=kind, version=0)
    document.file.save(safe_name, ContentFile(data), save=False)
    document.save()
    document_index_enqueue(document)
    return document


def document_add_url(*, knowledge_base: KnowledgeBase, url: str) -> Document:
    """A web page, fetched by the worker through the outbound-URL guard (checked here first, so a private
    or metadata address is refused at once)."""
    url = url.strip()
    try:
        urlguard.url_check(url)
    except urlguard.UrlRefused as exc:
        raise ValidationError(_("This address cannot be fetched: %(reason)s") % {"reason": exc.reason}) from exc
    except urlguard.FetchFailed as exc:
        raise ValidationError(_("This address cannot be fetched: %(reason)s") % {"reason": exc.reason}) from exc
    document = Document.objects.create(
        knowledge_base=knowledge_base, name=url[:255], kind=DocumentKind.URL, source_url=url, version=0
    )
    document_index_enqueue(document)
    return document


def document_delete(*, document: Document) -> None:
    if document.file:
        _file_delete_on_commit(document)
    with transaction.atomic():
        indexed = _indexed_version_locked(document.pk)
        if indexed:
            _lexemes_count(document.knowledge_base_id, document.pk, indexed, -1)
        document.delete()


# --- question/answer pairs ------------------------------------------------------------------------------


def qa_document_for(*, knowledge_base: KnowledgeBase) -> Document:
    """The knowledge base's own document holding the pairs typed in the UI (one per base)."""
    found = Document.objects.filter(knowledge_base=knowledge_base, kind=DocumentKind.QA).order_by("pk").first()
    if found is not None:
        return found
    return Document.objects.create(
        knowledge_base=knowledge_base,
        name=_("Questions and answers"),
        kind=DocumentKind.QA,
        version=0,
        status=DocumentStatus.READY,
        progress=100,
    )


def _qa_clean(question: str, answer: str) -> tuple[str, str]:
    question, answer = question.strip(), answer.strip()
    if not question or not answer:
        raise ValidationError(_("Write both the question and the answer."))
    return question[:4000], answer[:20000]


def qa_pair_create(*, knowledge_base: KnowledgeBase, question: str, answer: str) -> QAPair:
    question, answer = _qa_clean(question, answer)
    document = qa_document_for(knowledge_base=knowledge_base)
    position = (document.qa_pairs.order_by("-position").values_list("position", flat=True).first() or 0) + 1
    pair = QAPair.objects.create(document=document, question=question, answer=answer, position=position)
    document_index_enqueue(document)
    return pair


def qa_pair_update(*, pair: QAPair, question: str, answer: str) -> QAPair:
    pair.question, pair.answer = _qa_clean(question, answer)
    pair.save(update_fields=["question", "answer", "updated_at"])
    document_index_enqueue(pair.document)
    return pair


def qa_pair_delete(*, pair: QAPair) -> None:
    document = pair.document
    pair.delete()
    document_index_enqueue(document)


# --- indexing (the worker) ----------------------------------------------------------------------------


def _document_texts(document: Document) -> list[str]:
    """The chunks of a document, extracting its text first where it comes from a file or a page."""
    kind = document.kind
    if kind == DocumentKind.QA:
        return [parsing.qa_chunk(parsing.QA(p.question, p.answer)) for p in document.qa_pairs.all()]
    if kind == DocumentKind.CSV:
        with document.file.open("rb") as handle:
            pairs = parsing.qa_csv(handle.read(settings.KNOWLEDGE_UPLOAD_MAX_BYTES + 1))
        QAPair.objects.filter(document=document).delete()
        QAPair.objects.bulk_create(
            QAPair(document=document, question=p.question, answer=p.answer, position=i) for i, p in enumerate(pairs)
        )
        return [parsing.qa_chunk(p) for p in pairs]
    if kind == DocumentKind.URL:
        try:
            fetched = urlguard.fetch(document.source_url, max_bytes=settings.KNOWLEDGE_UPLOAD_MAX_BYTES)
        except urlguard.FetchFailed as exc:
            raise parsing.ParseFailed(_("The page could not be fetched: %(reason)s") % {"reason": exc.reason}) from exc
        if "html" in fetched.content_type or fetched.content.lstrip()[:1] == b"<":
            title, text = parsing.html_text(fetched.content)
        else:
            title, text = "", parsing.decode_text(fetched.content)
        document.text = parsing.file_text("txt", text.encode())
        if title:
            document.name = title[:255]
        Document.objects.filter(pk=document.pk).update(text=document.text, name=document.name)
        return parsing.chunk_text(document.text)
    if kind in (DocumentKind.PDF, DocumentKind.DOCX, DocumentKind.TXT) or (
        kind == DocumentKind.MARKDOWN and document.file
    ):
        with document.file.open("rb") as handle:
            data = handle.read(settings.KNOWLEDGE_UPLOAD_MAX_BYTES + 1)
        document.text = parsing.file_text(kind, data)
        Document.objects.filter(pk=document.pk).update(text=document.text)
    return parsing.chunk_text(document.text, markdown=kind == DocumentKind.MARKDOWN)


def _vector_literal(values: list[float]) -> str:
    return "[" + ",".join(f"{v:.7g}" for v in values) + "]"


def _chunks_insert(
    document: Document, version: int, start: int, texts: list[str], vectors: list[list[float]], embedder: Embedder
) -> None:
    folded = [parsing.text_fold(t) for t in texts]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Chunk._meta.db_table}
                (document_id, knowledge_base_id, position, version, text, embedding, embedding_model, embedding_dim,
                 search_vector)
            SELECT %s, %s, u.p, %s, u.t, u.e::vector, %s, %s,
                   to_tsvector('portuguese', u.f) || to_tsvector('english', u.f)
            FROM unnest(%s::int[], %s::text[], %s::text[], %s::text[]) AS u(p, t, e, f)
            """,  # noqa: S608 (the table name is ours)
            [
                document.pk,
                document.knowledge_base_id,
                version,
                embedder.name,
                embedder.dim,
                list(range(start, start + len(texts))),
                texts,
                [_vector_literal(v) for v in vectors],
                folded,
            ],
        )


def document_index(*, document_id: int, version: int) -> str:
    """Index one version of a document: extract, chunk, embed in batches (progress on the row as it
    goes), then swap the new chunks in. A newer version makes this run stop; a rerun redoes its version.
    Answers the final status (or "stale")."""
    document = Document.objects.filter(pk=document_id).select_related("knowledge_base").first()
    if document is None or document.version != version:
        return "stale"
    Document.objects.filter(pk=document_id, version=version).update(status=DocumentStatus.INDEXING, progress=0)
    Chunk.objects.filter(document_id=document_id, version=version).delete()  # a crashed run's leftovers
    try:
        texts = _document_texts(document)
    except parsing.ParseFailed as exc:
        return _document_fail(document_id, version, str(exc))
    except (OSError, ValueError) as exc:
        logger.warning("knowledge document %s could not be read: %s", document_id, exc.__class__.__name__)
        return _document_fail(document_id, version, _("The file could not be read."))
    embedder = embedder_current()
    batch = 32
    for start in range(0, len(texts), batch):
        part = texts[start : start + batch]
        try:
            vectors = embedder.embed_passages(part)
        except EmbeddingFailed as exc:
            if exc.retryable:
                raise
            return _document_fail(
                document_id, version, _("The embeddings server refused: %(reason)s") % {"reason": exc}
            )
        _chunks_insert(document, version, start, part, vectors, embedder)
        done = min(100, int(100 * (start + len(part)) / len(texts)))
        if not Document.objects.filter(pk=document_id, version=version).update(progress=max(1, done - 1)):
            Chunk.objects.filter(document_id=document_id, version=version).delete()
            return "stale"
    with transaction.atomic():
        previous = _indexed_version_locked(document_id)
        swapped = Document.objects.filter(pk=document_id, version=version).update(
            status=DocumentStatus.READY,
            progress=100,
            indexed_version=version,
            chunk_count=len(texts),
            indexed_at=timezone.now(),
            error="",
        )
        if swapped:
            if previous:
                _lexemes_count(document.knowledge_base_id, document_id, previous, -1)
            _lexemes_count(document.knowledge_base_id, document_id, version, 1)
            Chunk.objects.filter(document_id=document_id).exclude(version=version).delete()
        else:
            Chunk.objects.filter(document_id=document_id, version=version).delete()
    return DocumentStatus.READY if swapped else "stale"


def _indexed_version_locked(document_id: int) -> int | None:
    """The document's indexed version, its row locked until the transaction ends (a swap and a delete of
    one document take turns, so its frequencies are counted in or out once)."""
    return Document.objects.select_for_update().filter(pk=document_id).values_list("indexed_version", flat=True).first()


def _lexemes_count(knowledge_base_id: int, document_id: int, version: int, sign: int) -> None:
    """Add (sign 1) or take away (-1) the lexemes of one version of a document to its knowledge base's
    document frequencies (ts_stat's `ndoc`: chunks holding the lexeme), in lexeme order, so two documents
    swapped in at once lock the shared rows in the same order."""
    table = Lexeme._meta.db_table
    chunks = (
        f"SELECT search_vector FROM {Chunk._meta.db_table} "  # noqa: S608 (ints)
        f"WHERE document_id = {int(document_id)} AND version = {int(version)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} AS s (knowledge_base_id, lexeme, chunks) "  # noqa: S608 (our table)
            "SELECT %(kb)s, word, ndoc FROM ts_stat(%(chunks)s) ORDER BY word "
            "ON CONFLICT (knowledge_base_id, lexeme) DO UPDATE SET chunks = s.chunks + EXCLUDED.chunks"
            if sign > 0
            else f"UPDATE {table} AS s SET chunks = greatest(0, s.chunks - t.ndoc) "  # noqa: S608 (our table)
            "FROM (SELECT word, ndoc FROM ts_stat(%(chunks)s) ORDER BY word) t "
            "WHERE s.knowledge_base_id = %(kb)s AND s.lexeme = t.word",
            {"kb": knowledge_base_id, "chunks": chunks},
        )
        if sign < 0:
            cursor.execute(f"DELETE FROM {table} WHERE knowledge_base_id = %s AND chunks = 0", [knowledge_base_id])  # noqa: S608


def lexemes_rebuild(knowledge_base_id: int) -> int:
    """Count a knowledge base's document frequencies again from its indexed chunks (after chunks were
    written in bulk outside `document_index`, as the latency benchmark does). Answers the lexemes."""
    table = Lexeme._meta.db_table
    chunks = (
        f"SELECT c.search_vector FROM {Chunk._meta.db_table} c JOIN {Document._meta.db_table} d "  # noqa: S608 (ints)
        f"ON d.id = c.document_id AND d.indexed_version = c.version "
        f"WHERE c.knowledge_base_id = {int(knowledge_base_id)}"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE knowledge_base_id = %s", [knowledge_base_id])  # noqa: S608
        cursor.execute(
            f"INSERT INTO {table} (knowledge_base_id, lexeme, chunks) SELECT %s, word, ndoc FROM ts_stat(%s)",  # noqa: S608
            [knowledge_base_id, chunks],
        )
        return cursor.rowcount


def _document_fail(document_id: int, version: int, reason: str) -> str:
    Document.objects.filter(pk=document_id, version=version).update(
        status=DocumentStatus.FAILED, progress=0, error=reason[:2000]
    )
    return DocumentStatus.FAILED


def documents_reindex_all() -> int:
    """Re-embed every document (after the tenant changed its embeddings model or key)."""
    count = 0
    for document in Document.objects.all():
        document_index_enqueue(document)
        count += 1
    return count


# --- retrieval ------------------------------------------------------------------------------------------


def _tsquery_text(query: str) -> str:
    return parsing.text_fold(query)


def _vector_sql(dim: int) -> str:
    cast = f"::vector({dim})" if dim in INDEXED_DIMS else "::vector"
    dim_filter = "c.embedding_dim = %(dim)s"
    return f"""
        SELECT c.id, row_number() OVER (ORDER BY c.embedding{cast} <=> %(vec)s{cast}) AS r
        FROM (SELECT c.id, c.embedding FROM {Chunk._meta.db_table} c
              JOIN {Document._meta.db_table} d ON d.id = c.document_id AND d.indexed_version = c.version
              WHERE {dim_filter} AND c.embedding_model = %(model)s AND c.knowledge_base_id = ANY(%(kbs)s)
              ORDER BY c.embedding{cast} <=> %(vec)s{cast} LIMIT %(n)s) c
    """  # noqa: S608 (table names are ours, the cast comes from INDEXED_DIMS)


# Full-text side: the query's words as Portuguese and English lexemes (a Portuguese stop word is dropped),
# less the tenant's commonest (see common_lexemes), each weighed by its inverse document frequency in these
# knowledge bases (BM25's IDF, from knowledge_lexeme) times ts_rank's saturating count of it in the chunk;
# no length normalisation (chunks are of one size). `coverage` is the share of the query's lexemes the
# knowledge bases hold at all: an English question over Portuguese documents matches only stray words, and
# the fusion weighs the full-text list by it.
_FTS_SQL = f"""
    WITH words AS (SELECT DISTINCT l FROM regexp_split_to_table(%(text)s, '[^[:alnum:]]+') w,
             LATERAL unnest(tsvector_to_array(CASE WHEN to_tsvector('portuguese', w) = ''::tsvector THEN ''::tsvector
                                              ELSE to_tsvector('portuguese', w) || to_tsvector('english', w) END)) l),
    kept AS (SELECT l FROM words WHERE l <> ALL(%(common)s::text[])
             UNION ALL SELECT l FROM words WHERE NOT EXISTS (SELECT 1 FROM words WHERE l <> ALL(%(common)s::text[]))),
    total AS (SELECT greatest(coalesce(sum(chunk_count), 0), 1) AS n FROM {Document._meta.db_table}
              WHERE knowledge_base_id = ANY(%(kbs)s) AND indexed_version > 0),
    terms AS (SELECT f.lexeme, to_tsquery('simple', quote_literal(f.lexeme)) AS tq,
                     ln(1 + (greatest(total.n, f.df) - f.df + 0.5) / (f.df + 0.5)) AS idf
              FROM (SELECT lexeme, sum(chunks) AS df FROM {Lexeme._meta.db_table}
                    WHERE knowledge_base_id = ANY(%(kbs)s) AND lexeme IN (SELECT l FROM kept)
                    GROUP BY lexeme) f, total),
    q AS (SELECT to_tsquery('simple', coalesce(nullif(array_to_string(array(
             SELECT quote_literal(lexeme) FROM terms), ' | '), ''), '')) AS q,
             (SELECT count(*) FROM terms)::float / greatest((SELECT count(*) FROM kept), 1) AS coverage),
    matched AS (SELECT m.id, m.search_vector, m.document_id, m.version FROM {Chunk._meta.db_table} m, q
                WHERE m.search_vector @@ q.q AND m.knowledge_base_id = ANY(%(kbs)s) LIMIT %(cap)s),
    scored AS (SELECT c.id, (SELECT sum(t.idf * ts_rank(c.search_vector, t.tq)) FROM terms t
                             WHERE c.search_vector @@ t.tq) AS score
               FROM matched c
               JOIN {Document._meta.db_table} d ON d.id = c.document_id AND d.indexed_version = c.version)
    SELECT s.id, row_number() OVER (ORDER BY s.score DESC, s.id) AS r, q.coverage
    FROM scored s, q ORDER BY s.score DESC, s.id LIMIT %(n)s
"""  # noqa: S608 (table names are ours)


# A query word found in more than this share of the tenant's chunks ranks little and costs the most (its
# postings are the longest): left out of the full-text query, unless every word of the query is that common.
# The shares are PostgreSQL's own (ANALYZE's most common elements of search_vector); small tables keep all.
COMMON_LEXEME_SHARE = 0.05
COMMON_LEXEME_MIN_CHUNKS = 5000
COMMON_LEXEMES_TTL_S = 600.0
_common_cache: dict[str, tuple[float, list[str]]] = {}


def common_lexemes() -> list[str]:
    """The lexemes in more than COMMON_LEXEME_SHARE of this tenant's chunks (its schema's table), cached
    per process for COMMON_LEXEMES_TTL_S."""
    schema = str(getattr(connection, "schema_name", "public"))
    cached = _common_cache.get(schema)
    if cached is not None and time.monotonic() - cached[0] < COMMON_LEXEMES_TTL_S:
        return cached[1]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs, c.reltuples FROM pg_stats s "
            "JOIN pg_class c ON c.relname = s.tablename AND c.relnamespace = to_regnamespace(s.schemaname) "
            "WHERE s.schemaname = current_schema() AND s.tablename = %s AND s.attname = 'search_vector'",
            [Chunk._meta.db_table],
        )
        row = cursor.fetchone()
    common: list[str] = []
    if row is not None and row[0] and row[1] and (row[2] or 0) >= COMMON_LEXEME_MIN_CHUNKS:
        common = [lexeme for lexeme, share in zip(row[0], row[1], strict=False) if share > COMMON_LEXEME_SHARE]
    _common_cache[schema] = (time.monotonic(), common)
    return common


def _ranked(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


class Candidates(NamedTuple):
    """What hybrid retrieval fuses: chunk ids by vector similarity and by full-text rank, best first, and
    the share of the query's lexemes the knowledge bases hold (how much the full-text list can know)."""

    vector: list[int]
    fts: list[int]
    coverage: float


def retrieve_lists(
    *, query: str, knowledge_base_ids: list[int], depth: int = CANDIDATES, embedder: Embedder | None = None
) -> Candidates:
    """The two ranked lists hybrid retrieval fuses, and the full-text list's coverage of the query."""
    ids = [int(i) for i in knowledge_base_ids]
    if not query.strip() or not ids:
        return Candidates([], [], 0.0)
    expanded = query_expand(query)
    embedder = embedder or embedder_current()
    embedding = _EMBED_POOL.submit(embedder.embed_query, query_spell_out(query))
    params: dict[str, Any] = {
        "kbs": ids,
        "cap": FTS_MAX_CANDIDATES,
        "n": depth,
        "text": _tsquery_text(expanded),
        "common": common_lexemes(),
    }
    try:
        with transaction.atomic():
            rows = _ranked(_FTS_SQL, params)
            vector = embedding.result()
            params.update(vec=_vector_literal(vector), dim=len(vector), model=embedder.name)
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL hnsw.ef_search = %s", [max(40, depth * 2)])
            vec = [int(row[0]) for row in _ranked(_vector_sql(len(vector)), params)]
    finally:
        embedding.cancel()
    return Candidates(vec, [int(row[0]) for row in rows], float(rows[0][2]) if rows else 0.0)


def rrf_fuse(
    lists: list[list[int]], *, weights: tuple[float, ...] = RRF_WEIGHTS, k: int = RRF_K
) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion of ranked chunk-id lists (vector first, then full-text)."""
    scores: dict[int, float] = {}
    for weight, ranked in zip(weights, lists, strict=False):
        for rank, chunk_id in enumerate(ranked, start=1):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def hybrid_rank(candidates: Candidates) -> list[tuple[int, float]]:
    """The fused ranking with scores from 0 to 1 (1: first in both lists with the whole query known to
    the full-text index). The full-text list weighs RRF_WEIGHTS[1] times the square of its coverage."""
    vector_weight, fts_weight = RRF_WEIGHTS
    weights = (vector_weight, fts_weight * candidates.coverage**2)
    best = sum(RRF_WEIGHTS) / (RRF_K + 1)
    return [(cid, score / best) for cid, score in rrf_fuse([candidates.vector, candidates.fts], weights=weights)]


def passages_for(scored: list[tuple[int, float]]) -> list[Passage]:
    if not scored:
        return []
    with connection.cursor() as cursor:  # one plain statement: it is on every answer's critical path
        cursor.execute(
            f"SELECT c.id, c.document_id, d.name, c.text FROM {Chunk._meta.db_table} c "  # noqa: S608 (our tables)
            f"JOIN {Document._meta.db_table} d ON d.id = c.document_id WHERE c.id = ANY(%s)",
            [[cid for cid, _s in scored]],
        )
        rows = {row[0]: row for row in cursor.fetchall()}
    return [
        Passage(
            chunk_id=cid, document_id=rows[cid][1], document_name=rows[cid][2], text=rows[cid][3], score=round(score, 6)
        )
        for cid, score in scored
        if cid in rows
    ]


def retrieve(*, query: str, knowledge_base_ids: list[int], k: int = 5) -> list[Passage]:
    """The best `k` passages of these knowledge bases (of the active tenant: the schema is the scope) for
    `query`: vector similarity and full-text (Portuguese + English, accents folded) fused by reciprocal
    rank (`hybrid_rank`: `score` from 0 to 1)."""
    k = max(1, min(int(k), 50))
    candidates = retrieve_lists(query=query, knowledge_base_ids=knowledge_base_ids, depth=max(CANDIDATES, k))
    return passages_for(hybrid_rank(candidates)[:k])
