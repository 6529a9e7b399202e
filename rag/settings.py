"""One frozen settings object, built in each entry point from flags and ``KAZRAG_*`` variables.

Settings that shape the index (model, chunking, lexical analysis, vector store) are written into
the index manifest; the rest (retrieval depth, generator backend, thresholds) can change without
a rebuild. This module is the only one that reads ``KAZRAG_*`` variables (:func:`from_env`,
:func:`env_value`, :func:`cache_dir`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.chunking import ChunkingConfig
from rag.embedding import BACKENDS, DEFAULT_BACKEND, DEFAULT_MODEL
from rag.fusion import RRF_K
from rag.generation import GeneratorConfig
from rag.index import IndexSpec
from rag.lexical import LexicalConfig
from rag.stores import STORES, store_kind

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = PROJECT_ROOT / "seeds"
DEFAULT_INDEX = PROJECT_ROOT / "index" / "seeds"
# Documents uploaded through the chat or the API: kept out of git and out of seeds/.
DEFAULT_UPLOADS = PROJECT_ROOT / "data" / "uploads"

GENERATORS = ("extractive", "openai", "llamacpp")


@dataclass(frozen=True)
class Settings:
    """Everything an entry point can configure. Defaults work offline on the seed corpus."""

    corpus: Path = DEFAULT_CORPUS
    index: Path = DEFAULT_INDEX
    uploads: Path | None = DEFAULT_UPLOADS
    model: str = DEFAULT_MODEL
    # Encoder backend: torch, onnx (fp32) or onnx-int8; the default is the fastest whose quality
    # held against torch (BENCHMARKS.md, "Encoder backends"). Recorded in the index manifest.
    backend: str = DEFAULT_BACKEND
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    # The BM25 analyzer and parameters (recorded in the index manifest).
    lexical: LexicalConfig = field(default_factory=LexicalConfig)
    # Where the index lives: ``faiss`` (the index folder; rag/stores/), a Milvus Lite file
    # (``*.db``, one process) or a Milvus server/cluster (``http://host:port``) shared by replicas.
    store: str = "faiss"
    top_k: int = 5
    # Candidates each retriever contributes before fusion.
    candidates: int = 30
    # Fusion of the dense and lexical lists: min-max score fusion with the lexical list weighted
    # 1.5 (dense 1.0) measured best on the dev split, ahead of reciprocal-rank fusion (see
    # BENCHMARKS.md).
    fusion: str = "minmax"
    rrf_k: int = RRF_K
    lexical_weight: float = 1.5
    generator: str = "extractive"
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    llm_gguf: str | None = None
    # A CPU model reads five Kazakh passages (~4k tokens) for tens of seconds before it writes.
    llm_timeout: float = 120.0
    # The llama.cpp child that serves ``llm_gguf``: context tokens and CPU threads. Five
    # 1,400-character Kazakh passages are 2,000-4,500 tokens depending on the tokenizer, so
    # 2,048 would reject most prompts; 8,192 still costs little KV memory on a 7B model.
    llm_ctx: int = 8192
    llm_threads: int = 2
    # The evidence-first composer's weights, limits and calibrated thresholds.
    generation: GeneratorConfig = field(default_factory=GeneratorConfig)
    # Below this calibrated support score the answer abstains (see rag/generation.py); when
    # set it overrides both of ``generation``'s abstention thresholds (see ``composer``).
    abstain_threshold: float | None = None
    max_question_chars: int = 2000
    # A Kazakh answer to a question typed in the 2021 Latin alphabet also in that alphabet
    # (after the Cyrillic answer, whose quotes stay verbatim). Off by default.
    latin_answers: bool = False
    # Bearer token the HTTP API wants on /api and /v1 (None: no token); kept out of repr.
    api_token: str | None = field(default=None, repr=False)
    # Encode concurrent questions' queries in one encoder call (rag/batching.py). ``None``: the
    # entry point decides (``kazrag serve`` on, the CLI off: it asks one question at a time).
    batch_queries: bool | None = None

    @property
    def composer(self) -> GeneratorConfig:
        """The composer's configuration with ``abstain_threshold`` applied."""
        if self.abstain_threshold is None:
            return self.generation
        return dataclasses.replace(
            self.generation,
            abstain_kk=self.abstain_threshold,
            abstain_other=self.abstain_threshold,
        )

    @property
    def index_spec(self) -> IndexSpec:
        """The index these settings open: its folder, corpus, uploads and shaping settings."""
        return IndexSpec(
            folder=self.index,
            corpus=self.corpus,
            uploads=self.uploads,
            chunking=self.chunking,
            lexical=self.lexical,
            store=self.store,
        )

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def env_value(name: str) -> str | None:
    """The value of ``KAZRAG_<name>``; ``None`` when unset or empty."""
    value = os.environ.get(f"KAZRAG_{name}")
    return value if value not in (None, "") else None


