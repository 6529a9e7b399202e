"""Bad input through every door (CLI, API, chat), and concurrent use of one engine.

Each bad input gets a clear message: the CLI exits non-zero with one line and no traceback, the
API answers 4xx with a JSON error, the chat shows a warning or a "not accepted" status. A
rejected upload changes nothing: corpus, uploads folder and index folder are byte-identical
afterwards. Questions answered while a document is being added stay well-formed, and the index
is consistent afterwards. Plumbing runs on the hash embedder (tests/fakes.py).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kazrag.cli import main
from rag import api, library
from rag.index import load_index
from rag.pipeline import Engine, answer
from rag.schema import Answer
from rag.settings import Settings
from tests.conftest import ROOT
from tests.fakes import HashEmbedder
from tests.helpers import (
    AUYL,
    SEED_FILES,
    _skeleton,
    chat_handlers,
    check_answer,
    make_pdf,
    small_engine,
    snapshot,
)

QUESTION = "HAQ қозғалысы Қордай оқиғасынан кейін не талап етті?"
HUGE = "сұрақ " * 33_334  # 200,004 characters
MARKER = re.compile(r"\[(\d+)\]")


# --- minimal bad files ----------------------------------------------------------------------


def blank_pdf() -> bytes:
    """A valid PDF whose page has no text layer (what a scan looks like to the extractor)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


CYRILLIC_RU = "Это документ в кодировке Windows-1251. Он написан по-русски.\n"
KAZAKH = "Қазақ тілі — мемлекеттік тіл. Ол түркі тілдерінің қыпшақ тобына жатады.\n"

# name, bytes, HTTP status, words of the message
BAD_UPLOADS: list[tuple[str, bytes, int, str]] = [
    ("empty.txt", b"", 422, "empty"),
    ("spaces.txt", b" \n\t\r\n ", 422, "empty"),
    ("binary.txt", bytes(range(256)) * 8, 422, "binary"),
    ("image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64, 422, "binary"),
    ("cp1251.txt", CYRILLIC_RU.encode("cp1251"), 422, "UTF-8"),
    ("kz1048.txt", KAZAKH.encode("kz1048"), 422, "UTF-8"),
    ("utf16-no-bom.txt", KAZAKH.encode("utf-16-le"), 422, "binary"),
    (
        "corrupt.pdf",
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n" + bytes(range(256)) * 8,
        422,
        "PDF",
    ),
    ("truncated.pdf", make_pdf(["Almaty is the largest city."])[:300], 422, "PDF"),
    ("scan.pdf", blank_pdf(), 422, "no text layer"),
    ("corrupt.docx", b"PK\x03\x04" + b"\x00" * 100, 422, "docx"),
    ("punctuation.txt", b"... --- !!! ???\n", 422, "no words"),
    ("program.exe", b"MZ\x90\x00", 415, "unsupported file type"),
    ("no-extension", b"text", 415, "unsupported file type"),
    ("trick.txt\x00.exe", b"text", 415, "unsupported file type"),
]


# --- the CLI ----------------------------------------------------------------------------------


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kazrag.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def _one_line_error(proc: subprocess.CompletedProcess[str], command: str, words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"kazrag {command}: error:") and words in lines[0]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("ask", ""), "the question is empty"),
        (("ask", "   \t  \n "), "the question is empty"),
        (("ask", "\x01\x02\x1b\x7f"), "the question is empty"),
        (("search", " "), "the question is empty"),
        # The OS refuses a single argument over 128 KiB, so 200,000 characters are tested
        # in-process below; 100,000 still goes through exec.
        (("ask", "x" * 100_000), "too long"),
        (("ask", "сұрақ", "--top-k", "0"), "top_k"),
        (("ask", "сұрақ", "--generator", "openai"), "needs KAZRAG_LLM_BASE_URL"),
    ],
)
def test_cli_bad_question_is_one_line(args: tuple[str, ...], words: str) -> None:
    _one_line_error(_run(*args), args[0], words)


