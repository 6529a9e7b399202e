"""Shared fixtures. Tests never write into the working tree: indexes go to tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Hypothesis (also inside schemathesis) keeps a cache folder; keep it out of the working tree.
import tempfile

from hypothesis import configuration as _hyp_conf

_hyp_conf.set_hypothesis_home_dir(tempfile.mkdtemp(prefix="kazrag-hypothesis-"))

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


@pytest.fixture(scope="session")
def seed_docs():
    from rag.sources import load_corpus

    return load_corpus(SEEDS)


@pytest.fixture(scope="session")
def seed_chunks(seed_docs):
    from rag.chunking import chunk_corpus

    return chunk_corpus(seed_docs)


@pytest.fixture()
def hash_embedder():
    from tests.fakes import HashEmbedder

    return HashEmbedder()
