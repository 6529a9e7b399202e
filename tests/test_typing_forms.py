"""Kazakh typed in Latin, in chat transliteration and on a Russian keyboard (no model).

The conversion is checked on tiny vocabularies (what the corpus holds decides), then on the seed
corpus against the question set's hand-typed variants.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from rag.typing_forms import (
    Vocabulary,
    kazakh_function_words,
    latin_to_cyrillic,
    normalize_query,
    to_latin_2021,
    typing_form,
)
from tests.conftest import SEEDS

CORPUS = (
    "Қазақстан халқы Ассамблеясы 1995 жылы құрылды. Ассамблеясының төрағасы Қазақстан халқы "
    "атынан сөйледі. Қордай ауданында қақтығыс болды. HAQ қозғалысы мәлімдеме жасады. "
    "Медиация орталығы ашылды, медиация кеңінен қолданылады."
)


@pytest.fixture(scope="module")
def tiny() -> Vocabulary:
    return Vocabulary.from_texts([CORPUS], extra=kazakh_function_words())


@pytest.mark.parametrize(
    ("typed", "form"),
    [
        ("Qazaqstan halqy Assambleıasy qashan quryldy?", "latin"),
        ("Kazakhstan halky Assambleyasy kashan kuryldy?", "translit"),
        ("Казакстан халкы Ассамблеясы кашан курылды?", "russian_keyboard"),
    ],
)
def test_each_form_is_brought_to_the_corpus_spelling(tiny, typed, form):
    q = normalize_query(typed, tiny)
    assert q.form == form
    assert q.text == "Қазақстан халқы Ассамблеясы қашан құрылды?"


def test_standard_cyrillic_is_left_as_typed(tiny):
    for text in ("Қазақстан халқы Ассамблеясы қашан құрылды?", "Абай кім?", "HAQ не талап етті?"):
        q = normalize_query(text, tiny)
        assert (q.text, q.lexical, q.form) == (text, text, "cyrillic")


def test_a_latin_name_the_corpus_writes_in_latin_is_kept(tiny):
    assert normalize_query("HAQ qozğalysy", tiny).text == "HAQ қозғалысы"


def test_the_corpus_frequencies_decide_and_close_calls_keep_both():
    vocab = Vocabulary.from_texts(["қол қол қол кол", "тартып тәртіп тартып тәртіп"])
    assert normalize_query("kol", vocab).text == "қол"  # 3 against 1
    both = normalize_query("tartip", vocab)
    assert {both.text} < {"тартып", "тәртіп"}
    assert set(both.lexical.split()) == {"тартып", "тәртіп"}  # BM25 reads both


def test_an_ending_the_corpus_lacks_keeps_its_stem_with_harmony(tiny):
    # The corpus has «құрылды» but not «құрылған»; «Ассамблеясының» but not «-ына».
    assert normalize_query("qurylğan", tiny).text == "құрылған"
    assert normalize_query("assambleyasyna", tiny).text == "ассамблеясына"


def test_a_dropped_letter_inside_a_word_is_a_slip(tiny):
    assert normalize_query("medıasıa", tiny).text == "медиация"  # ц typed as s


def test_the_letter_table_without_a_corpus():
    assert latin_to_cyrillic("qazaqstan") == "қазақстан"
    assert latin_to_cyrillic("jañaözen") == "жаңаөзен"
    # chat ASCII: velars and high vowels follow vowel harmony; ng before a vowel is н+г
    assert latin_to_cyrillic("kalay") == "қалай"
    assert latin_to_cyrillic("saiyn") == "сайын"
    assert latin_to_cyrillic("belgilengen") == "белгіленген"


def test_answers_in_the_2021_latin_alphabet():
    assert to_latin_2021("Қазақстан халқы Ассамблеясы") == "Qazaqstan halqy Assambleıasy"
    assert to_latin_2021("Жаңаөзен, 2011 жыл [1]") == "Jañaözen, 2011 jyl [1]"


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ("Қордай қайда?", "cyrillic"),
        ("Кордай кайда?", "russian_keyboard"),
        ("Qordaı qaıda?", "latin"),
        ("Kordai kaida?", "translit"),
        ("When did it happen?", "translit"),  # the form says how, not which language
        ("123", "cyrillic"),
    ],
)
def test_typing_form(text, form):
    assert typing_form(text) == form


# ---------------------------------------------------------------- the question set's variants

_WORD = re.compile(r"[^\W\d_]+")


@pytest.fixture(scope="module")
def seed_vocab() -> Vocabulary:
    texts = [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))]
    return Vocabulary.from_texts(texts, extra=kazakh_function_words())


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    lines = (SEEDS / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_original_kazakh_questions_are_unchanged(seed_vocab, rows):
    changed = [
        r["id"]
        for r in rows
        if r["lang"] == "kk"
        and "form" not in r
        and normalize_query(r["question"], seed_vocab).text != r["question"]
    ]
    assert changed == []


def test_hand_typed_variants_come_back_word_for_word(seed_vocab, rows):
    """Share of words respelled exactly as in the Cyrillic original (measured 0.94-0.96)."""
    by_id = {r["id"]: r for r in rows}
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for r in rows:
        if r.get("form") not in ("latin", "translit", "russian_keyboard"):
            continue
        got = _WORD.findall(normalize_query(r["question"], seed_vocab).text.lower())
        want = _WORD.findall(by_id[r["variant_of"]]["question"].lower())
        if len(got) == len(want):
            right[r["form"]] += sum(a == b for a, b in zip(got, want, strict=True))
            total[r["form"]] += len(want)
    assert set(total) == {"latin", "translit", "russian_keyboard"}
    for form in total:
        assert right[form] / total[form] >= 0.9, (form, right[form] / total[form])


# ---------------------------------------------------------------- with the real model


@pytest.fixture(scope="module")
def real_engine(tmp_path_factory):
    from rag.pipeline import make_engine
    from rag.settings import Settings

    folder = tmp_path_factory.mktemp("forms") / "seeds"
    return make_engine(Settings(corpus=SEEDS, index=folder, uploads=None))


@pytest.mark.model
def test_every_form_retrieves_the_evidence_its_cyrillic_twin_retrieves(real_engine, rows):
    """For each variant whose Cyrillic twin has a chunk of its evidence document in the top 5,
    the variant must find that same chunk in its top 5 in at least 95 % of cases per form
    (the issue's target is evidence@5 within 0.03 of the originals; `kazrag eval` measures it
    against the quoted spans)."""
    from rag.pipeline import prepare_question, retrieve

    def top5(question: str) -> set[tuple[str, str]]:
        prep = prepare_question(real_engine, question)
        hits = retrieve(real_engine, prep.query, 5, lexical_query=prep.lexical)
        return {(h.chunk.doc_id, h.chunk.chunk_id) for h in hits}

    by_id = {r["id"]: r for r in rows}
    twin_top: dict[str, set[tuple[str, str]]] = {}
    kept: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for r in rows:
        form = r.get("form")
        if form not in ("latin", "translit", "russian_keyboard"):
            continue
        twin = by_id[r["variant_of"]]
        if twin["id"] not in twin_top:
            twin_top[twin["id"]] = top5(twin["question"])
        evidence_docs = {ev["doc_id"] for ev in twin["evidence"]}
        wanted = {c for c in twin_top[twin["id"]] if c[0] in evidence_docs}
        if not wanted:
            continue  # the original misses too: nothing to keep
        got = top5(r["question"])
        total[form] += 1
        kept[form] += bool(got & wanted)
    assert set(total) == {"latin", "translit", "russian_keyboard"}
    for form in total:
        assert kept[form] / total[form] >= 0.95, (form, kept[form], total[form])
