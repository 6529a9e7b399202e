"""Paged documents through every door: ``kazrag index`` on a folder, uploads, the API.

A scanned two-page Kazakh PDF (typeset with Pillow, no text layer) is indexed, and a question
about its second page is answered with a citation whose ``page`` is 2 and whose offsets point
into the extracted text the index keeps. Re-indexing a folder embeds only what changed and
never OCRs an unchanged scan again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kazrag.cli import main
from rag import api, library, readers
from rag.index import TEXTS, corpus_documents
from rag.pipeline import answer, make_engine
from tests.conftest import SEEDS
from tests.fakes import HashEmbedder
from tests.helpers import (
    PAGE_1,
    PAGE_2,
    PAGES_QUESTION,
    SEED_FILES,
    make_docx,
    pages_corpus,
    pages_settings,
)


@pytest.fixture(scope="module")
def scan() -> bytes:
    from evals.experiments.ocr_quality import scanned_pdf

    return scanned_pdf([PAGE_1, PAGE_2], dpi=300)


def _quote_is_exact(index_folder: Path, scan: bytes, start: int, end: int, quote: str) -> None:
    kept = json.loads(
        (index_folder / TEXTS / f"{readers.file_key(scan)}.json").read_text(encoding="utf-8")
    )
    assert kept["text"][start:end].split() == quote.split()


def test_a_scanned_pdf_in_the_corpus_is_cited_by_page(tmp_path: Path, scan: bytes) -> None:
    settings = pages_settings(tmp_path, pages_corpus(tmp_path, scan))
    engine = make_engine(settings, embedder=HashEmbedder())
    chunks = [c for c in engine.index.chunks if c.doc_id == "ақсу.pdf"]
    assert chunks and all(c.page in (1, 2) for c in chunks)
    assert all(c.page is None for c in engine.index.chunks if c.doc_id != "ақсу.pdf")

    ans = answer(PAGES_QUESTION, engine=engine)
    cited = ans.citations[0]
    assert cited.doc_id == "ақсу.pdf" and "Сейітова" in cited.quote
    assert (cited.page, cited.page_end) == (2, None)
    assert ans.to_json()["citations"][0]["page"] == 2
    _quote_is_exact(settings.index, scan, cited.start, cited.end, cited.quote)
    raw = library.document_text(settings, "ақсу.pdf")  # the kept text, not the PDF bytes
    assert raw[cited.start : cited.end].split() == cited.quote.split()

    listed = {d.doc_id: d for d in library.list_documents(settings, engine.index)}
    pdf = listed["ақсу.pdf"]
    assert (pdf.format, pdf.pages, pdf.ocr_pages, pdf.low_confidence_pages) == (
        "pdf",
        2,
        (1, 2),
        (),
    )


def test_reindexing_a_folder_embeds_only_what_changed(
    tmp_path: Path, scan: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = pages_corpus(tmp_path, scan, seeds=2)
    settings = pages_settings(tmp_path, corpus)
    embedder = HashEmbedder()
    engine = make_engine(settings, embedder=embedder)
    n_before = len(engine.index.chunks)

    # From now on the scan must come from the index's kept text, never from OCR again.
    readers._MEMO.clear()

    def no_ocr(*_a: object, **_k: object) -> None:
        raise AssertionError("an unchanged scan was OCR'd again")

    monkeypatch.setattr("rag.readers.pdf.ocr_image", no_ocr)
    (corpus / SEED_FILES[1]).unlink()  # removed
    (corpus / "жаңа.docx").write_bytes(make_docx(["Жаңа құжат. Ауылда жаңа саябақ ашылды."]))
    embedder.embedded = 0
    from rag.index import open_index

    index = open_index(settings.index_spec, embedder)
    ids = {d["doc_id"] for d in index.documents}
    assert ids == {SEED_FILES[0], "ақсу.pdf", "жаңа.docx"}
    assert index.manifest["embedded"]["chunks"] == 1  # only the new document's chunk
    assert 0 < embedder.embedded <= 1 + 3  # that chunk and its sentences
    assert len(index.chunks) < n_before


def test_kazrag_index_reports_changes_and_skipped_files(
    tmp_path: Path, scan: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import rag.embedding

    monkeypatch.setattr(rag.embedding, "SentenceTransformerEmbedder", lambda _m: HashEmbedder())
    monkeypatch.setenv("KAZRAG_UPLOADS", str(tmp_path / "uploads"))
    readers._MEMO.clear()  # this process read the same scan in another test
    corpus = pages_corpus(tmp_path, scan)
    (corpus / "cut.pdf").write_bytes(scan[:200])
    args = ["index", "--corpus", str(corpus), "--index", str(tmp_path / "index")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "skipped cut.pdf: not a readable PDF" in err
    assert "ақсу.pdf: OCR page 2" in err  # progress per page
    (corpus / "cut.pdf").unlink()
    (corpus / "new.txt").write_text("Жаңа мәтін. Ауылда су құбыры бар.", encoding="utf-8")
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "1 added, 0 changed, 0 removed, 2 unchanged" in err
    assert "OCR page" not in err  # the scan's text came from the index


# --- uploads and the API ---------------------------------------------------------------------


@pytest.fixture()
def client(tmp_path: Path) -> TestClient:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SEEDS / SEED_FILES[0], corpus / SEED_FILES[0])
    engine = make_engine(pages_settings(tmp_path, corpus), embedder=HashEmbedder())
    return TestClient(api.create_app(engine.settings, engine, token=""))


def test_upload_a_scan_ask_by_page_and_open_the_original(client: TestClient, scan: bytes) -> None:
    with client:
        r = client.post(
            "/api/documents", files={"file": ("Ақсу тарихы.pdf", scan, "application/pdf")}
        )
        assert r.status_code == 201, r.text
        doc = r.json()["document"]
        assert doc["doc_id"] == "Ақсу_тарихы.pdf"
        assert (doc["format"], doc["pages"], doc["ocr_pages"]) == ("pdf", 2, [1, 2])
        assert doc["low_confidence_pages"] == []

        r = client.post("/api/ask", json={"question": PAGES_QUESTION})
        cited = r.json()["citations"][0]
        assert (cited["doc_id"], cited["page"], cited["page_end"]) == ("Ақсу_тарихы.pdf", 2, None)
        hits = [h for h in r.json()["retrieved"] if h["doc_id"] == "Ақсу_тарихы.pdf"]
        assert hits and hits[0]["page"] == 1

        r = client.get("/api/documents/Ақсу_тарихы.pdf/file")
        assert r.status_code == 200 and r.content == scan  # the original is kept
        assert r.headers["content-type"] == "application/pdf"
        assert r.headers["content-disposition"].startswith("inline")

        r = client.get(f"/api/documents/{SEED_FILES[0]}/file")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert r.headers["content-security-policy"] == "sandbox"
        assert client.get("/api/documents/nope.pdf/file").status_code == 404
        assert client.get("/api/documents/..%2F..%2Fetc%2Fpasswd/file").status_code == 404


@pytest.mark.parametrize(
    ("name", "data", "status", "message"),
    [
        ("cut.pdf", b"%PDF-1.7\n1 0 obj <<", 422, "not a readable PDF"),
        ("letter.docx", b"plain words, not a zip", 422, "plain text"),
        ("app.html", b"<html><script>run()</script></html>", 422, "no visible text"),
        ("blank.pdf", None, 422, "OCR found no text"),
    ],
)
def test_bad_uploads_are_refused_and_nothing_is_lost(
    client: TestClient, name: str, data: bytes | None, status: int, message: str
) -> None:
    if data is None:
        from evals.experiments.ocr_quality import scanned_pdf

        data = scanned_pdf([""], dpi=100)
    with client:
        before = client.get("/api/documents").json()["documents"]
        r = client.post("/api/documents", files={"file": (name, data, "application/octet-stream")})
        assert r.status_code == status and message in r.text
        assert client.get("/api/documents").json()["documents"] == before


@pytest.mark.model
def test_kazrag_index_and_ask_cite_page_2_with_the_real_model(
    tmp_path: Path, scan: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("KAZRAG_UPLOADS", str(tmp_path / "uploads"))
    corpus = tmp_path / "scans"
    corpus.mkdir()
    (corpus / "ақсу.pdf").write_bytes(scan)
    where = ["--corpus", str(corpus), "--index", str(tmp_path / "index")]
    assert main(["index", *where, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["ask", PAGES_QUESTION, *where, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert not out["abstained"]
    cited = out["citations"][0]
    assert (cited["doc_id"], cited["page"]) == ("ақсу.pdf", 2)
    assert "Сейітова" in cited["quote"]
    _quote_is_exact(tmp_path / "index", scan, cited["start"], cited["end"], cited["quote"])
    docs = corpus_documents(pages_settings(tmp_path, corpus).index_spec)
    assert docs[0].pages[1].number == 2
