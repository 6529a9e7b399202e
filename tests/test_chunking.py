"""Sentence-aware chunking with exact raw offsets and content-hash ids."""

from __future__ import annotations

from rag.chunking import ChunkingConfig, chunk_corpus, chunk_document, chunk_id, split_sentences
from rag.sources import make_document


def _skeleton(s: str) -> str:
    return "".join(ch.casefold() for ch in s if ch.isalnum())


def _spans_exactly(raw_span: str, text: str) -> bool:
    """The text's letters appear in order in the raw span, which starts and ends on them.

    Cleaning only drops characters (spacing, line-end hyphens, markdown link targets), so the
    chunk is a subsequence of its raw span, and the span has no excess at either end.
    """
    sk, sub = _skeleton(raw_span), _skeleton(text)
    it = iter(sk)
    return bool(sub) and all(ch in it for ch in sub) and sk[:1] == sub[:1] and sk[-1:] == sub[-1:]


def test_every_chunk_maps_back_to_its_raw_span(seed_docs, seed_chunks):
    raw = {d.doc_id: d.raw for d in seed_docs}
    assert len(seed_chunks) > 50
    for c in seed_chunks:
        span = raw[c.doc_id][c.start : c.end]
        # raw[start:end] holds exactly the chunk's characters, up to spacing and line-end hyphens
        assert _spans_exactly(span, c.text), c.chunk_id
        assert span[0] == c.text[0] and span[-1] == c.text[-1]
        for s in c.sentences:
            assert _spans_exactly(raw[c.doc_id][s.start : s.end], s.text)
            assert c.start <= s.start < s.end <= c.end


def test_chunks_cover_every_sentence(seed_docs, seed_chunks):
    for doc in seed_docs:
        starts = {s.start for c in seed_chunks if c.doc_id == doc.doc_id for s in c.sentences}
        assert {s.start for s in split_sentences(doc)} <= starts


def test_chunk_sizes_respect_config(seed_docs):
    cfg = ChunkingConfig(target_chars=400, max_chars=900, overlap=1)
    chunks = chunk_corpus(seed_docs, cfg)
    assert all(len(c.text) <= cfg.max_chars for c in chunks)
    bigger = chunk_corpus(seed_docs, ChunkingConfig(target_chars=1200, max_chars=1600, overlap=0))
    assert len(bigger) < len(chunks)


def test_ids_are_content_hashes_and_stable(seed_docs, seed_chunks):
    again = chunk_corpus(seed_docs)
    assert [c.chunk_id for c in again] == [c.chunk_id for c in seed_chunks]
    assert len({c.chunk_id for c in seed_chunks}) == len(seed_chunks)
    c = seed_chunks[0]
    assert c.chunk_id == chunk_id(c.doc_id, c.text)


def test_abbreviations_and_initials_do_not_split():
    text = (
        "Академик Е. А. Бөкетов атындағы университет 1972 ж. ашылған. "
        "Ол з.ғ.м. дәрежесін алды, т.б. марапаттары бар. "
        "«Бұл маңызды. Өте маңызды» деді ол. Келесі сөйлем."
    )
    sents = [s.text for s in split_sentences(make_document("a.txt", text))]
    assert sents[0].startswith("Академик Е. А. Бөкетов") and sents[0].endswith("ашылған.")
    assert sents[1].startswith("Ол з.ғ.м.") and "т.б. марапаттары" in sents[1]
    assert sents[2] == "«Бұл маңызды. Өте маңызды» деді ол."
    assert sents[3] == "Келесі сөйлем."


def test_numbered_list_items_stay_whole():
    text = "Талаптар:\n\n1. Сайлауды ашық өткізу.\n\n2. Бақылаушыларға рұқсат беру."
    sents = [s.text for s in split_sentences(make_document("l.txt", text))]
    assert "1. Сайлауды ашық өткізу." in sents
    assert "2. Бақылаушыларға рұқсат беру." in sents


def test_a_period_inside_a_number_does_not_end_a_sentence():
    # A signature date (seed doc 001 ends with «23.10.20»), a decimal and a section number.
    text = "Мәлімдеме жарияланды. 23.10.20 Алматы. Өсім 4.5 пайыз болды. 2.1 бөлімде жазылған."
    sents = [s.text for s in split_sentences(make_document("d.txt", text))]
    assert sents == [
        "Мәлімдеме жарияланды.",
        "23.10.20 Алматы.",
        "Өсім 4.5 пайыз болды.",
        "2.1 бөлімде жазылған.",
    ]


def test_tiny_and_odd_documents():
    for raw in ["Қ", "😀 emoji only 😀", "a" * 5000, "Mixed Қазақ and English. Сөйлем!"]:
        doc = make_document("t.txt", raw)
        chunks = chunk_document(doc)
        assert chunks
        for c in chunks:
            assert _skeleton(raw[c.start : c.end]) == _skeleton(c.text)
