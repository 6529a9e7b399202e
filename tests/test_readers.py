"""Document readers: formats chosen by content, PDF pages, OCR of scans, bad files refused.

Every test file is made here (raw PDF objects, pypdf, python-docx, Pillow page images typeset
with DejaVu Sans and scanned into image-only PDFs); nothing is downloaded. The OCR tests run
Debian's Tesseract (``make ocr`` installs it; ``make test`` depends on it).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from evals.experiments.ocr_quality import cer, edit_distance, scanned_pdf
from rag import readers
from rag.readers import SourceError, SourceTooLarge, cached_extract, read_document
from rag.readers.html import visible_text
from rag.readers.pdf import strip_running_lines
from rag.schema import Page, page_span
from rag.sources import document_from, read_corpus
from tests.helpers import PAGE_1, PAGE_2, make_docx, make_pdf


def text_pdf(pages: list[list[str]]) -> bytes:
    """A PDF with a Helvetica text layer, one list of lines per page (ASCII only)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for lines in pages:
        writer.append(PdfReader(io.BytesIO(make_pdf(lines))))
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def scan_two_pages() -> bytes:
    return scanned_pdf([PAGE_1, PAGE_2], dpi=300)


# --- choosing the reader by content ----------------------------------------------------------


def test_text_and_markdown_are_read_as_they_are() -> None:
    got = read_document("a.txt", "Бірінші жол.\r\nЕкінші.".encode())
    assert (got.text, got.format, got.pages) == ("Бірінші жол.\r\nЕкінші.", "text", ())
    assert read_document("b.md", b"# T\n\nx").format == "markdown"


def test_a_file_whose_extension_lies_is_read_by_content() -> None:
    pdf = make_pdf(["Almaty is the largest city."])
    got = read_document("report.txt", pdf)
    assert got.format == "pdf" and "Almaty is the largest city." in got.text
    assert any("not .txt" in n for n in got.notes)
    got = read_document("notes.pdf", make_docx(["Абай 1845 жылы туған."]))
    assert got.format == "docx" and "Абай 1845 жылы туған." in got.text


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("report.pdf", "Жай мәтін, PDF емес.".encode(), "plain text"),
        ("letter.docx", b"this is not a zip at all", r"\.docx.*plain text"),
        ("letter.docx", b"\x8a\x01\x02\x03\x04" * 50, r"not a readable \.docx .*not a zip"),
        ("archive.docx", None, "not a Word"),
        ("photo.jpg", b"\xff\xd8\xff\xe0", "unsupported file type"),
        ("empty.pdf", b"  \n", "empty"),
    ],
)
def test_files_that_are_not_what_they_say_are_refused(
    name: str, data: bytes | None, message: str
) -> None:
    if data is None:  # a zip, but no Word document inside
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("data.csv", "a,b\n")
        data = buf.getvalue()
    with pytest.raises(SourceError, match=message):
        read_document(name, data)


# --- PDF: pages, headers and footers, bad files ----------------------------------------------


def test_pdf_pages_are_recorded_and_cited_spans_name_their_page() -> None:
    got = read_document(
        "r.pdf",
        text_pdf([["First page text here, a long line."], ["Second page words, a long line too."]]),
    )
    assert [p.number for p in got.pages] == [1, 2]
    assert not any(p.ocr for p in got.pages)
    second = got.text.index("Second page")
    assert got.pages[1].start <= second
    assert page_span(got.pages, second, second + 6) == (2, None)
    assert page_span(got.pages, 0, second + 6) == (1, 2)  # a span over two pages
    assert page_span((), 0, 5) == (None, None)


def test_running_headers_and_footers_are_removed() -> None:
    cities = ["Almaty", "Astana", "Shymkent", "Aktobe"]
    pages = [
        [
            "Annual report 2024",
            f"{city} grew this year.",
            f"{city} built new schools.",
            f"Page {n} of 4",
        ]
        for n, city in enumerate(cities, start=1)
    ]
    got = read_document("r.pdf", text_pdf(pages))
    assert "Annual report" not in got.text and "of 4" not in got.text
    for city in cities:
        assert f"{city} grew this year." in got.text and f"{city} built new schools." in got.text
    # Two pages are too few to tell a running header from a repeated line.
    assert strip_running_lines(["A\nb", "A\nc"]) == ["A\nb", "A\nc"]


def test_encrypted_pdf_is_refused() -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["Secret text."]))))
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(SourceError, match="password-protected"):
        read_document("secret.pdf", buf.getvalue())


def test_corrupt_pdf_is_refused() -> None:
    good = make_pdf(["Some text on the page."])
    with pytest.raises(SourceError, match="not a readable PDF"):
        read_document("cut.pdf", good[:60])


def test_zero_page_pdf_is_refused() -> None:
    from pypdf import PdfWriter

    buf = io.BytesIO()
    PdfWriter().write(buf)
    with pytest.raises(SourceError, match="no pages"):
        read_document("empty.pdf", buf.getvalue())


def test_a_2000_page_pdf_is_refused_with_the_limit() -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(2000):
        writer.add_blank_page(width=200, height=200)
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(SourceTooLarge, match=r"2,000 pages; the limit is 1,000 pages"):
        read_document("huge.pdf", buf.getvalue())


# --- scans: OCR ------------------------------------------------------------------------------


