"""Faults: a damaged or mismatched index, a build killed mid-run, a language model that fails.

Each case ends in a clear message and a working system: an unusable index is rebuilt from the
corpus its manifest names (at start-up, or by ``kazrag index``); a ``kill -9`` during a build
leaves the previous index loadable and searching exactly as before; a language-model endpoint
that is down, slow, dribbling or talking nonsense costs a bounded wait and yields the
evidence-first answer with a note. Plumbing runs on the hash embedder; processes and servers
are real and stay on loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

import rag.llm as llm
from kazrag.cli import main
from rag.index import (
    IndexMismatch,
    IndexMissing,
    IndexUnavailable,
    build_index,
    load_index,
    read_manifest,
)
from rag.pipeline import Engine, answer, make_engine, stream_answer
from rag.schema import Answer
from rag.settings import Settings
from rag.sources import load_corpus
from tests.conftest import ROOT, SEEDS
from tests.fakes import HashEmbedder
from tests.helpers import SEED_FILES, free_port, running_server, small_engine

QUESTION = "Жансейіт Түймебаев Қордай оқиғасының қандай себептерін атады?"
PROBES = ("Қордай оқиғасы", "HAQ қозғалысы сайлау", "Қазақстан халқы ассамблеясы")


def _settings(root: Path, **overrides: Any) -> Settings:
    corpus = root / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for name in SEED_FILES:
        shutil.copy(SEEDS / name, corpus / name)
    return Settings(
        corpus=corpus, index=root / "index", uploads=None, abstain_threshold=-1.0
    ).replace(**overrides)


def _ranking(engine: Engine) -> list[list[tuple[str, float]]]:
    """What the index answers to a few probe queries: chunk ids and rounded scores."""
    return [
        [(h.chunk.chunk_id, round(h.score, 5)) for h in engine.retriever.search(q, 5)]
        for q in PROBES
    ]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


# --- a damaged, missing or mismatched index is rebuilt at start-up --------------------------


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _cut_inside_a_character(path: Path) -> None:
    """Cut the manifest after the first byte of a multi-byte UTF-8 character (deterministic)."""
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["note"] = "Қазақ"  # a Kazakh string makes sure a multi-byte character is there
    data = json.dumps(manifest, ensure_ascii=False).encode("utf-8")
    lead = next(i for i, b in enumerate(data) if b >= 0xC0)
    path.write_bytes(data[: lead + 1])


def _set_manifest(folder: Path, **changes: Any) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.update(changes)
    path.write_text(json.dumps(manifest), encoding="utf-8")


DAMAGE = {
    "folder deleted": lambda f: shutil.rmtree(f),
    "manifest deleted": lambda f: (f / "manifest.json").unlink(),
    "manifest truncated": lambda f: _truncate(f / "manifest.json"),
    "manifest cut inside a character": lambda f: _cut_inside_a_character(f / "manifest.json"),
    "manifest bad bytes": lambda f: (f / "manifest.json").write_bytes(b'{"model": "\xff\xfe"}'),
    "manifest not an object": lambda f: (f / "manifest.json").write_text("[1, 2, 3]"),
    "manifest wrong types": lambda f: _set_manifest(f, n_chunks="many", dimension=True),
    "chunks.jsonl truncated": lambda f: _truncate(f / "chunks.jsonl"),
    "chunks.jsonl emptied": lambda f: (f / "chunks.jsonl").write_text(""),
    "vectors.npy truncated": lambda f: _truncate(f / "vectors.npy"),
    "vectors.faiss zero bytes": lambda f: (f / "vectors.faiss").write_bytes(b""),
    "sentences.npy truncated": lambda f: _truncate(f / "sentences.npy"),
    "sentences.json deleted": lambda f: (f / "sentences.json").unlink(),
    "lexical index deleted": lambda f: shutil.rmtree(f / "lexical"),
    "another model": lambda f: _set_manifest(f, model="some-other-model", dimension=384),
    "another format version": lambda f: _set_manifest(f, format_version=99),
    "another chunk count": lambda f: _set_manifest(f, n_chunks=3),
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[list[tuple[str, float]]]:
    """The rankings of a freshly built index: every rebuilt one must give exactly these."""
    return _ranking(make_engine(_settings(tmp_path_factory.mktemp("ref")), HashEmbedder()))


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_unusable_index_is_rebuilt_at_startup(
    tmp_path: Path, damage: str, reference: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    make_engine(settings, HashEmbedder())
    DAMAGE[damage](settings.index)
    with pytest.raises(IndexUnavailable):  # the damage is real: loading as is fails
        load_index(settings.index, "hash-embedder", settings.chunking)

    with caplog.at_level(logging.WARNING, logger="rag.index"):
        engine = make_engine(settings, HashEmbedder())
    messages = [r.getMessage() for r in caplog.records if r.name == "rag.index"]
    # One clear line: what is wrong and where the rebuild comes from.
    assert any("rebuilding it from" in m and str(settings.corpus) in m for m in messages)
    assert _ranking(engine) == reference
    again = load_index(settings.index, "hash-embedder", settings.chunking)
    assert again.manifest["n_chunks"] == len(again.chunks) == len(engine.index.chunks)
    assert answer(QUESTION, engine=engine).citations


def test_index_built_with_other_chunking_is_rebuilt(tmp_path: Path, reference: Any) -> None:
    from rag.chunking import ChunkingConfig

    settings = _settings(tmp_path)
    make_engine(settings.replace(chunking=ChunkingConfig(500, 800, 0)), HashEmbedder())
    with pytest.raises(IndexMismatch, match="chunking"):
        load_index(settings.index, "hash-embedder", settings.chunking)
    engine = make_engine(settings, HashEmbedder())
    assert engine.index.manifest["chunking"] == settings.chunking.to_json()
    assert _ranking(engine) == reference


def test_unusable_index_without_its_corpus_is_a_clear_error(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    make_engine(settings, HashEmbedder())
    _truncate(settings.index / "chunks.jsonl")
    shutil.rmtree(settings.corpus)
    with pytest.raises(IndexMissing, match="not available to rebuild it from"):
        make_engine(settings, HashEmbedder())


# --- the CLI: one clear line, and `kazrag index` rebuilds -----------------------------------


@pytest.fixture()
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI builds make_embedder(settings.model, settings.backend): use the hash embedder
    under that name, so the CLI runs its real code paths without loading the model."""
    import rag.embedding
    import rag.pipeline

    def factory(model: str, *args: object, **kwargs: object) -> HashEmbedder:
        return HashEmbedder(name=model)

    monkeypatch.setattr(rag.embedding, "make_embedder", factory)
    monkeypatch.setattr(rag.pipeline, "make_embedder", factory)


