"""The seam to the knowledge bases: the passages an assistant may ground an answer on. The retrieval itself
belongs to the `knowledge` app (`knowledge.services.retrieve`); this is the one place that calls it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ai.models import Assistant


@dataclass(frozen=True)
class Passage:
    """The shape knowledge.services.retrieve answers (chunk, its document, the text, the fused score)."""

    chunk_id: int
    document_id: int
    document_name: str
    text: str
    score: float


def passages_for(assistant: Assistant, query: str) -> list[Any]:
    """The best passages of the assistant's knowledge bases for `query`, best first (each with chunk_id,
    document_id, document_name, text and score): the hybrid retrieval the search API answers with."""
    from knowledge.services import retrieve

    if not assistant.knowledge_base_ids or not query.strip():
        return []
    return list(retrieve(query=query, knowledge_base_ids=list(assistant.knowledge_base_ids), k=5))


def passage_source(passage: Any) -> dict[str, Any]:
    """What a reply records about a passage it used (shown to staff beside the bot's message)."""
    return {
        "chunk_id": int(passage.chunk_id),
        "document_id": int(passage.document_id),
        "document_name": str(passage.document_name),
        "score": round(float(passage.score), 4),
        "text": str(passage.text)[:500],
    }
