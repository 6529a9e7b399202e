"""The document library: extraction with limits, incremental upload, removal, rollback."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from rag import library
from rag.pipeline import Engine, answer
from rag.sources import SourceError
from tests.fakes import HashEmbedder
from tests.helpers import AUYL, SEED_FILES, make_docx, make_pdf, small_engine


@pytest.fixture()
def engine(tmp_path: Path) -> Engine:
    return small_engine(tmp_path)


def _state(engine: Engine) -> tuple[list[str], str, int]:
    uploads = engine.settings.uploads
    assert uploads is not None
    files = sorted(p.name for p in uploads.iterdir()) if uploads.is_dir() else []
    manifest = (engine.settings.index / "manifest.json").read_text(encoding="utf-8")
    return files, manifest, id(engine.index)


# --- minimal files of each type -------------------------------------------------------------


# --- names and types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\me\\есеп.md", "есеп.md"),
        ("Менің құжатым (1).DOCX", "Менің_құжатым_1.docx"),
        (".hidden.txt", "hidden.txt"),
        ("...", "document"),
        ("😀 emoji.txt", "emoji.txt"),
        ("a" * 300 + ".txt", "a" * library.MAX_NAME_CHARS + ".txt"),
    ],
)
def test_safe_name(given: str, expected: str) -> None:
    assert library.safe_name(given) == expected


def test_stored_name_keeps_the_extension() -> None:
    assert library.stored_name("notes.md") == "notes.md"
    assert library.stored_name("report.PDF") == "report.pdf"
    assert library.stored_name("хат.docx") == "хат.docx"
    assert library.stored_name("бет.htm") == "бет.htm"
    with pytest.raises(library.UnsupportedType, match=r"\.exe"):
        library.stored_name("setup.exe")
    with pytest.raises(library.UnsupportedType, match="no extension"):
        library.stored_name("README")


# --- extraction -----------------------------------------------------------------------------


def test_extract_plain_text_utf8_bom_and_crlf() -> None:
    data = "\ufeffБірінші жол.\r\nЕкінші жол.\r\n".encode()
    assert library.extract_text("a.txt", data) == "Бірінші жол.\nЕкінші жол.\n"


def test_extract_utf16_with_bom() -> None:
    data = "Қазақ мәтіні".encode("utf-16")
    assert library.extract_text("a.md", data) == "Қазақ мәтіні"


@pytest.mark.parametrize(
    ("name", "data", "error", "message"),
    [
        ("empty.txt", b"", SourceError, "empty"),
        ("blank.txt", b" \n\t ", SourceError, "empty"),
        ("binary.txt", b"\x00\x01\x02binary", SourceError, "binary"),
        ("latin.txt", "Qazaqstan café".encode("latin-1"), SourceError, "UTF-8"),
        ("scan.pdf", b"%PDF-1.4 garbage", SourceError, "PDF"),
        ("word.docx", b"PK not really a zip", SourceError, "docx"),
        ("virus.exe", b"MZ", library.UnsupportedType, "unsupported"),
    ],
)
def test_extract_rejects_with_a_clear_message(
    name: str, data: bytes, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        library.extract_text(name, data)


def test_extract_refuses_files_over_the_size_limit() -> None:
    with pytest.raises(library.UploadTooLarge, match="limit is 10 MB"):
        library.extract_text("big.txt", b"a" * (library.MAX_UPLOAD_BYTES + 1))
    assert library.UploadTooLarge.status == 413


def test_extract_refuses_too_much_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(library, "MAX_TEXT_CHARS", 100)
    with pytest.raises(library.UploadTooLarge, match="characters"):
        library.extract_text("long.txt", ("сөз " * 100).encode())


def test_extract_pdf_text_layer() -> None:
    text = library.extract_text(
        "report.pdf", make_pdf(["Almaty is the largest city.", "Page two."])
    )
    assert "Almaty is the largest city." in text


def test_extract_pdf_without_text_is_refused() -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(SourceError, match="no text layer"):
        library.extract_text("scan.pdf", buf.getvalue())


def test_extract_password_protected_pdf_is_refused() -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["Secret text."]))))
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(SourceError, match="password-protected"):
        library.extract_text("secret.pdf", buf.getvalue())


def test_extract_pdf_over_the_page_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rag.readers.pdf.MAX_PAGES", 0)
    with pytest.raises(library.UploadTooLarge, match="pages"):
        library.extract_text("long.pdf", make_pdf(["One page."]))


def test_extract_docx_paragraphs_and_tables() -> None:
    data = make_docx(
        ["Абай Құнанбайұлы 1845 жылы туған.", ""], [["Жыл", "Оқиға"], ["1845", "туған"]]
    )
    text = library.extract_text("абай.docx", data)
    assert "Абай Құнанбайұлы 1845 жылы туған." in text
    assert "1845 | туған" in text


def test_extract_docx_zip_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rag.readers.docx.MAX_INFLATED", 1000)
    with pytest.raises(library.UploadTooLarge, match="unpacks"):
        library.extract_text("big.docx", make_docx(["мәтін " * 500]))


# --- upload, remove -------------------------------------------------------------------------


def test_upload_is_indexed_incrementally_and_answerable(engine: Engine) -> None:
    embedder = engine.embedder
    assert isinstance(embedder, HashEmbedder)
    before_chunks = len(engine.index.chunks)
    embedder.embedded = 0
    steps: list[str] = []
    info = library.add_document(engine, "ауыл.txt", AUYL.encode(), lambda f, m: steps.append(m))

    assert info.doc_id == "ауыл.txt"
    assert (info.source, info.removable) == ("upload", True)
    assert steps[0] == "checking the file" and steps[-1] == "done"
    saved = engine.settings.uploads / "ауыл.txt"  # type: ignore[operator]
    assert saved.read_text(encoding="utf-8") == AUYL
    # Only the new document's chunk and sentences were embedded, not the whole corpus again.
    assert len(engine.index.chunks) == before_chunks + info.chunks
    assert 0 < embedder.embedded <= info.chunks + AUYL.count(".") + 2

    ans = answer("Алтынбек ауылының алғашқы мектебін кім ашқан?", engine=engine)
    assert ans.citations and ans.citations[0].doc_id == "ауыл.txt"
    cited = ans.citations[0]
    raw = library.document_text(engine.settings, "ауыл.txt")
    assert raw[cited.start : cited.end].split() == cited.quote.split()
    listed = {d.doc_id: d for d in library.list_documents(engine.settings, engine.index)}
    assert listed["ауыл.txt"].source == "upload"
    assert listed[SEED_FILES[0]].source == "seed" and not listed[SEED_FILES[0]].removable


def test_pdf_and_docx_uploads_keep_the_original(engine: Engine) -> None:
    pdf = make_pdf(["Almaty is the largest city."])
    info = library.add_document(engine, "city.pdf", pdf)
    assert (info.doc_id, info.format, info.pages) == ("city.pdf", "pdf", 1)
    assert (engine.settings.uploads / "city.pdf").read_bytes() == pdf  # type: ignore[operator]
    info = library.add_document(engine, "абай.docx", make_docx(["Абай 1845 жылы туған."]))
    assert (info.doc_id, info.format, info.pages) == ("абай.docx", "docx", None)
    # Citation offsets point into the extracted text, which document_text gives back.
    assert "Абай 1845 жылы туған." in library.document_text(engine.settings, "абай.docx")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("virus.exe", b"MZ\x00"),
        ("empty.txt", b""),
        ("binary.txt", b"\x00\x01\x02"),
        ("broken.pdf", b"%PDF-1.4 nothing"),
        ("broken.docx", b"PK\x03\x04"),
        ("punctuation.txt", b"... --- !!!\n"),
        ("big.txt", b"x" * (library.MAX_UPLOAD_BYTES + 1)),
    ],
)
def test_rejected_upload_leaves_corpus_and_index_unchanged(
    engine: Engine, name: str, data: bytes
) -> None:
    before = _state(engine)
    with pytest.raises((library.LibraryError, SourceError)):
        library.add_document(engine, name, data)
    assert _state(engine) == before


def test_failed_index_build_rolls_the_upload_back(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    library.add_document(engine, "ауыл.txt", AUYL.encode())
    before = _state(engine)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(library, "build", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        library.add_document(engine, "жаңа.txt", "Жаңа құжат мәтіні осында жазылған.".encode())
    with pytest.raises(RuntimeError, match="disk full"):
        library.add_document(engine, "ауыл.txt", "Басқа мәтін мүлде өзгеше жазылған.".encode())
    with pytest.raises(RuntimeError, match="disk full"):
        library.remove_document(engine, "ауыл.txt")
    assert _state(engine) == before
    assert library.document_text(engine.settings, "ауыл.txt") == AUYL


def test_same_name_replaces_the_earlier_upload(engine: Engine) -> None:
    library.add_document(engine, "ауыл.txt", AUYL.encode())
    n = len(engine.index.documents)
    new = "Жаңа нұсқа: ауылда үш мың адам тұрады."
    library.add_document(engine, "ауыл.txt", new.encode())
    assert len(engine.index.documents) == n
    assert library.document_text(engine.settings, "ауыл.txt") == new


def test_upload_cannot_shadow_a_seed_document(engine: Engine) -> None:
    before = _state(engine)
    with pytest.raises(library.DocumentProtected, match="rename"):
        library.add_document(engine, SEED_FILES[0], AUYL.encode())
    assert _state(engine) == before


def test_remove_upload(engine: Engine) -> None:
    library.add_document(engine, "ауыл.txt", AUYL.encode())
    library.remove_document(engine, "ауыл.txt")
    assert "ауыл.txt" not in {d["doc_id"] for d in engine.index.documents}
    assert not (engine.settings.uploads / "ауыл.txt").exists()  # type: ignore[operator]
    assert all(h.chunk.doc_id != "ауыл.txt" for h in engine.retriever.search("Алтынбек ауылы", 10))


def test_remove_seed_is_refused_with_a_clear_message(engine: Engine) -> None:
    before = _state(engine)
    with pytest.raises(library.DocumentProtected, match="built-in corpus"):
        library.remove_document(engine, SEED_FILES[0])
    assert _state(engine) == before
    assert library.DocumentProtected.status == 409


@pytest.mark.parametrize("doc_id", ["nope.txt", "../corpus/" + SEED_FILES[0], ".hidden", ""])
def test_remove_unknown_document(engine: Engine, doc_id: str) -> None:
    with pytest.raises(library.DocumentNotFound):
        library.remove_document(engine, doc_id)


def test_document_path_never_leaves_the_two_folders(engine: Engine) -> None:
    assert library.document_path(engine.settings, SEED_FILES[0]).parent == engine.settings.corpus
    for bad in ("../index/manifest.json", "/etc/passwd", "..", "a\\b.txt"):
        with pytest.raises(library.DocumentNotFound):
            library.document_path(engine.settings, bad)


def test_uploads_disabled(tmp_path: Path) -> None:
    engine = small_engine(tmp_path, uploads=None)
    with pytest.raises(library.LibraryError, match="disabled"):
        library.add_document(engine, "ауыл.txt", AUYL.encode())


def test_a_pdf_may_be_larger_than_other_files_as_scans_are() -> None:
    # A 20-page greyscale 300-dpi scan is ~13 MB (BENCHMARKS.md § Documents and OCR).
    size = 13 * 1024 * 1024
    library.check_size("scan.pdf", size)
    library.check_size("SCAN.PDF", library.MAX_PDF_UPLOAD_BYTES)
    with pytest.raises(library.UploadTooLarge, match=r"limit is 10 MB \(40 MB for a PDF\)"):
        library.check_size("notes.txt", size)
    with pytest.raises(library.UploadTooLarge, match="limit is 40 MB"):
        library.check_size("scan.pdf", library.MAX_PDF_UPLOAD_BYTES + 1)
