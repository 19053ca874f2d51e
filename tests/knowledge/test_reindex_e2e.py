"""Re-index on change as production runs it: committed rows, the task sent after commit to the `ai`
queue, the suite's real Celery worker embedding in its own process, progress and status on the row."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connection

from knowledge import services
from knowledge.models import Chunk, Document, DocumentStatus
from tenants.models import Tenant
from tests.conftest import Worker
from tests.support import wait_until


def _document(tenant: Tenant, pk: int) -> Document:
    connection.set_tenant(tenant)
    return Document.objects.get(pk=pk)


def test_a_changed_document_is_reindexed_in_the_background(celery_worker: Worker, tenants: Any, committed: Any) -> None:
    alpha = tenants[0]
    connection.set_tenant(alpha)
    kb = services.knowledge_base_create(name=f"e2e {uuid.uuid4().hex[:6]}")
    try:
        document = services.document_add_text(knowledge_base=kb, name="horario", text="Abrimos às 8h em dias úteis.")
        ready = wait_until(
            lambda: _document(alpha, document.pk).status == DocumentStatus.READY, timeout=60, what="first index"
        )
        assert ready
        first = _document(alpha, document.pk)
        assert first.progress == 100 and first.indexed_version == first.version
        before = first.version
        connection.set_tenant(alpha)
        services.document_update_text(document=first, text="Agora abrimos às 7h, inclusive aos sábados.")
        wait_until(lambda: _document(alpha, document.pk).indexed_version == before + 1, timeout=60, what="re-index")
        connection.set_tenant(alpha)
        texts = list(Chunk.objects.filter(document_id=document.pk).values_list("text", flat=True))
        assert texts == ["Agora abrimos às 7h, inclusive aos sábados."]
        passages = services.retrieve(query="abre sabado?", knowledge_base_ids=[kb.pk], k=3)
        assert passages and passages[0].text == texts[0]
    finally:
        connection.set_tenant(alpha)
        services.knowledge_base_delete(knowledge_base=kb)