@pytest.mark.parametrize(
    ("question", "words"), [(HUGE, "too long"), ("\x00", "empty"), ("\x00\x00 \x00", "empty")]
)
def test_cli_huge_or_nul_question_in_process(
    question: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A NUL cannot travel through exec() either; main() gets what a shell could never pass.
    assert main(["ask", question]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kazrag ask: error:") and words in err[0]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({}, "no readable documents"),
        ({"a.txt": b""}, "empty"),
        ({"a.txt": b"\x00\x01\x02 binary"}, "binary"),
        ({"a.txt": CYRILLIC_RU.encode("cp1251")}, "UTF-8"),
    ],
)
def test_cli_index_of_a_bad_corpus_is_one_line(
    tmp_path: Path, files: dict[str, bytes], words: str
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, data in files.items():
        (corpus / name).write_bytes(data)
    proc = _run("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"), "--quiet")
    _one_line_error(proc, "index", words)
    assert not (tmp_path / "index").exists()


@pytest.mark.integration
def test_cli_index_skips_a_bad_file_and_keeps_the_rest(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ok.txt").write_bytes(KAZAKH.encode())
    (corpus / "bad.md").write_bytes(KAZAKH.encode("kz1048"))
    proc = _run("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "skipped bad.md: not valid UTF-8" in proc.stderr
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text(encoding="utf-8"))
    assert [d["doc_id"] for d in manifest["documents"]] == ["ok.txt"]


@pytest.fixture()
def patched_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The CLI's get_engine returns a small hash-embedder engine."""
    import rag.pipeline

    engine = small_engine(tmp_path)
    monkeypatch.setattr(rag.pipeline, "get_engine", lambda settings: engine)
    return engine


def test_cli_batch_reports_bad_rows_and_answers_the_rest(
    tmp_path: Path, patched_engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {"id": "ok", "question": QUESTION},
        {"id": "empty", "question": ""},
        {"id": "spaces", "question": " \t "},
        {"id": "nul", "question": "\x00\x00"},
        {"id": "huge", "question": HUGE},
        {"id": "number", "question": 42},
        {"id": "html", "question": "<script>alert(1)</script> Қордай оқиғасы"},
    ]
    src = tmp_path / "q.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    out = tmp_path / "a.jsonl"
    assert main(["batch", "--in", str(src), "--out", str(out)]) == 0
    got = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert got["ok"]["citations"]
    assert "empty" in got["empty"]["error"] and "empty" in got["spaces"]["error"]
    assert "empty" in got["nul"]["error"] and "too long" in got["huge"]["error"]
    assert "string" in got["number"]["error"]
    assert got["html"]["question"].startswith("<script>")  # data, kept as text
    assert "2 answered, 5 rejected" in capsys.readouterr().err


def test_cli_chat_keeps_going_after_bad_lines(
    patched_engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = iter(["", "\x00\x01", HUGE, QUESTION, "exit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["chat"]) == 0
    out = capsys.readouterr().out
    assert "error: the question is too long" in out or "error: the question is empty" in out
    assert "[1]" in out and "Дереккөздер:" in out  # labels follow the answer's language


# --- the HTTP API -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return small_engine(tmp_path_factory.mktemp("reliability"))


@pytest.fixture()
def client(shared: Engine) -> Iterator[TestClient]:
    with TestClient(api.create_app(shared.settings, shared, token="")) as c:
        yield c


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"question": ""}, "question"),
        ({"question": "   \n\t  "}, "empty"),
        ({"question": "\x00"}, "empty"),
        ({"question": "\x00\x01\x02\x1b\x7f\u200b"}, "empty"),
        ({"question": HUGE}, "question"),
        ({"question": "с" * 2001}, "too long"),
        ({"question": 42}, "question"),
        ({"question": None}, "question"),
        ({"question": ["Қордай"]}, "question"),
        ({"question": {"text": "Қордай"}}, "question"),
        ({"question": "Қордай", "top_k": "5"}, "top_k"),
        ({"question": "Қордай", "top_k": True}, "top_k"),
        ({"question": "Қордай", "top_k": 2.5}, "top_k"),
        ({"question": "Қордай", "top_k": 10**30}, "top_k"),
        ({"question": "Қордай", "history": {"question": "a"}}, "history"),
        ({"question": "Қордай", "history": [42]}, "history"),
        ({"question": "Қордай", "history": [{"question": 1, "answer": 2}]}, "history"),
        ({"question": "Қордай", "history": [{"question": "q"}] * 51}, "history"),
        ({"question": "Қордай", "extra": 1}, "extra"),
    ],
)
def test_api_ask_bad_input_is_422_with_a_message(
    client: TestClient, body: dict[str, Any], words: str
) -> None:
    r = client.post("/api/ask", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert isinstance(error, str) and words in error


@pytest.mark.parametrize(
    ("content", "ctype"),
    [
        (b"{not json", "application/json"),
        (b'{"question": "unterminated', "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"null", "application/json"),
        (b'"just a string"', "application/json"),
        ('{"question": "Қордай"}'.encode() * 2, "application/json"),
        ('{"question": "Қордай"}'.encode(), "text/plain"),
        (b"question=%D2%9A%D0%BE%D1%80%D0%B4%D0%B0%D0%B9", "application/x-www-form-urlencoded"),
    ],
)
@pytest.mark.parametrize("path", ["/api/ask", "/api/search", "/v1/chat/completions"])
def test_api_malformed_bodies_are_4xx_json(
    client: TestClient, content: bytes, ctype: str, path: str
) -> None:
    r = client.post(path, content=content, headers={"Content-Type": ctype})
    assert 400 <= r.status_code < 500, r.text
    error = r.json()["error"]
    assert error["message"] if path.startswith("/v1") else error


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"messages": [{"role": "user", "content": 42}]}, "content"),
        ({"messages": [{"role": "user", "content": "Қордай"}], "stream": "yes"}, "stream"),
        ({"messages": [{"role": "user", "content": "Қордай"}], "top_k": "3"}, "top_k"),
        ({"messages": [{"role": "user", "content": HUGE}]}, "too long"),
        ({"messages": [{"role": "user", "content": "\x00 \x01"}]}, "empty"),
        ({"messages": [{"role": "hacker", "content": "x"}]}, "role"),
        ({"messages": {"role": "user", "content": "x"}}, "messages"),
    ],
)
def test_api_chat_completions_bad_input(
    client: TestClient, body: dict[str, Any], words: str
) -> None:
    for stream in (False, True):
        r = client.post("/v1/chat/completions", json={"stream": stream, **body})
        assert r.status_code == 422, r.text
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error" and words in err["message"]


