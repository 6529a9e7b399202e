"""Helpers shared by test modules (test modules never import each other).

Engines over a small corpus, minimal PDF and DOCX files, a loopback server, answer checks, the
chat's handlers and the browser driver's helpers. Fixtures built on them live in conftest.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rag import library
from rag.pipeline import Engine, make_engine
from rag.schema import Answer
from rag.settings import Settings
from tests.conftest import SEEDS
from tests.fakes import HashEmbedder

MARKER = re.compile(r"\[(\d+)\]")


SEED_FILES = ("000_3c27c5d18ec362a4.txt", "001_cbaf6c15fc16152d.txt")


AUYL = (
    "Алтынбек ауылының тарихы\n\n"
    "Алтынбек ауылы 1932 жылы Іле өзенінің жағасында құрылған. Ауылдың алғашқы мектебін "
    "Серікбай Оспанов ашқан.\nҚазір ауылда екі мың адам тұрады.\n"
)


def small_engine(root: Path, **overrides: object) -> Engine:
    """An engine over two seed documents with the hash embedder; everything under ``root``.

    The abstain threshold is off: the hash embedder's scores are not calibrated like e5's.
    """
    corpus = root / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for name in SEED_FILES:
        shutil.copy(SEEDS / name, corpus / name)
    settings = Settings(
        corpus=corpus, index=root / "index", uploads=root / "uploads", abstain_threshold=-1.0
    ).replace(**overrides)
    return make_engine(settings, embedder=HashEmbedder())


def make_pdf(lines: list[str]) -> bytes:
    """A one-page PDF with a Helvetica text layer (ASCII only: the built-in fonts' range)."""
    ops = ["BT", "/F1 14 Tf", "72 720 Td", "18 TL"]
    for line in lines:
        ops.append(f"({line}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    import docx

    document = docx.Document()
    for p in paragraphs:
        document.add_paragraph(p)
    if table:
        t = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                t.cell(r, c).text = cell
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def sse_events(text: str) -> list[Any]:
    """The ``data:`` payloads of a server-sent-events body (``[DONE]`` kept as a string)."""
    events: list[Any] = []
    for block in text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                payload = line[len("data: ") :]
                events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def streamed_content(events: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events if isinstance(e, dict)
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(app: Any, timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; stop it on exit."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)


def snapshot(engine: Engine) -> dict[str, str]:
    """sha256 of every file of the corpus, the uploads and the index folders."""
    s = engine.settings
    out: dict[str, str] = {}
    for label, folder in (("corpus", s.corpus), ("uploads", s.uploads), ("index", s.index)):
        if folder is None or not folder.exists():
            continue
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                out[f"{label}/{p.relative_to(folder)}"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _skeleton(s: str) -> str:
    return "".join(ch.casefold() for ch in s if ch.isalnum())


def check_answer(ans: Answer, engine: Engine) -> None:
    """Well-formed: every marker has its citation and every citation's raw span is its quote."""
    assert {int(m) for m in MARKER.findall(ans.answer)} == {c.marker for c in ans.citations}
    for c in ans.citations:
        raw = library.document_text(engine.settings, c.doc_id)
        assert 0 <= c.start < c.end <= len(raw)
        assert _skeleton(raw[c.start : c.end]) == _skeleton(c.quote)


def chat_handlers(engine: Engine) -> dict[str, Callable[..., Any]]:
    """The chat's event handlers by name (the functions the browser's events call)."""
    from ui.app import build_ui

    demo = build_ui(engine.settings, engine)
    return {f.fn.__name__: f.fn for f in demo.fns.values() if f.fn is not None}


CHROMIUM = Path("/usr/bin/chromium")


CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]


TIMEOUT_MS = 60_000


def _playwright() -> Any:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium chromium-driver")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(
            "playwright is not installed: pip install playwright (not `playwright install`)"
        )
    return sync_playwright


def ask(page: Any, question: str, n_answers: int) -> Any:
    """Type a question, send it, and wait for the n-th answer to get its citation links."""
    page.fill("#kz-input textarea", question)
    page.click("#kz-send")
    page.wait_for_function(
        "n => document.querySelectorAll('#kz-chat a.kz-cite[href^=\"#kz-src-' + (n - 1) + '-\"]')"
        ".length > 0",
        arg=n_answers,
    )
    return page


# --- a two-page Kazakh document (tests/test_readers.py, test_pages*.py) ---------------------

PAGE_1 = (
    "Ақсу ауылының тарихы\n\n"
    "Ақсу ауылы өзен жағасында орналасқан. Ауылда үлкен мектеп және кітапхана бар."
)
PAGE_2 = (
    "Ауылдың алғашқы дәрігері Гүлнар Сейітова болды. Ол емханаға 1957 жылы келіп, "
    "отыз жыл бойы ауыл тұрғындарын емдеді."
)
PAGES_QUESTION = "Ауылдың алғашқы дәрігері кім болды?"


def pages_corpus(root: Path, scan: bytes, seeds: int = 1) -> Path:
    corpus = root / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for name in SEED_FILES[:seeds]:
        shutil.copy(SEEDS / name, corpus / name)
    (corpus / "ақсу.pdf").write_bytes(scan)
    return corpus


def pages_settings(root: Path, corpus: Path) -> Settings:
    return Settings(
        corpus=corpus, index=root / "index", uploads=root / "uploads", abstain_threshold=-1.0
    )


TOKEN = "s3cret-token"  # the API token tests configure


def split_corpus(root: Path, pieces: int, chars: int = 2500) -> Path:
    """A corpus folder of ``pieces`` small documents cut from the seeds at paragraph breaks."""
    root.mkdir(parents=True, exist_ok=True)
    made = 0
    for seed in sorted(SEEDS.glob("*.txt")):
        current = ""
        for para in seed.read_text(encoding="utf-8").split("\n\n"):
            current += para + "\n\n"
            if len(current) >= chars and current.strip():
                (root / f"{made:03d}_{seed.stem[:3]}.txt").write_text(current, encoding="utf-8")
                made += 1
                current = ""
                if made == pieces:
                    return root
    raise ValueError(f"the seeds give only {made} pieces of {chars} characters")


@contextmanager
def loopback_cluster(nodes: int = 2) -> Iterator[Any]:
    """A Ray cluster of ``nodes`` single-CPU nodes on 127.0.0.1, stopped (by pid) on exit.

    Its session folder is a short temporary path (Ray keeps Unix sockets there); its workers
    can import ``tests`` (the encoder fakes).
    """
    import tempfile

    from rag.ray_cluster import LoopbackCluster

    temp = Path(tempfile.mkdtemp(prefix="kzray-", dir="/tmp"))
    cluster = LoopbackCluster(temp, nodes=nodes, env={"PYTHONPATH": str(SEEDS.parent)})
    try:
        with cluster:
            yield cluster
    finally:
        shutil.rmtree(temp, ignore_errors=True)
