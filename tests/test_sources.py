"""Cleaning PDF-extracted text while keeping exact raw offsets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.sources import SourceError, clean_text, load_corpus, load_document, locate, make_document


def _skeleton(s: str) -> str:
    return "".join(ch.casefold() for ch in s if ch.isalnum())


def test_offsets_point_at_the_same_characters(seed_docs):
    for doc in seed_docs:
        assert len(doc.offsets) == len(doc.clean) + 1
        for i, ch in enumerate(doc.clean):
            raw_ch = doc.raw[doc.offsets[i]]
            if ch.isalnum():
                assert raw_ch == ch, (doc.doc_id, i)
            else:
                assert raw_ch == ch or raw_ch.isspace(), (doc.doc_id, i, ch, raw_ch)


def test_offsets_are_increasing(seed_docs):
    for doc in seed_docs:
        assert all(a <= b for a, b in zip(doc.offsets, doc.offsets[1:], strict=False))


def test_line_end_hyphenation_is_repaired(seed_docs):
    text = {d.doc_id: d.clean for d in seed_docs}
    assert "жан-жақты" in text["000_3c27c5d18ec362a4.txt"]  # a real compound keeps its hyphen
    assert "қалып" in text["002_6d4c584d9e8951c7.txt"]  # «қа-\nлып» was a line break
    assert "Ақсақалдар кеңесі" in text["002_6d4c584d9e8951c7.txt"]
    assert "1-ші" in text["000_3c27c5d18ec362a4.txt"]


def test_sentences_are_not_broken_by_blank_lines(seed_docs):
    doc = next(d for d in seed_docs if d.doc_id.startswith("000"))
    assert "жақындарына көңіл айтады" in doc.clean  # the raw file has a blank line between them
    assert "\n\n\n" not in doc.clean
    assert "  " not in doc.clean


def test_markdown_headings_and_links_are_cleaned(seed_docs):
    doc = next(d for d in seed_docs if d.doc_id.startswith("004"))
    assert "#" not in doc.clean
    assert "mailto:" not in doc.clean
    assert doc.title == "ҚАЗАҚСТАН ХАЛҚЫ АССАМБЛЕЯСЫ ЖҰМЫСЫНЫҢ ҚҰҚЫҚТЫҚ НЕГІЗДЕРІ"


def test_titles_are_meaningful(seed_docs):
    titles = {d.doc_id[:3]: d.title for d in seed_docs}
    assert titles["002"] == "Жансейіт Түймебаев: Ынтымақ үшін ымыра маңызды"
    assert "Ақылбековамен сұхбат" in titles["003"]


def test_locate_finds_quotes_across_line_breaks(seed_docs):
    doc = next(d for d in seed_docs if d.doc_id.startswith("000"))
    span = locate(doc, "шұғыл түрде жан-жақты және барынша объективті тексеру")
    assert span is not None
    start, end = span
    assert _skeleton(doc.raw[start:end]) == _skeleton(
        "шұғыл түрде жан-жақты және барынша объективті тексеру"
    )
    assert locate(doc, "бұл сөйлем құжатта жоқ мүлдем") is None
    assert locate(doc, "") is None


@pytest.mark.parametrize(
    "raw",
    [
        "a",
        "😀",
        "Қ",
        " \n ",
        "жан-\n\nжақты",
        "word " * 5000,
        "Привет, Қазақстан! Hello 😀 world.",
        "\t\r\n#\n",
    ],
)
def test_edge_inputs_keep_offsets(raw):
    clean, offsets = clean_text(raw)
    assert len(offsets) == len(clean) + 1
    for i, ch in enumerate(clean):
        assert ch == raw[offsets[i]] or raw[offsets[i]].isspace() or ch == " "


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_cleaner_never_crashes_and_alnum_survive(raw):
    clean, offsets = clean_text(raw)
    assert len(offsets) == len(clean) + 1
    for i, ch in enumerate(clean):
        if ch.isalnum():
            assert raw[offsets[i]] == ch


def test_bad_files_get_clear_errors(tmp_path: Path):
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    with pytest.raises(SourceError, match="empty"):
        load_document(empty)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\x00\x01\x02garbage\x00")
    with pytest.raises(SourceError, match="binary"):
        load_document(binary)
    cp1251 = tmp_path / "ru.txt"
    cp1251.write_bytes("Привет мир".encode("cp1251"))
    with pytest.raises(SourceError, match="UTF-8"):
        load_document(cp1251)
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    with pytest.raises(SourceError, match="not a readable PDF"):
        load_document(pdf)
    exe = tmp_path / "a.exe"
    exe.write_bytes(b"MZ")
    with pytest.raises(SourceError, match="unsupported"):
        load_document(exe)
    with pytest.raises(SourceError, match="not found"):
        load_corpus(tmp_path / "missing")


def test_utf16_with_bom_is_read(tmp_path: Path):
    p = tmp_path / "u16.txt"
    p.write_bytes("Қазақстан халқы Ассамблеясы".encode("utf-16"))
    assert load_document(p).clean == "Қазақстан халқы Ассамблеясы"


def test_make_document_maps_spans():
    doc = make_document("x.txt", "Бірінші жол\n\nекінші жол. Үшінші сөйлем.")
    assert doc.clean == "Бірінші жол екінші жол. Үшінші сөйлем."
    a = doc.clean.index("екінші")
    s, e = doc.raw_span(a, a + len("екінші жол"))
    assert doc.raw[s:e] == "екінші жол"
    assert re.sub(r"\s+", " ", doc.raw[doc.offsets[0] :]) == doc.clean


def test_a_title_in_capitals_is_found_in_text_without_markup():
    # As OCR gives a printed article: a rubric, a section in capitals, then the title in
    # capitals sharing its paragraph with the author line. The most specific (last) wins.
    raw = (
        "МАЗМҰНЫ / СОДЕРЖАНИЕ / CONTENT\n\n"
        "Конференция материалдар жинағы, 2023 жыл, Қарағанды қаласы.\n\n"
        "СЕКЦИЯ IV. ЭКОНОМИКА ЖӘНЕ ҚҰҚЫҚ\nҒЫЛЫМДАРЫ\n\n"
        "ӘОЖ 34:342.4\n\n"
        "ҚАЗАҚСТАН ХАЛҚЫ АССАМБЛЕЯСЫ\nЖҰМЫСЫНЫҢ ҚҰҚЫҚТЫҚ НЕГІЗДЕРІ\n"
        "Абдуғани Жанерке Нұржанқызы, студент\n\n"
        "Қазақстан халқы Ассамблеясы 1995 жылы құрылған мекеме болып табылады."
    )
    doc = make_document("scan.pdf", raw)
    assert doc.title == "ҚАЗАҚСТАН ХАЛҚЫ АССАМБЛЕЯСЫ ЖҰМЫСЫНЫҢ ҚҰҚЫҚТЫҚ НЕГІЗДЕРІ"
    # No line in capitals: the first paragraph of three words or more, as before.
    plain = make_document("a.txt", "АДАМ ҚҰҚЫҚТАРЫ\n\nРоза Ақылбековамен сұхбат бүгін жарияланды.")
    assert plain.title == "Роза Ақылбековамен сұхбат бүгін жарияланды."
