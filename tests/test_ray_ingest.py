"""Distributed ingestion: per-document rows, the staged index-folder sink, and a Ray cluster.

The plumbing tests use the hash embedder; the cluster tests start two Ray nodes as separate
processes on loopback (tests/helpers.py: ``loopback_cluster``), run the ingestion driver in a
subprocess (so that it can be killed), and count the encoder's calls in a log file because
the encoder runs in Ray's worker processes. One test runs ``kazrag index --ray local`` with the
real model.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from rag.chunking import ChunkingConfig
from rag.index import build_index, load_index, search_text
from rag.ingest import (
    IndexMeta,
    assemble_index,
    corpus_paths,
    document_rows,
    documents_from,
    extract_file,
    rows_from_record,
    rows_to_record,
)
from rag.lexical import LexicalConfig
from rag.ray_cluster import descendants, on_loopback
from rag.sinks.index_folder import IndexFolderSink
from rag.sources import load_corpus
from tests.conftest import ROOT
from tests.fakes import HashEmbedder, counted
from tests.helpers import loopback_cluster, split_corpus

INDEX_FILES = ("chunks.jsonl", "sentences.json")
NAMESPACE = ("unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"')


def _meta(embedder: HashEmbedder, corpus: Path | None = None) -> IndexMeta:
    return IndexMeta(
        model=embedder.name,
        backend="torch",
        dimension=embedder.dim,
        chunking=ChunkingConfig(),
        lexical=LexicalConfig(),
        corpus=corpus,
    )


def _same_index(a: Path, b: Path) -> None:
    """Two index folders hold the same chunks, sentences, vectors and document records."""
    for name in INDEX_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for name in ("vectors.npy", "sentences.npy"):
        np.testing.assert_array_equal(np.load(a / name), np.load(b / name))
    ma, mb = (json.loads((f / "manifest.json").read_text()) for f in (a, b))
    for key in ("documents", "corpus_hash", "n_chunks", "n_sentences", "model", "chunking"):
        assert ma[key] == mb[key], key


def _rows_of(corpus: Path, embedder: HashEmbedder) -> list:
    files = [extract_file(p) for p in corpus_paths(corpus)]
    vocabulary = set().union(*(f.words for f in files))
    return document_rows(documents_from(files, vocabulary), embedder)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return split_corpus(tmp_path_factory.mktemp("corpus"), pieces=14)


@pytest.fixture(scope="module")
def local_index(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("local") / "index"
    build_index(load_corpus(corpus), folder, HashEmbedder(), corpus=corpus)
    return folder


# --- plumbing, no cluster --------------------------------------------------------------------


def test_read_in_two_passes_gives_the_documents_of_a_local_read(corpus: Path) -> None:
    files = [extract_file(p) for p in corpus_paths(corpus)]
    vocabulary = set().union(*(f.words for f in files))
    assert documents_from(files, vocabulary) == load_corpus(corpus)


def test_rows_assembled_give_the_local_build_byte_for_byte(
    corpus: Path, local_index: Path, tmp_path: Path
) -> None:
    embedder = HashEmbedder()
    rows = _rows_of(corpus, embedder)
    assert [r.doc_id for r in rows] == [p.name for p in corpus_paths(corpus)]
    for r in rows:  # the rows' own invariants: vectors of search_text and of each sentence
        np.testing.assert_array_equal(
            r.chunk_vectors, embedder.embed_passages([search_text(c) for c in r.chunks])
        )
        assert len({(s.start, s.end) for s in r.sentences}) == len(r.sentences)
    assemble_index(rows, tmp_path / "index", _meta(embedder, corpus))
    _same_index(local_index, tmp_path / "index")
    assert load_index(tmp_path / "index").manifest["n_chunks"] > 14


def test_rows_survive_the_trip_through_plain_columns(corpus: Path) -> None:
    embedder = HashEmbedder()
    for r in _rows_of(corpus, embedder)[:3]:
        back = rows_from_record(rows_to_record(r), embedder.dim)
        assert back.chunks == r.chunks and back.sentences == r.sentences
        assert back.record == r.record and back.extracted == r.extracted
        np.testing.assert_array_equal(back.chunk_vectors, r.chunk_vectors)
        np.testing.assert_array_equal(back.sentence_vectors, r.sentence_vectors)


def test_sink_resumes_upserts_and_reuses_the_current_index(
    corpus: Path, local_index: Path, tmp_path: Path
) -> None:
    embedder = HashEmbedder()
    rows = _rows_of(corpus, embedder)
    docs = {r.doc_id: r.sha256 for r in rows}
    folder = tmp_path / "index"
    sink = IndexFolderSink(folder, _meta(embedder, corpus))
    assert sink.stored(docs) == set()
    sink.write(rows[:5])
    sink.write(rows[:2])  # an upsert: the same rows again change nothing
    # A document cut off mid-write (vectors there, record not yet) is not stored.
    half = rows[5]
    sink.write([half])
    next(sink.staging.glob(f"*.{half.sha256}.json")).unlink()
    again = IndexFolderSink(folder, _meta(embedder, corpus))  # a restarted run
    assert again.stored(docs) == {r.doc_id for r in rows[:5]}
    with pytest.raises(RuntimeError, match="no stored rows"):
        again.finish(docs)
    again.write(rows[5:])
    again.finish(docs)
    _same_index(local_index, folder)
    assert not again.staging.exists()
    # Over a built index, unchanged documents are stored already and carried over as they are;
    # a changed one is not, and a removed one is left out of the next index.
    changed = corpus_paths(corpus)[0]
    docs2 = dict(docs, **{changed.name: hashlib.sha256(b"other").hexdigest()})
    third = IndexFolderSink(folder, _meta(embedder, corpus))
    assert third.stored(docs2) == set(docs) - {changed.name}
    third.remove([rows[1].doc_id])
    assert rows[1].doc_id not in third.stored(docs)
    third.write([rows[1]])
    third.finish(docs)
    _same_index(local_index, folder)
    # Another model's index is not reused.
    other = IndexFolderSink(folder, _meta(HashEmbedder(name="other-model"), corpus))
    assert other.stored(docs) == set()


# --- a two-node Ray cluster on loopback --------------------------------------------------------

DRIVER = textwrap.dedent(
    """
    import functools, json, sys
    from pathlib import Path
    from rag.ingest import IndexMeta, corpus_paths
    from rag.chunking import ChunkingConfig
    from rag.lexical import LexicalConfig
    from rag.ray_ingest import RayOptions, ingest
    from rag.sinks.index_folder import IndexFolderSink
    from tests.fakes import CountingEmbedder

    address, corpus, folder, log, delay, workers = sys.argv[1:7]
    meta = IndexMeta("hash-embedder", "torch", 64, ChunkingConfig(), LexicalConfig(),
                     corpus=Path(corpus))
    sink = IndexFolderSink(Path(folder), meta)
    result = ingest(
        corpus_paths(Path(corpus)), sink,
        functools.partial(CountingEmbedder, log=log, delay=float(delay)), 64,
        options=RayOptions(address=address, workers=int(workers), batch_size=2, write_batch=1),
    )
    import ray
    nodes = [n for n in ray.nodes() if n["Alive"]]
    sink.finish(result.documents)
    print(json.dumps({"stored": result.already_stored, "written": result.written,
                      "nodes": len(nodes)}))
    """
)


def _driver(cluster, corpus: Path, folder: Path, log: Path, delay: float = 0.0):
    """The ingestion driver, in the cluster's network namespace (where 127.0.0.1 reaches it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", DRIVER, cluster.address, str(corpus), str(folder), str(log)]
    return subprocess.Popen(
        cluster.command([*args, str(delay), "2"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(ROOT),
    )


def _finish(proc: subprocess.Popen, timeout: float = 300) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cluster():
    with loopback_cluster() as c:
        yield c


@pytest.mark.integration
def test_two_nodes_ingest_the_rows_of_a_local_build_on_loopback_only(
    cluster, corpus: Path, local_index: Path, tmp_path: Path
) -> None:
    log = tmp_path / "encoded.log"
    proc = _driver(cluster, corpus, tmp_path / "index", log, delay=0.3)
    # While the run goes on: every listener of the cluster and of the driver is on loopback.
    seen: list[tuple[str, int]] = []
    while proc.poll() is None:
        seen += cluster.listeners()
        seen += cluster.listeners(descendants([proc.pid]))
        time.sleep(0.5)
    report = _finish(proc)
    assert report == {"stored": 0, "written": 14, "nodes": 2}
    _same_index(local_index, tmp_path / "index")
    assert len(seen) >= 6, seen  # GCS, two raylets, object managers, workers, the driver…
    assert [a for a, _ in seen if not on_loopback(a)] == []
    assert all(a.startswith(("127.", "::1/")) for a in cluster.interfaces())
    lines = counted(str(log))
    assert len({pid for pid, _ in lines}) == 2  # two encoder actors, one per node


def _texts(index: Path, doc_ids: set[str]) -> set[str]:
    """Hashes of every text the encoder sees for these documents (chunks and sentences)."""
    idx = load_index(index)
    texts = {search_text(c) for c in idx.chunks if c.doc_id in doc_ids}
    sentences = json.loads((index / "sentences.json").read_text())
    texts |= {t for d, _, _, t in sentences if d in doc_ids}
    return {hashlib.sha1(t.encode()).hexdigest() for t in texts}


@pytest.mark.integration
def test_a_killed_worker_and_a_killed_run_finish_with_the_clean_rows(
    cluster, corpus: Path, local_index: Path, tmp_path: Path
) -> None:
    folder, log = tmp_path / "index", tmp_path / "first.log"
    staging = folder.parent / f".{folder.name}.rows"
    proc = _driver(cluster, corpus, folder, log, delay=0.4)
    try:
        deadline = time.monotonic() + 180
        while not counted(str(log)) and time.monotonic() < deadline:
            time.sleep(0.1)
        victim = counted(str(log))[0][0]
        os.kill(victim, signal.SIGKILL)  # an encoder actor dies mid-run: Ray restarts it
        while time.monotonic() < deadline and len(list(staging.glob("*.json"))) < 6:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.1)
        proc.kill()  # then the whole run dies (the driver; Ray ends its job's workers)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    first = counted(str(log))
    assert {pid for pid, _ in first} - {victim}, "no encoder worked after the kill"
    done = {json.loads(p.read_text())["doc_id"] for p in staging.glob("*.json")}
    assert 6 <= len(done) < 14
    all_docs = {p.name for p in corpus_paths(corpus)}
    # Started again: it finishes with exactly the rows of a clean run, and encodes only the
    # texts of the documents the first run had not stored.
    log2 = tmp_path / "second.log"
    report = _finish(_driver(cluster, corpus, folder, log2))
    assert report["stored"] == len(done) and report["written"] == 14 - len(done)
    _same_index(local_index, folder)
    again = {h for _, h in counted(str(log2))}
    assert again == _texts(local_index, all_docs - done)
    only_stored = _texts(local_index, done) - _texts(local_index, all_docs - done)
    assert only_stored and not (again & only_stored)


@pytest.mark.model
def test_cli_on_a_local_ray_gives_the_local_build_with_the_real_model(tmp_path: Path) -> None:
    corpus = split_corpus(tmp_path / "corpus", pieces=4)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kazrag = [sys.executable, "-m", "kazrag.cli", "index", "--corpus", str(corpus)]
    local = subprocess.run(
        [*kazrag, "--index", str(tmp_path / "local"), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert local.returncode == 0, local.stderr
    ray_dir = Path(f"/tmp/kzr-{os.getpid()}")  # Ray's sockets need a short path
    try:
        # In a private network namespace: a local Ray listens on every interface it sees, and
        # there it sees only loopback.
        run = subprocess.run(
            [
                *NAMESPACE,
                *kazrag,
                "--index",
                str(tmp_path / "ray"),
                "--ray",
                "local",
                "--workers",
                "1",
                "--ray-temp-dir",
                str(ray_dir),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
    finally:
        import shutil

        shutil.rmtree(ray_dir, ignore_errors=True)
    assert run.returncode == 0, run.stderr
    assert "Documents" in run.stderr and "chunks/s" in run.stderr  # the progress bar
    noise = [ln for ln in run.stderr.splitlines() if "INFO" in ln or "Running Dataset" in ln]
    assert noise == []
    a, b = tmp_path / "local", tmp_path / "ray"
    for name in INDEX_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for name in ("vectors.npy", "sentences.npy"):
        va, vb = np.load(a / name), np.load(b / name)
        # Batches are cut differently (per document, not per corpus): the same vectors up to
        # float rounding.
        assert va.shape == vb.shape
        assert float(np.min(np.sum(va * vb, axis=1))) > 0.9999


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ray", "127.0.0.1:{port}"], "no Ray head node answers at 127.0.0.1:"),
        (["--ray", "nonsense"], "--ray takes 'local' or the head node's host:port"),
        (["--ray", "local", "--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_cli_says_what_is_wrong_with_the_cluster_flags(
    flags: list[str], message: str, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from kazrag.cli import main
    from tests.helpers import free_port

    flags = [f.format(port=free_port()) for f in flags]
    code = main(["index", "--corpus", str(corpus), "--index", str(tmp_path / "i"), *flags])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "i").exists()