def test_api_markup_and_control_characters_are_data(client: TestClient) -> None:
    question = '<img src=x onerror="alert(1)"> Қордай\x00 оқиғасы\x07 <b>қашан</b> болды?'
    r = client.post("/api/ask", json={"question": question})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    echoed = r.json()["question"]
    assert echoed.startswith('<img src=x onerror="alert(1)">')  # text, for the client to escape
    assert "\x00" not in echoed and "\x07" not in echoed


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("DELETE", "/api/documents/nope.txt", 404),
        ("DELETE", "/api/documents/..%2F..%2Fsettings.py", 404),
        ("DELETE", "/api/documents/%00.txt", 404),
        ("GET", "/api/nothing-here", 404),
        ("PUT", "/api/ask", 405),
        ("GET", "/v1/chat/completions", 405),
    ],
)
def test_api_unknown_documents_and_routes(
    client: TestClient, method: str, path: str, status: int
) -> None:
    r = client.request(method, path)
    assert r.status_code == status
    error = r.json()["error"]
    assert isinstance(error, (str, dict)) and error


@pytest.fixture()
def own(tmp_path: Path) -> Iterator[tuple[TestClient, Engine]]:
    engine = small_engine(tmp_path)
    with TestClient(api.create_app(engine.settings, engine, token="")) as c:
        yield c, engine