def _flag(raw: str) -> bool:
    """A yes/no environment value: 1/true/yes/on or 0/false/no/off."""
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


_env = env_value


def cache_dir() -> Path:
    """kazrag's cache folder (built models): ``$KAZRAG_CACHE``, else ``~/.cache/kazrag``."""
    root = env_value("CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "kazrag"


def from_env(**overrides: Any) -> Settings:
    """Settings from ``KAZRAG_*`` environment variables, then explicit (non-None) overrides."""
    values: dict[str, Any] = {}
    conv: dict[str, tuple[str, Any]] = {
        "CORPUS": ("corpus", Path),
        "INDEX": ("index", Path),
        "UPLOADS": ("uploads", Path),
        "MODEL": ("model", str),
        "BACKEND": ("backend", str),
        "TOP_K": ("top_k", int),
        "CANDIDATES": ("candidates", int),
        "RRF_K": ("rrf_k", int),
        "FUSION": ("fusion", str),
        "LEXICAL_WEIGHT": ("lexical_weight", float),
        "GENERATOR": ("generator", str),
        "LLM_BASE_URL": ("llm_base_url", str),
        "LLM_MODEL": ("llm_model", str),
        "LLM_API_KEY": ("llm_api_key", str),
        "LLM_GGUF": ("llm_gguf", str),
        "LLM_TIMEOUT": ("llm_timeout", float),
        "LLM_CTX": ("llm_ctx", int),
        "LLM_THREADS": ("llm_threads", int),
        "ABSTAIN_THRESHOLD": ("abstain_threshold", float),
        "LATIN_ANSWERS": ("latin_answers", _flag),
        "STORE": ("store", str),
        "API_TOKEN": ("api_token", str),
        "BATCH_QUERIES": ("batch_queries", _flag),
    }
    for env_name, (attr, typ) in conv.items():
        raw = _env(env_name)
        if raw is not None:
            try:
                values[attr] = typ(raw)
            except ValueError as exc:
                raise ValueError(
                    f"KAZRAG_{env_name}={raw!r} is not a valid {'yes/no value' if typ is _flag else typ.__name__}"
                ) from exc
    chunk_target, chunk_overlap = _env("CHUNK_CHARS"), _env("CHUNK_OVERLAP")
    if chunk_target or chunk_overlap:
        base = ChunkingConfig()
        values["chunking"] = ChunkingConfig(
            target_chars=int(chunk_target) if chunk_target else base.target_chars,
            max_chars=base.max_chars,
            overlap=int(chunk_overlap) if chunk_overlap else base.overlap,
        )
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(**values)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    """Reject settings that cannot work, with a message that says what to change."""
    if settings.top_k < 1 or settings.top_k > 100:
        raise ValueError(f"top_k must be between 1 and 100, got {settings.top_k}")
    if settings.backend not in BACKENDS:
        raise ValueError(
            f"unknown encoder backend {settings.backend!r}; choose one of {', '.join(BACKENDS)}"
        )
    if store_kind(settings.store) not in STORES:
        raise ValueError(
            f"unknown vector store {settings.store!r}; choose faiss (the index folder), a "
            "Milvus Lite file (a path ending in .db) or a Milvus server (http://host:port)"
        )
    if settings.fusion not in ("minmax", "rrf"):
        raise ValueError(f"unknown fusion {settings.fusion!r}; choose minmax or rrf")
    if settings.generator not in GENERATORS:
        raise ValueError(
            f"unknown generator {settings.generator!r}; choose one of {', '.join(GENERATORS)}"
        )
    if settings.generator == "openai" and not (settings.llm_base_url or settings.llm_model):
        raise ValueError("generator 'openai' needs KAZRAG_LLM_BASE_URL and KAZRAG_LLM_MODEL")
    if settings.llm_ctx < 512:
        raise ValueError(f"llm_ctx must be at least 512 tokens, got {settings.llm_ctx}")
    if settings.llm_threads < 1:
        raise ValueError(f"llm_threads must be at least 1, got {settings.llm_threads}")
    if settings.generator == "llamacpp" and not settings.llm_gguf:
        raise ValueError("generator 'llamacpp' needs KAZRAG_LLM_GGUF (path to a .gguf file)")
