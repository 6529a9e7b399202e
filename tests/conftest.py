"""Shared fixtures. Tests never write into the working tree: indexes go to tmp_path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# --- the chat in a real browser (tests/test_ui_browser.py, tests/test_security.py) ----------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    from tests import helpers
    from ui.server import build_app

    helpers._playwright()  # skip before building anything
    engine = helpers.small_engine(tmp_path_factory.mktemp("ui"))
    with helpers.running_server(build_app(engine.settings, engine, token="")) as url:
        yield url, engine


@pytest.fixture(scope="module")
def browser(served: tuple[str, Any]) -> Iterator[Any]:
    from tests import helpers

    sync_playwright = helpers._playwright()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(helpers.CHROMIUM), args=helpers.CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser: Any, served: tuple[str, Any]) -> Iterator[Any]:
    from tests import helpers

    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="kk-KZ")
    pg = context.new_page()
    pg.set_default_timeout(helpers.TIMEOUT_MS)
    pg.goto(served[0] + "/")
    pg.wait_for_selector("#kz-input textarea")
    yield pg
    context.close()