@pytest.mark.parametrize(("name", "data", "status", "words"), BAD_UPLOADS)
def test_api_rejected_upload_changes_nothing(
    own: tuple[TestClient, Engine], name: str, data: bytes, status: int, words: str
) -> None:
    client, engine = own
    before = snapshot(engine)
    r = client.post("/api/documents", files={"file": (name, data)})
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert snapshot(engine) == before


def test_api_100_mb_upload_is_refused_and_changes_nothing(
    own: tuple[TestClient, Engine],
) -> None:
    client, engine = own
    before = snapshot(engine)
    declared = str(100 * 1024 * 1024)
    r = client.post(
        "/api/documents",
        content=b"--x\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=x", "Content-Length": declared},
    )
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def body() -> Iterator[bytes]:  # chunked: no length to go by, the cap must stop it
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
        for _ in range(100):
            yield b"a" * (1 << 20)
        yield b"\r\n--x--\r\n"

    r = client.post(
        "/api/documents",
        content=body(),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 413 and "limit" in r.json()["error"]
    assert snapshot(engine) == before


def test_api_utf16_upload_is_accepted_as_text(own: tuple[TestClient, Engine]) -> None:
    client, engine = own
    r = client.post("/api/documents", files={"file": ("ауыл.txt", AUYL.encode("utf-16"))})
    assert r.status_code == 201, r.text
    saved = engine.settings.uploads / "ауыл.txt"  # type: ignore[operator]
    assert saved.read_bytes() == AUYL.encode()  # stored as UTF-8
    r = client.post("/api/ask", json={"question": "Алтынбек ауылының мектебін кім ашқан?"})
    assert r.json()["citations"][0]["doc_id"] == "ауыл.txt"


@pytest.mark.parametrize(
    "name",
    [
        "../../../../evil.txt",
        "..\\..\\evil.txt",
        "/etc/cron.d/evil.txt",
        ".evil.txt",
        "ev\x00il.txt",
    ],
)
def test_api_upload_names_cannot_leave_the_uploads_folder(
    own: tuple[TestClient, Engine], tmp_path: Path, name: str
) -> None:
    client, engine = own
    uploads = engine.settings.uploads
    assert uploads is not None
    # The raw name goes into the multipart header as is (httpx would percent-encode a NUL).
    header = f'Content-Disposition: form-data; name="file"; filename="{name}"'.encode()
    body = b"--x\r\n" + header + b"\r\n\r\n" + AUYL.encode() + b"\r\n--x--\r\n"
    r = client.post(
        "/api/documents", content=body, headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert r.status_code in (201, 400, 422), r.text
    if r.status_code == 201:
        doc_id = r.json()["document"]["doc_id"]
        assert re.fullmatch(r"[\w\-.]+", doc_id) and not doc_id.startswith(".")
        assert "\x00" not in doc_id and "/" not in doc_id and "\\" not in doc_id
        assert [p.name for p in uploads.iterdir()] == [doc_id]
    assert [p for p in tmp_path.rglob("*evil*") if p.parent != uploads] == []
    assert not any((d / "evil.txt").exists() for d in tmp_path.parents)
    assert not Path("/etc/cron.d/evil.txt").exists()


# --- the chat -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ui_fns(shared: Engine) -> dict[str, Callable[..., Any]]:
    return chat_handlers(shared)


@pytest.mark.parametrize(
    ("message", "warning"),
    [("", None), ("   \n ", None), ("\x00\x01", "empty"), (HUGE, "too long")],
)
def test_chat_bad_question_is_refused_with_a_warning(
    ui_fns: dict[str, Callable[..., Any]], message: str, warning: str | None
) -> None:
    with warnings.catch_warnings(record=True) as caught:  # gr.Warning outside a request
        warnings.simplefilter("always")
        out = list(ui_fns["respond"](message, [], [], 5, "extractive", "English"))
    assert len(out) == 1
    box, history, state, _ = out[0]
    assert box == message and history == [] and state == []  # nothing asked, text kept
    shown = [str(w.message) for w in caught]
    if warning is None:
        assert not any("not accepted" in s for s in shown)
    else:
        assert any("Question not accepted" in s and warning in s for s in shown), shown


def test_chat_shows_markup_in_a_question_as_text(ui_fns: dict[str, Callable[..., Any]]) -> None:
    question = '<img src=x onerror="alert(1)"> <script>alert(2)</script> Қордай оқиғасы'
    *_, last = ui_fns["respond"](question, [], [], 5, "extractive", "Қазақша")
    _, history, state, sources = last
    user, bot = history[-2]["content"], history[-1]["content"]
    assert "&lt;img src=x" in user and "<img" not in user and "<script" not in user
    assert "<img" not in bot and "<script" not in bot and "<img" not in sources
    assert state[-1]["answer"]["question"].startswith("<img")


@pytest.mark.parametrize(("name", "data", "status", "words"), BAD_UPLOADS[:-1])
def test_chat_rejected_upload_says_so_and_changes_nothing(
    tmp_path: Path, name: str, data: bytes, status: int, words: str
) -> None:
    engine = small_engine(tmp_path / "engine")
    fns = chat_handlers(engine)
    before = snapshot(engine)
    path = tmp_path / "upload" / name.replace("\x00", "_")
    path.parent.mkdir()
    path.write_bytes(data)
    _, message, _, _ = fns["on_upload"](str(path), "English")
    assert message.startswith("**Document not accepted:**") and words in message
    assert snapshot(engine) == before


def test_chat_remove_unknown_document(ui_fns: dict[str, Callable[..., Any]]) -> None:
    message, _, _ = ui_fns["on_remove"]("nope.txt", "English")
    assert "Document not accepted" in message and "not found" in message


# --- concurrency -------------------------------------------------------------------------------

QUESTIONS = [
    "HAQ қозғалысы не талап етеді?",
    "Қордай оқиғасы қашан болды?",
    "Who chaired the commission?",
    "Что произошло в Кордае?",
    "Алтынбек ауылының алғашқы мектебін кім ашқан?",
]
UPLOADS = {
    f"ауыл-{i}.txt": AUYL.replace("Алтынбек", f"Алтынбек-{i}").replace("1932", str(1930 + i))
    for i in range(4)
}


@pytest.mark.parametrize("round_", range(2))
def test_answers_stay_well_formed_while_documents_are_added(tmp_path: Path, round_: int) -> None:
    engine = small_engine(tmp_path)
    answers: list[Answer] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    uploading = threading.Event()
    uploading.set()

    def asker(n: int) -> None:
        i = 0
        while (uploading.is_set() or i < 3) and i < 200:  # bounded
            try:
                ans = answer(QUESTIONS[(n + i) % len(QUESTIONS)], engine=engine, top_k=3)
                with lock:
                    answers.append(ans)
            except BaseException as exc:  # reported below
                with lock:
                    errors.append(exc)
                return
            i += 1

    def uploader() -> None:
        try:
            for name, text in UPLOADS.items():
                library.add_document(engine, name, text.encode())
            library.remove_document(engine, "ауыл-0.txt")
        except BaseException as exc:
            errors.append(exc)
        finally:
            uploading.clear()

    threads = [threading.Thread(target=asker, args=(n,)) for n in range(4)]
    threads.append(threading.Thread(target=uploader))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert errors == []
    assert len(answers) >= 12
    for ans in answers:
        assert {int(m) for m in MARKER.findall(ans.answer)} == {c.marker for c in ans.citations}
        for c in ans.citations:
            if c.doc_id == "ауыл-0.txt":  # removed since: its text is gone, the answer is not
                continue
            raw = library.document_text(engine.settings, c.doc_id)
            assert _skeleton(raw[c.start : c.end]) == _skeleton(c.quote)
    # The index on disk is complete and is the one the engine serves.
    index = load_index(engine.settings.index, "hash-embedder", engine.settings.chunking)
    assert len(index.chunks) == index.manifest["n_chunks"] == index.dense.count()
    assert index.manifest == engine.index.manifest
    docs = {d["doc_id"] for d in index.documents}
    assert docs == {*SEED_FILES, "ауыл-1.txt", "ауыл-2.txt", "ауыл-3.txt"}
    final = answer("Алтынбек-3 ауылы 1933 жылы құрылған ба?", engine=engine)
    check_answer(final, engine)
    assert "ауыл-3.txt" in {h.chunk.doc_id for h in final.retrieved}


def test_concurrent_first_requests_load_one_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests arriving together before anything is loaded share one engine (one model)."""
    import rag.pipeline as pipeline

    built: list[Engine] = []
    real = pipeline.make_engine

    def slow_make(settings: Settings, embedder: Any = None) -> Engine:
        time.sleep(0.3)  # loading a model takes a while: the window for a race
        engine = real(settings, embedder=HashEmbedder())
        built.append(engine)
        return engine

    monkeypatch.setattr(pipeline, "make_engine", slow_make)
    settings = small_engine(tmp_path).settings.replace(top_k=4)  # a fresh cache key
    got: list[Engine] = []
    threads = [
        threading.Thread(target=lambda: got.append(pipeline.get_engine(settings))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(built) == 1
    assert len(got) == 8 and all(e is built[0] for e in got)


# --- the load script's own arithmetic ----------------------------------------------------------


def test_load_script_summary_and_report(tmp_path: Path) -> None:
    from evals.experiments import load_test as lt

    assert lt.percentile([0.1, 0.2, 0.3, 0.4], 50) == pytest.approx(250.0)
    assert lt.percentile([], 95) is None
    records = [lt.Record(lt.ENDPOINTS[i % 3], 0.1 * (i + 1)) for i in range(30)]
    records.append(lt.Record("/api/ask", 9.9, "HTTPStatusError: 500"))
    stats = lt.summarize(records, wall=10.0)
    assert stats["all"]["requests"] == 31 and stats["all"]["errors"] == 1
    assert stats["all"]["rps"] == pytest.approx(3.1)
    assert stats["all"]["p99"] < 9900  # failed requests do not count in the latencies
    assert stats["first_errors"] == ["HTTPStatusError: 500"]
    figures = {
        "clients": 16,
        "seconds": 60,
        "stats": stats,
        "rss_started_mb": 700.0,
        "rss_warm_mb": 850.0,
        "warmup_seconds": 20,
        "warmup_requests": 300,
        "warmup_errors": 0,
        "rss_samples": [(0.0, 900.0), (5.0, 920.0), (10.0, 930.0)],
        "rss_before_mb": 900.0,
        "rss_after_mb": 950.0,
        "rss_peak_mb": 990.0,
        "rss_growth_mb": 50.0,
        "rss_bound_mb": 150.0,
        "rss_held": True,
        "healthy_after": True,
        "model": "m",
        "generator": "extractive",
        "documents": 5,
        "chunks": 77,
        "cpus": 2,
        "batch_queries": False,
        "server_cpu_ms_per_request": 62.5,
        "capacity_rps": 32.0,
        "load_before": 1.0,
        "load_after": 2.0,
        "python": "3.11",
        "date": "today",
    }
    bench = tmp_path / "BENCHMARKS.md"
    bench.write_text("# Benchmarks\n\n<!-- api:start -->\nkeep me\n<!-- api:end -->\n", "utf-8")
    lt.write_section(bench, lt.section(figures), "load")
    lt.write_section(bench, lt.section(figures), "load")  # replaced, not appended
    text = bench.read_text(encoding="utf-8")
    assert "keep me" in text
    assert text.count("<!-- load:start -->") == 1 == text.count("<!-- load:end -->")
    assert "p99" in text and "+50 MB, bound 150 MB: held" in text and "10: 930" in text
    assert "HTTPStatusError: 500" in text
    assert "62.5 ms per request, so 2 cores could serve\n32.0 requests/s" in text
    assert "query micro-batching off" in text