def _cli_args(settings: Settings) -> list[str]:
    return ["--corpus", str(settings.corpus), "--index", str(settings.index)]


def test_cli_search_on_a_damaged_index_says_so_and_rebuilds(
    tmp_path: Path,
    fake_model: None,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = _settings(tmp_path)
    assert main(["index", *_cli_args(settings), "--quiet"]) == 0
    _truncate(settings.index / "vectors.npy")
    capsys.readouterr()
    with caplog.at_level(logging.WARNING):
        code = main(["search", "Қордай оқиғасы", "-k", "2", "--json", *_cli_args(settings)])
    assert code == 0
    assert len(json.loads(capsys.readouterr().out)) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("damaged" in w and "rebuilding it from" in w for w in warnings), warnings
    assert load_index(settings.index, settings.model, settings.chunking).chunks


def test_kazrag_index_rebuilds_a_damaged_index(
    tmp_path: Path, fake_model: None, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path)
    assert main(["index", *_cli_args(settings), "--quiet"]) == 0
    before = read_manifest(settings.index)["n_chunks"]
    (settings.index / "vectors.faiss").write_bytes(b"garbage")
    _set_manifest(settings.index, model="another-model")
    capsys.readouterr()
    assert main(["index", *_cli_args(settings), "--quiet"]) == 0
    assert f"{before} chunks" in capsys.readouterr().out
    index = load_index(settings.index, settings.model, settings.chunking)
    assert len(index.chunks) == before == index.dense.count()


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "kazrag.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env=env,
    )


