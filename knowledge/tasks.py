"""Thin Celery wrappers: ids in, one service call (queue `ai`; the schema travels in the task headers)."""

from __future__ import annotations

from config.celery import app
from knowledge import services
from knowledge.embeddings import EmbeddingFailed


@app.task(name="knowledge.document_index", bind=True, max_retries=5, acks_late=True)
def document_index(self, document_id: int, version: int) -> str:  # type: ignore[no-untyped-def]
    try:
        return services.document_index(document_id=document_id, version=version)
    except EmbeddingFailed as exc:  # retryable (rate limit, server down): try again later
        raise self.retry(countdown=min(300, 10 * 2**self.request.retries), exc=exc) from exc