def test_a_scanned_kazakh_pdf_is_read_by_ocr_page_by_page(scan_two_pages: bytes) -> None:
    seen: list[str] = []
    got = read_document("scan.pdf", scan_two_pages, lambda d, t, m: seen.append(m))
    assert [p.number for p in got.pages] == [1, 2] and all(p.ocr for p in got.pages)
    assert all(p.confidence is not None and p.confidence > 70 for p in got.pages)
    assert not any(p.low_confidence for p in got.pages)
    page2 = got.text[got.pages[1].start :]
    assert cer(PAGE_2, page2) < 0.05, page2
    assert cer(PAGE_1, got.text[: got.pages[1].start]) < 0.05
    assert sum("OCR page" in m for m in seen) == 2  # progress for every scanned page


def test_a_scanned_page_with_no_text_at_all() -> None:
    with pytest.raises(SourceError, match="OCR found no text"):
        read_document("blank.pdf", scanned_pdf([""], dpi=150))
    got = read_document("half.pdf", scanned_pdf([PAGE_2, ""], dpi=200))
    assert [p.low_confidence for p in got.pages] == [False, True]  # the blank page is flagged
    assert "low OCR confidence on pages 2" in got.notes


def test_extracted_text_is_reused_and_not_ocrd_again(
    scan_two_pages: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = cached_extract("scan.pdf", scan_two_pages, None)
    (tmp_path / f"{readers.file_key(scan_two_pages)}.json").write_text(
        json.dumps(first.to_json()), encoding="utf-8"
    )
    readers._MEMO.clear()

    def no_ocr(*_a: object, **_k: object) -> None:
        raise AssertionError("OCR ran again")

    monkeypatch.setattr("rag.readers.pdf.ocr_image", no_ocr)
    again = cached_extract("scan.pdf", scan_two_pages, tmp_path)
    assert again == first


# --- Word and web pages ----------------------------------------------------------------------


def test_docx_paragraphs() -> None:
    got = read_document("абай.docx", make_docx(["Абай 1845 жылы туған.", "Екінші абзац."]))
    assert got.text == "Абай 1845 жылы туған.\n\nЕкінші абзац." and got.format == "docx"


HTML = """<!DOCTYPE html><html><head><title>Ауыл жаңалықтары</title>
<style>body { color: red }</style><script>var secret = "СКРИПТ";</script></head>
<body><nav><a href="/">Басты бет</a> | <a href="/x">Мәзір</a></nav>
<h1>Ақсу ауылы</h1><p>Ақсу ауылы өзен <b>жағасында</b> орналасқан.</p>
<p>Ауылда &laquo;Болашақ&raquo; мектебі бар.<br>Екінші жол.</p>
<footer>© 2024 Барлық құқықтар</footer><script>document.write("ЖАСЫРЫН")</script></body></html>"""


def test_html_keeps_visible_text_only() -> None:
    got = read_document("page.html", HTML.encode())
    assert got.format == "html"
    text = got.text
    assert "# Ақсу ауылы" in text and "Ақсу ауылы өзен жағасында орналасқан." in text
    assert "«Болашақ»" in text
    for hidden in ("СКРИПТ", "ЖАСЫРЫН", "color", "Мәзір", "Барлық құқықтар"):
        assert hidden not in text
    doc = document_from("page.html", got, "x")
    assert doc.title == "Ақсу ауылы"


def test_html_that_is_mostly_script_is_refused() -> None:
    page = (
        "<html><body><script>" + "var a = 1;\n" * 5000 + "</script><p>Жүктелуде…</p></body></html>"
    )
    with pytest.raises(SourceError, match="no visible text"):
        read_document("app.htm", page.encode())


def test_a_txt_that_is_a_web_page_is_read_as_html() -> None:
    got = read_document("saved.txt", HTML.encode())
    assert got.format == "html" and "СКРИПТ" not in got.text


def test_visible_text_of_broken_markup() -> None:
    assert "мәтін" in visible_text("<div><p>мәтін<div></span>")


# --- a corpus folder -------------------------------------------------------------------------


def test_a_bad_file_in_a_corpus_is_skipped_and_the_rest_is_read(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("Ақсу ауылы өзен жағасында орналасқан.", encoding="utf-8")
    (tmp_path / "cut.pdf").write_bytes(make_pdf(["x"])[:50])
    (tmp_path / "word.docx").write_bytes(b"\x8a\x01\x02" * 10)
    (tmp_path / "app.html").write_text("<html><script>x()</script></html>", encoding="utf-8")
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8")  # not a document: not even looked at
    docs, skipped = read_corpus(tmp_path)
    assert [d.doc_id for d in docs] == ["good.txt"]
    assert sorted(s.name for s in skipped) == ["app.html", "cut.pdf", "word.docx"]
    assert all(s.reason.startswith(s.name) for s in skipped)


# --- the measuring tools of the OCR study ---------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "d"), [("", "", 0), ("abc", "", 3), ("kitten", "sitting", 3), ("ақсу", "аксу", 1)]
)
def test_edit_distance(a: str, b: str, d: int) -> None:
    assert edit_distance(a, b) == d == edit_distance(b, a)


def test_page_record_round_trip() -> None:
    from rag.readers import Extracted

    e = Extracted("a\n\nb", "pdf", (Page(1, 0, True, 91.5, False), Page(2, 3)), ("n",))
    assert Extracted.from_json(json.loads(json.dumps(e.to_json()))) == e