@pytest.mark.integration
def test_cli_unusable_index_is_one_line_without_traceback(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    make_engine(settings, HashEmbedder())
    _truncate(settings.index / "chunks.jsonl")
    shutil.rmtree(settings.corpus)  # nothing to rebuild it from
    proc = _run_cli("search", "Қордай", "--index", str(settings.index))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith("kazrag search: error:")
    assert "not available to rebuild it from" in lines[-1]


# --- a build killed mid-run leaves the previous index intact ---------------------------------

CHILD = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {root!r})
    from pathlib import Path
    import rag.index as index
    from rag.index import build_index
    from rag.sources import load_corpus
    from rag.stores.faiss import FaissStore
    from tests.fakes import HashEmbedder

    stage = sys.argv[1]
    corpus, folder = Path(sys.argv[2]), Path(sys.argv[3])

    def stall(label):
        print(label, flush=True)
        time.sleep(120)  # killed long before this ends

    class Slow(HashEmbedder):
        def embed_passages(self, texts, show_progress=False):
            if stage == "embedding":
                stall("EMBEDDING")
            return super().embed_passages(texts, show_progress)

    if stage == "writing":  # the temporary folder is half written
        real_save = FaissStore.save
        def save(self, path):
            real_save(self, path)
            stall("WRITING")
        FaissStore.save = save
    if stage == "swapping":  # between the two renames: the index folder is set aside
        real_replace = os.replace
        def replace(a, b):
            real_replace(a, b)
            if ".old-" in str(b):
                stall("SWAPPING")
        index.os.replace = replace

    build_index(load_corpus(corpus), folder, Slow(), corpus=corpus)
    print("FINISHED", flush=True)
    """
)


def _kill_at(script: Path, stage: str, corpus: Path, folder: Path, timeout: float = 60) -> int:
    """Run the build in a child process, SIGKILL it when it reports ``stage``; its pid."""
    proc = subprocess.Popen(
        [sys.executable, str(script), stage, str(corpus), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    watchdog = threading.Timer(timeout, proc.kill)  # bounded even if the child never reports
    watchdog.start()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()  # the child prints exactly one marker
        assert watchdog.is_alive(), "the child build did not reach its stage in time"
        assert line == stage.upper(), (line, proc.stderr.read() if proc.stderr else "")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    return proc.pid


@pytest.mark.integration
@pytest.mark.parametrize("stage", ["embedding", "writing", "swapping"])
def test_kill_during_a_build_leaves_the_previous_index_intact(tmp_path: Path, stage: str) -> None:
    settings = _settings(tmp_path)
    engine = make_engine(settings, HashEmbedder())
    before = _ranking(engine)
    manifest = (settings.index / "manifest.json").read_bytes()
    # A changed corpus: the new build has something to embed, so it is slow where it stalls.
    (settings.corpus / "жаңа.txt").write_text(
        "Жаңа құжат. Бұл құжатта Қордай оқиғасы туралы жаңа мәлімет бар.\n" * 40,
        encoding="utf-8",
    )
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT)), encoding="utf-8")

    pid = _kill_at(script, stage, settings.corpus, settings.index)

    if stage == "swapping":  # the kill hit between the renames: the index is set aside
        assert not settings.index.exists()
        assert f".index.old-{pid}" in _leftovers(settings.index)
    elif stage == "writing":
        assert f".index.tmp-{pid}" in _leftovers(settings.index)
    # The previous index loads (restored if it was set aside) and answers exactly as before.
    index = load_index(settings.index, "hash-embedder", settings.chunking)
    assert (settings.index / "manifest.json").read_bytes() == manifest
    reloaded = make_engine(settings.replace(corpus=tmp_path / "gone"), HashEmbedder())
    assert reloaded.index.manifest == index.manifest
    assert _ranking(reloaded) == before

    # The next build succeeds and sweeps what the dead process left behind.
    rebuilt = build_index(
        load_corpus(settings.corpus), settings.index, HashEmbedder(), corpus=settings.corpus
    )
    assert "жаңа.txt" in {d["doc_id"] for d in rebuilt.documents}
    assert _leftovers(settings.index) == []


def test_leftovers_of_live_processes_are_not_touched(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    make_engine(settings, HashEmbedder())
    # A build running in another live process (this test's parent, say) keeps its folder.
    live = settings.index.parent / f".index.tmp-{os.getppid()}"
    live.mkdir()
    build_index(load_corpus(settings.corpus), settings.index, HashEmbedder())
    assert live.is_dir()


@pytest.mark.model
@pytest.mark.integration
def test_kill_kazrag_index_with_the_real_model(tmp_path: Path) -> None:
    """`kazrag index` itself, killed while the real model embeds: the old index still works."""
    from rag.embedding import DEFAULT_MODEL, SentenceTransformerEmbedder

    seeds_index = ROOT / "index" / "seeds"
    if not (seeds_index / "manifest.json").is_file():
        pytest.skip("index/seeds is not built (make index)")
    corpus, folder = tmp_path / "corpus", tmp_path / "seeds"
    shutil.copytree(SEEDS, corpus)
    shutil.copytree(seeds_index, folder)
    embedder = SentenceTransformerEmbedder(DEFAULT_MODEL)
    old = load_index(folder, DEFAULT_MODEL)
    qv = embedder.embed_queries([PROBES[0]])
    before = old.dense.search(qv, 5)
    (corpus / "жаңа.txt").write_text(
        "".join(f"{i}-сөйлем: Қордай ауданында жаңа мектеп ашылды. " for i in range(400)),
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kazrag.cli",
            "index",
            "--corpus",
            str(corpus),
            "--index",
            str(folder),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 300
        seen = ""
        while "Batches" not in seen:  # the progress bar: embedding has started
            assert time.monotonic() < deadline and proc.poll() is None, seen[-500:]
            seen += proc.stderr.read(1)
        time.sleep(2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    after = load_index(folder, DEFAULT_MODEL)
    assert after.manifest == old.manifest
    assert after.dense.search(qv, 5) == before


# --- the language model: down, slow, dribbling, garbage --------------------------------------


def _chunk(text: str) -> str:
    body = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def fake_llm_app() -> FastAPI:
    """An OpenAI-compatible endpoint whose behaviour is chosen by the requested model name."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        mode = (await request.json()).get("model")
        if mode == "slow":  # says nothing for much longer than the client's timeout
            for _ in range(150):  # 30 s, or until the client gives up
                if await request.is_disconnected():
                    break
                await asyncio.sleep(0.2)
            return JSONResponse({})
        if mode == "http500":
            return JSONResponse({"error": {"message": "internal failure"}}, status_code=500)
        if mode == "garbage-json":
            return PlainTextResponse("{this is not json", media_type="application/json")
        if mode == "garbage-sse":

            async def broken() -> Iterator[str]:  # type: ignore[misc]
                yield "data: {not json at all\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(broken(), media_type="text/event-stream")
        if mode == "empty":

            async def empty() -> Iterator[str]:  # type: ignore[misc]
                yield "data: [DONE]\n\n"

            return StreamingResponse(empty(), media_type="text/event-stream")
        if mode == "nonsense":  # fluent text with no citation at all

            async def nonsense() -> Iterator[str]:  # type: ignore[misc]
                for word in ["Марс", "планетасында", "алма", "ағаштары", "көп", "өседі", "."]:
                    yield _chunk(word + " ")
                yield "data: [DONE]\n\n"

            return StreamingResponse(nonsense(), media_type="text/event-stream")
        if mode == "drip":  # a token every 0.5 s for a minute: each read is within the timeout

            async def drip() -> Iterator[str]:  # type: ignore[misc]
                for _ in range(120):
                    yield _chunk("бла ")
                    await asyncio.sleep(0.5)
                yield "data: [DONE]\n\n"

            return StreamingResponse(drip(), media_type="text/event-stream")
        return JSONResponse({"error": {"message": f"unknown mode {mode}"}}, status_code=400)

    return app


