"""The Milvus store: RowSink upserts, stale-free BM25 statistics, model checks, FAISS parity.

Milvus Lite files (``*.db``) live under tmp_path. The two-replica test against a
``milvus-lite server`` is in tests/test_milvus_replicas.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag import library
from rag.index import IndexMismatch, IndexUnavailable, load_index
from rag.lexical import BM25Index
from rag.pipeline import make_engine, prepare_question, retrieve
from rag.settings import DEFAULT_INDEX, PROJECT_ROOT, Settings, from_env
from rag.store_index import document_rows, index_into_store, migrate, open_any
from rag.stores import store_kind
from rag.stores.base import StoreUnreachable
from rag.stores.milvus import MilvusStore
from tests.conftest import SEEDS
from tests.fakes import HashEmbedder
from tests.helpers import AUYL, SEED_FILES

pytest.importorskip("pymilvus")


def _corpus(root: Path) -> Path:
    corpus = root / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for name in SEED_FILES:
        (corpus / name).write_bytes((SEEDS / name).read_bytes())
    return corpus


def _settings(root: Path, store: str, **overrides: Any) -> Settings:
    return Settings(
        corpus=_corpus(root),
        index=root / "index",
        uploads=root / "uploads",
        abstain_threshold=-1.0,
        store=store,
    ).replace(**overrides)


def _rows(store: MilvusStore) -> dict[str, Any]:
    """Everything the store holds, comparable across writes."""
    return {
        "documents": store.documents(),
        "chunks": [c.to_json() for c in store.chunks()],
        "counts": store.counts(),
    }


def test_store_uris_choose_the_backend() -> None:
    assert store_kind("faiss") == "faiss"
    assert store_kind("/tmp/x/kazrag.db") == "milvus"
    assert store_kind("http://127.0.0.1:19530") == "milvus"
    with pytest.raises(ValueError, match="Milvus Lite file"):
        from_env(store="elastic")


def test_writing_the_same_documents_twice_leaves_the_same_rows(tmp_path: Path) -> None:
    settings = _settings(tmp_path, str(tmp_path / "s.db"))
    emb = HashEmbedder()
    engine = make_engine(settings, embedder=emb)  # an empty store is filled from the corpus
    store = engine.index.store  # type: ignore[attr-defined]
    first = _rows(store)
    assert first["counts"]["documents"] == 2 and first["counts"]["chunks"] > 2
    docs = library.corpus_documents(settings.index_spec)
    rows = document_rows(docs, emb, settings.chunking)
    store.write(rows)
    store.write(rows)
    assert _rows(store) == first
    assert store.stored({r.doc_id: r.sha256 for r in rows}) == {r.doc_id for r in rows}
    # a changed text is not "stored"; an unknown id neither
    assert store.stored({rows[0].doc_id: "0" * 64, "nope.txt": "1" * 64}) == set()


def test_indexing_into_an_existing_store_again_keeps_it_and_embeds_only_what_changed(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path, str(tmp_path / "s.db"))
    emb = HashEmbedder()
    docs = library.corpus_documents(settings.index_spec)
    first = index_into_store(settings.index_spec, emb, docs)
    assert first["written"] == 2
    store = MilvusStore(settings.store)
    made = store.metadata()
    assert made is not None
    store.close()
    time.sleep(1.1)  # "created" has whole seconds: the second run is made at another time
    # A second run (another day, another process) is not "built with other settings".
    changed = [dataclasses.replace(docs[0], raw=docs[0].raw + "\nЖаңа сөйлем қосылды."), docs[1]]
    again = index_into_store(settings.index_spec, emb, changed)
    assert (again["written"], again["unchanged"], again["removed"]) == (1, 1, 0)
    store = MilvusStore(settings.store)
    assert store.metadata()["created"] == made["created"]  # type: ignore[index]
    store.close()


def test_a_half_written_document_is_not_stored_and_is_written_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, str(tmp_path / "s.db"))
    emb = HashEmbedder()
    engine = make_engine(settings, embedder=emb)
    store: MilvusStore = engine.index.store  # type: ignore[attr-defined]
    clean = _rows(store)
    docs = library.corpus_documents(settings.index_spec)
    changed = dataclasses.replace(docs[0], raw=docs[0].raw + "\nЖаңа сөйлем қосылды.")
    rows = document_rows([changed], emb, settings.chunking)
    client_class = type(store._call(lambda c: c))  # pymilvus's MilvusClient
    real_upsert = client_class.upsert

    def cut_before_the_record(self: Any, name: str, data: Any, **kw: Any) -> Any:
        if name.endswith("_documents"):
            raise RuntimeError("killed before the document record was written")
        return real_upsert(self, name, data, **kw)

    # every client (the store retries once on a new one) dies at the same point
    monkeypatch.setattr(client_class, "upsert", cut_before_the_record)
    with pytest.raises(StoreUnreachable):
        store.write(rows)
    monkeypatch.undo()
    # the chunks of the new version are there, the record is not: not stored, so written again
    assert rows[0].doc_id not in store.stored({rows[0].doc_id: rows[0].sha256})
    assert docs[1].doc_id in store.stored({docs[1].doc_id: rows_sha(docs[1])})
    store.write(document_rows([docs[0]], emb, settings.chunking))  # the run started again
    assert _rows(store) == clean


def rows_sha(doc: Any) -> str:
    import hashlib

    return hashlib.sha256(doc.raw.encode()).hexdigest()


def test_bm25_statistics_on_one_replica_follow_a_document_added_through_another(
    tmp_path: Path,
) -> None:
    uri = str(tmp_path / "s.db")
    a = make_engine(_settings(tmp_path / "a", uri), embedder=HashEmbedder())
    b = make_engine(_settings(tmp_path / "b", uri), embedder=HashEmbedder())
    seed_chunk = b.index.chunks[0]
    query = " ".join(seed_chunk.text.split()[:12])
    before = dict(b.index.lexical.search(query, 1000))
    row = b.index.chunks.index(seed_chunk)
    assert before[row] > 0
    # A adds a document sharing the query's words: their document frequency goes up, and
    # so the IDF (and the score of the seed chunk) on B must go down.
    library.add_document(a, "copy.txt", (AUYL + seed_chunk.text).encode())
    b.refresh()
    assert "copy.txt" in {d["doc_id"] for d in b.index.documents}
    after = dict(b.index.lexical.search(query, 1000))
    row = b.index.chunks.index(seed_chunk)
    assert after[row] < before[row]
    fresh = BM25Index.build(
        [f"{c.title}. {c.text}" for c in b.index.chunks], b.index.lexical.config
    )
    assert after[row] == pytest.approx(dict(fresh.search(query, 1000))[row])
    # and the upload is found through B
    hits = retrieve(b, "Алтынбек ауылы қашан құрылған?", 5)
    assert hits[0].chunk.doc_id == "copy.txt"
    library.remove_document(b, "copy.txt")
    a.refresh()
    assert "copy.txt" not in {d["doc_id"] for d in a.index.documents}
    assert after[row] < dict(a.index.lexical.search(query, 1000))[a.index.chunks.index(seed_chunk)]


def test_a_store_built_with_another_model_is_refused(tmp_path: Path) -> None:
    uri = str(tmp_path / "s.db")
    make_engine(_settings(tmp_path, uri), embedder=HashEmbedder())
    other = HashEmbedder(name="another-model")
    with pytest.raises(IndexMismatch, match=r"model: the store has 'hash-embedder'.*another-model"):
        open_any(_settings(tmp_path, uri).index_spec, other)
    wider = HashEmbedder(dim=32)
    with pytest.raises(IndexMismatch, match="dimension"):
        open_any(_settings(tmp_path, uri).index_spec, wider)


def test_an_empty_store_without_a_corpus_says_how_to_fill_it(tmp_path: Path) -> None:
    spec = _settings(tmp_path, str(tmp_path / "s.db")).index_spec.replace(corpus=None)
    with pytest.raises(IndexUnavailable, match="kazrag index --store"):
        open_any(spec, HashEmbedder())


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kazrag.cli", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


# A child process builds a store with the hash embedder (a Lite file stays locked by the
# process that opened it, so the CLI below must not share this test's process).
_BUILD = """
import sys
from pathlib import Path
from rag.pipeline import make_engine
from rag.settings import Settings
from tests.fakes import HashEmbedder
root = Path(sys.argv[1])
make_engine(Settings(corpus=root / "corpus", index=root / "index", uploads=None,
                     store=str(root / "s.db")), embedder=HashEmbedder())