LLM_TIMEOUT = 2.0
# "No hang": generous, but far below what an unbounded wait would take (the slow endpoint
# sleeps 30 s, the dribbling one streams for 60 s).
BOUND = 3 * LLM_TIMEOUT + 10


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[str]:
    with running_server(fake_llm_app()) as url:
        yield f"{url}/v1"


@pytest.fixture(scope="module")
def llm_engine(tmp_path_factory: pytest.TempPathFactory, fake_llm: str) -> Engine:
    return small_engine(
        tmp_path_factory.mktemp("llm"),
        generator="openai",
        llm_base_url=fake_llm,
        llm_model="nonsense",
        llm_timeout=LLM_TIMEOUT,
    )


def _with(engine: Engine, **changes: Any) -> Engine:
    """The same model and index with other LLM settings (as the chat does per request)."""
    return dataclasses.replace(engine, settings=engine.settings.replace(**changes))


FAULTS = {
    "slow": llm.NOTE_UNAVAILABLE.split("(")[0],
    "http500": llm.NOTE_UNAVAILABLE.split("(")[0],
    "garbage-json": llm.NOTE_UNAVAILABLE.split("(")[0],
    "garbage-sse": llm.NOTE_UNAVAILABLE.split("(")[0],
    "empty": llm.NOTE_UNAVAILABLE.split("(")[0],
    "drip": llm.NOTE_UNAVAILABLE.split("(")[0],
    "nonsense": llm.NOTE_FALLBACK,
}


@pytest.mark.integration
@pytest.mark.parametrize("mode", list(FAULTS))
def test_failing_language_model_falls_back_with_a_note(llm_engine: Engine, mode: str) -> None:
    engine = _with(llm_engine, llm_model=mode)
    reference = answer(QUESTION, engine=_with(llm_engine, generator="extractive"))
    t0 = time.monotonic()
    ans = answer(QUESTION, engine=engine)
    took = time.monotonic() - t0
    assert took < BOUND, f"{mode}: {took:.1f} s"
    assert ans.note is not None and ans.note.startswith(FAULTS[mode])
    # The evidence-first answer, cited, exactly as without a language model.
    assert ans.answer == reference.answer and ans.citations == reference.citations
    assert not ans.abstained and ans.citations


@pytest.mark.integration
def test_closed_port_falls_back_at_once(llm_engine: Engine) -> None:
    engine = _with(llm_engine, llm_base_url=f"http://127.0.0.1:{free_port()}/v1")
    t0 = time.monotonic()
    ans = answer(QUESTION, engine=engine)
    assert time.monotonic() - t0 < BOUND
    assert ans.note is not None and "unavailable" in ans.note and ans.citations


@pytest.mark.integration
def test_streamed_fallback_ends_with_the_checked_answer(llm_engine: Engine) -> None:
    items = list(stream_answer(QUESTION, engine=_with(llm_engine, llm_model="drip")))
    final = items[-1]
    assert isinstance(final, Answer) and final.note and final.citations
    # Nothing of the unchecked model text was streamed: the pieces are the fallback answer.
    assert "".join(items[:-1]) == final.answer


@pytest.mark.integration
def test_the_note_reaches_every_door(llm_engine: Engine) -> None:
    """API (both routes, streamed or not) and the chat show the fallback note."""
    from fastapi.testclient import TestClient

    from rag import api
    from tests.helpers import sse_events, streamed_content
    from ui.render import render_answer

    engine = _with(llm_engine, llm_model="http500")
    with TestClient(api.create_app(engine.settings, engine, token="")) as c:
        body = c.post("/api/ask", json={"question": QUESTION}).json()
        assert "unavailable" in body["note"]
        msgs = [{"role": "user", "content": QUESTION}]
        done = c.post("/v1/chat/completions", json={"messages": msgs}).json()
        assert "unavailable" in done["choices"][0]["message"]["content"]
        streamed = c.post("/v1/chat/completions", json={"messages": msgs, "stream": True})
        assert "unavailable" in streamed_content(sse_events(streamed.text))
    ans = answer(QUESTION, engine=engine)
    assert 'class="kz-note"' in render_answer(ans, 0) and "unavailable" in render_answer(ans, 0)


def test_vectors_are_never_loaded_with_pickle(tmp_path: Path) -> None:
    """A vectors file holding a pickled object array is refused as damaged, not unpickled."""
    settings = _settings(tmp_path)
    make_engine(settings, HashEmbedder())
    np.save(settings.index / "vectors.npy", np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(IndexMissing, match="damaged"):
        load_index(settings.index, "hash-embedder")