"""


@pytest.mark.integration
def test_the_cli_refuses_a_store_of_another_model_with_one_clear_line(tmp_path: Path) -> None:
    _corpus(tmp_path)
    uri = str(tmp_path / "s.db")
    subprocess.run(
        [sys.executable, "-c", _BUILD, str(tmp_path)], cwd=PROJECT_ROOT, check=True, timeout=300
    )
    proc = _cli("search", "Қордай", "--store", uri)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "was built with other settings" in proc.stderr
    assert "hash-embedder" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.integration
def test_a_lite_file_open_in_another_process_is_a_clear_error(tmp_path: Path) -> None:
    uri = str(tmp_path / "s.db")
    engine = make_engine(_settings(tmp_path, uri), embedder=HashEmbedder())
    assert engine.index.chunks  # this process holds the file
    proc = _cli("search", "Қордай", "--store", uri)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "only one process may open a Milvus Lite file" in proc.stderr
    assert "milvus-lite server" in proc.stderr


# --- the real model: the same top-5 on FAISS and on Milvus ---------------------------------


@pytest.fixture(scope="module")
def seed_engines(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """The seed index in a folder (FAISS) and the same index copied into Milvus Lite."""
    root = tmp_path_factory.mktemp("parity")
    folder_settings = from_env(corpus=SEEDS).replace(uploads=None)
    try:
        index = load_index(DEFAULT_INDEX)  # `make index` built it; read only
        folder_settings = folder_settings.replace(index=DEFAULT_INDEX)
    except IndexUnavailable:
        folder_settings = folder_settings.replace(index=root / "seeds")
        index = None
    faiss_engine = make_engine(folder_settings)
    index = index or faiss_engine.index
    uri = str(root / "seeds.db")
    milvus_settings = folder_settings.replace(store=uri, index=root / "unused")
    migrate(index, milvus_settings.index_spec)
    milvus_engine = make_engine(milvus_settings, embedder=faiss_engine.embedder)
    return faiss_engine, milvus_engine


@pytest.mark.model
def test_faiss_and_milvus_give_the_same_top5_on_the_question_set(seed_engines: Any) -> None:
    faiss_engine, milvus_engine = seed_engines
    questions = [
        json.loads(line)["question"]
        for line in (SEEDS / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    assert len(questions) >= 20
    assert len(milvus_engine.index.chunks) == len(faiss_engine.index.chunks)
    for q in questions:
        prep = prepare_question(faiss_engine, q)
        qv = faiss_engine.embedder.embed_queries([prep.query])[0]
        want = retrieve(faiss_engine, prep.query, 5, qv, lexical_query=prep.lexical)
        got = retrieve(milvus_engine, prep.query, 5, qv, lexical_query=prep.lexical)
        assert [h.chunk.chunk_id for h in got] == [h.chunk.chunk_id for h in want], q
        assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-4), q


@pytest.mark.model
def test_faiss_and_milvus_compose_the_same_answers(seed_engines: Any) -> None:
    from rag.pipeline import answer

    faiss_engine, milvus_engine = seed_engines
    for q in (
        "HAQ қозғалысы Қордай оқиғасынан кейін Қазақстан халқы ассамблеясының қызметін қалай бағалады?",
        "Түймебаев Қордайдағы жанжалдың қандай үш себебін атады?",
    ):
        want, got = answer(q, engine=faiss_engine), answer(q, engine=milvus_engine)
        assert got.answer == want.answer
        assert [c.to_json() for c in got.citations] == [c.to_json() for c in want.citations]
