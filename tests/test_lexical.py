"""The Kazakh-aware analyzer and the BM25 index (fast: no model, tiny corpora)."""

from __future__ import annotations

import json
import time
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import numpy as np
import pytest

from rag.lexical import (
    DEFAULT_CONFIG,
    STOPWORDS_VERSION,
    BM25Index,
    LexicalConfig,
    analyze,
    fold,
    kazakh_stem,
    stopwords,
    tokenize,
    transliterate,
)

# ---------------------------------------------------------------------------------------------
# analyzer


def test_case_endings_conflate() -> None:
    forms = ["Ассамблеясының", "Ассамблеясы", "Ассамблеяға", "Ассамблеясын", "Ассамблеясында"]
    terms = [analyze(f) for f in forms]
    assert all(len(t) == 1 for t in terms), terms
    assert len({t[0] for t in terms}) == 1, terms


@pytest.mark.parametrize(
    "forms",
    [
        ["кітап", "кітабы", "кітаптар", "кітаптарымыздан", "кітапқа"],
        ["жүрек", "жүрегі", "жүректің"],
        ["мемлекет", "мемлекеттің", "мемлекеттер", "мемлекетке"],
        ["қазақстан", "Қазақстанның", "Қазақстанда", "қазақстандағы", "Қазақстаннан"],
        ["бала", "балалар", "балалардың", "балаға"],
    ],
)
def test_inflected_forms_share_a_term(forms: list[str]) -> None:
    assert len({tuple(analyze(f)) for f in forms}) == 1, [analyze(f) for f in forms]


def test_stemmer_leaves_short_and_foreign_words() -> None:
    assert kazakh_stem("адам") == "адам"  # not 1sg possessive -м
    assert kazakh_stem("тау") == "тау"  # min stem length
    assert kazakh_stem("tables") == "tables"
    assert kazakh_stem("1925") == "1925"


def test_different_words_stay_apart() -> None:
    assert analyze("қала") != analyze("қалам")
    assert analyze("жер") != analyze("жел")


def test_stopwords_and_question_words_removed() -> None:
    assert analyze("Қазақстан Халқы Ассамблеясы қай жылы құрылды?") == analyze(
        "Қазақстан Халқы Ассамблеясы құрылды"
    )
    for q in [
        "қандай",
        "Қашан?",
        "қанша",
        "кім",
        "не",
        "неше",
        "нешінші",
        "неге",
        "қалай",
        "қайда",
        "ма",
        "ме",
        "ба",
        "бе",
        "па",
        "пе",
        "ше",
        "ғой",
        "және",
        "дегеніміз",
    ]:
        assert analyze(q) == [], q
    # «жылы» is only a stop-word in «қай жылы»
    assert analyze("1925 жылы") != analyze("1925")
    assert "қандай" in stopwords(STOPWORDS_VERSION)
    assert "қандай" not in stopwords("function")
    assert stopwords("none") == frozenset()


def test_russian_and_english_stopwords() -> None:
    assert analyze("Какой город является столицей Казахстана?") == analyze(
        "город столицей Казахстана"
    )
    assert analyze("What is the capital of Kazakhstan?") == analyze("capital Kazakhstan")
    # Kazakh content words that are Russian stop-words are kept
    assert analyze("он") and analyze("от") and analyze("без")


def test_hyphenated_compound_gives_its_parts() -> None:
    terms = analyze("жан-жақты")
    assert len(terms) == 2
    assert terms[0] == analyze("жан")[0]
    assert tokenize("жан-жақты") == ["жан", "жақты"]


def test_latin_and_english_text() -> None:
    terms = analyze("BM25 retrieval for Kazakh QA")
    assert "bm25" in terms
    assert any(t.startswith("retri") for t in terms)
    assert analyze("KAZAKH") == analyze("kazakh")


def test_normalisation() -> None:
    # NFKC (full-width letters), casefold, mixed-script Kazakh words, Cyrillic Roman numerals
    assert analyze("ＡＢＣ") == analyze("abc")
    assert analyze("бiрi") == analyze("бірі")  # Latin i inside a Cyrillic word
    assert tokenize("ХІХ ғасыр") == ["xix", "ғасыр"]
    assert analyze("ХІХ ғасыр") == analyze("XIX ғасыр")


@pytest.mark.parametrize("text", ["", "   ", "😀", "🇰🇿 😀 !!!", "?", "—", "\n\t"])
def test_empty_and_symbol_only_text(text: str) -> None:
    assert analyze(text) == []


def test_one_character_and_digits() -> None:
    assert analyze("ә") == ["ә"]
    assert analyze("7") == ["7"]
    assert analyze("1234567890") == ["1234567890"]  # digits are never cut


def test_very_long_line() -> None:
    text = "Абай Құнанбайұлы — ақын, ағартушы, жазба қазақ әдебиетінің негізін қалаушы. " * 2000
    start = time.perf_counter()
    terms = analyze(text)
    assert time.perf_counter() - start < 5.0
    assert len(terms) >= 2000 * 6
    long_word = "а" * 10_000
    assert analyze(long_word) == [long_word[: DEFAULT_CONFIG.prefix_len]]


def test_config_json_round_trip() -> None:
    data = DEFAULT_CONFIG.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["stopwords"] == STOPWORDS_VERSION and data["method"] == DEFAULT_CONFIG.method
    assert LexicalConfig.from_json(data) == DEFAULT_CONFIG
    assert LexicalConfig.from_json(json.dumps(data)) == DEFAULT_CONFIG
    with pytest.raises(ValueError):
        LexicalConfig(method="magic")
    with pytest.raises(FrozenInstanceError):
        DEFAULT_CONFIG.method = "none"  # type: ignore[misc]


@pytest.mark.parametrize(
    "config",
    [
        LexicalConfig(method="none", stopwords="none"),
        LexicalConfig(method="prefix", prefix_len=5),
        LexicalConfig(method="suffix", suffix_set="full"),
        DEFAULT_CONFIG,
    ],
)
def test_every_method_runs(config: LexicalConfig) -> None:
    terms = analyze("Қазақстан Республикасының астанасы — Астана қаласы.", config)
    assert terms and all(isinstance(t, str) and t for t in terms)


# ---------------------------------------------------------------------------------------------
# BM25 index

CORPUS = [
    "Қазақстан Халқы Ассамблеясы 1995 жылы 1 наурызда құрылды.",
    "Абай Құнанбайұлы — қазақ ақыны, ағартушы, жазба әдебиетінің негізін қалаушы.",
    "Алматы — Қазақстандағы ең ірі қала, Іле Алатауының етегінде орналасқан.",
    "Балқаш көлі — Қазақстанның шығысындағы ірі көл, оның бір бөлігі тұщы, бір бөлігі тұзды.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "",
]


@pytest.fixture(scope="module")
def index() -> BM25Index:
    return BM25Index.build(CORPUS)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Қазақстан Халқы Ассамблеясы қай жылы құрылды?", 0),
        ("Ассамблеяның құрылған жылы", 0),
        ("Абайдың әдебиеттегі орны қандай?", 1),
        ("Қазақстандағы ең ірі қала қайсы?", 2),
        ("Балқаш көлінің суы қандай?", 3),
        ("How do plants convert light?", 4),
    ],
)
def test_relevant_document_ranks_first(index: BM25Index, query: str, expected: int) -> None:
    hits = index.search(query, k=3)
    assert hits and hits[0][0] == expected, hits
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True)


def test_zero_score_rows_dropped(index: BM25Index) -> None:
    hits = index.search("Балқаш", k=10)
    assert [row for row, _ in hits] == [3]
    assert all(score > 0 for _, score in hits)
    assert index.search("мүлдем белгісіз сөз", k=10) == []
    assert index.search("", k=10) == []
    assert index.search("қандай? не? кім?", k=10) == []  # stop-words only
    assert index.search("Балқаш", k=0) == []


def test_k_limits_results(index: BM25Index) -> None:
    hits = index.search("Қазақстан", k=2)
    assert len(hits) == 2
    assert {row for row, _ in index.search("Қазақстан", k=10)} == {0, 2, 3}


def test_scores_match_search(index: BM25Index) -> None:
    scores = index.scores("Қазақстандағы ірі көл")
    hits = index.search("Қазақстандағы ірі көл", k=10)
    assert [row for row, _ in hits] == sorted(np.flatnonzero(scores > 0), key=lambda r: -scores[r])
    for row, score in hits:
        assert score == pytest.approx(float(scores[row]))


def test_coverage(index: BM25Index) -> None:
    assert index.coverage("Абай Құнанбайұлы") == 1.0
    assert index.coverage("Абай zebra") == 0.5
    assert index.coverage("zebra giraffe") == 0.0
    assert index.coverage("") == 0.0
    assert index.coverage("қандай?") == 0.0


def test_transliteration_and_folding_meet_kazakh_spellings() -> None:
    assert fold("tokayev") == fold("тоқаев")
    assert fold("kordai") == fold("қордай")
    assert fold("yerzhanov") == fold("ержанов")
    assert fold("кордайский").startswith(fold("қордай"))
    assert fold("tuimebayev") == fold("түймебаев")
    assert transliterate("брюссель") == "брюссель"  # Cyrillic is left as it is
    assert transliterate("shcherbakov") == "щербаков"


BRIDGE_CORPUS = [
    "Тоқаев 22-23 маусым Брюссельде болды.",
    "Қордай ауданында қақтығыс болды.",
    "Абай Құнанбайұлы ақын болған.",
]


def test_russian_and_english_names_reach_kazakh_terms() -> None:
    idx = BM25Index.build(BRIDGE_CORPUS)
    assert idx.search("When did Tokayev visit Brussels?", 3)[0][0] == 0
    assert idx.search("Что произошло в Кордайском районе?", 3)[0][0] == 1
    assert idx.coverage("Tokayev Brussels") == 1.0
    assert "тоқаев" in idx.query_terms("Tokayev")
    # Words with Kazakh letters go through the analyser only; unrelated foreign words bridge
    # to nothing.
    assert idx.bridged_terms("Қордайлықтардың құнанбаевтары") == []
    assert idx.bridged_terms("zebra giraffe photosynthesis") == []
    assert idx.search("zebra giraffe", 3) == []


def test_empty_corpus() -> None:
    empty = BM25Index.build([])
    assert len(empty) == 0
    assert empty.search("Абай", 5) == []
    only_blank = BM25Index.build(["", "😀"])
    assert only_blank.search("Абай", 5) == []


def test_add_rebuilds(index: BM25Index) -> None:
    bigger = index.add(["Байкал — Ресейдегі терең көл."])
    assert len(bigger) == len(CORPUS) + 1
    assert bigger.search("Байкал", 3)[0][0] == len(CORPUS)
    assert len(index) == len(CORPUS)  # the old index is unchanged


@pytest.mark.parametrize("method", ["lucene", "bm25+", "bm25l"])
def test_bm25_variants_drop_unmatched_rows(method: str) -> None:
    idx = BM25Index.build(CORPUS, replace(DEFAULT_CONFIG, bm25_method=method))
    hits = idx.search("Балқаш", k=10)
    assert [row for row, _ in hits] == [3]


def test_save_load_round_trip(index: BM25Index, tmp_path: Path) -> None:
    folder = tmp_path / "lexical"
    index.save(folder)
    loaded = BM25Index.load(folder)
    assert loaded.config == index.config
    assert loaded.texts == index.texts
    for query in ["Қазақстан", "Абай ақын", "ірі көл", "plants energy", "белгісіз", ""]:
        assert loaded.search(query, 10) == index.search(query, 10)


def test_saved_folder_has_no_pickle(index: BM25Index, tmp_path: Path) -> None:
    index.save(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["lexical.json", "lexical.npz"]
    manifest = json.loads((tmp_path / "lexical.json").read_text(encoding="utf-8"))
    assert manifest["config"] == index.config.to_json()
    with np.load(tmp_path / "lexical.npz", allow_pickle=False) as npz:
        for name in npz.files:
            assert npz[name].dtype != object
    for path in tmp_path.iterdir():
        assert not path.read_bytes().startswith(b"\x80"), path  # pickle protocol marker
        assert path.suffix not in {".pkl", ".pickle"}


def test_save_load_empty_index(tmp_path: Path) -> None:
    BM25Index.build([]).save(tmp_path)
    assert BM25Index.load(tmp_path).search("Абай", 3) == []


def test_load_rejects_foreign_manifest(tmp_path: Path) -> None:
    (tmp_path / "lexical.json").write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(ValueError):
        BM25Index.load(tmp_path)


def test_query_is_fast_on_a_thousand_documents() -> None:
    words = ["қазақ", "тіл", "тарих", "жер", "су", "тау", "өзен", "көл", "қала", "ауыл"]
    words += ["мектеп", "кітап", "ақын", "жазушы", "ғалым", "мемлекет", "халық", "заң"]
    words += ["ғасыр", "соғыс", "бейбітшілік", "өнер", "музыка", "ғылым"]
    rng = np.random.default_rng(0)
    docs = [" ".join(rng.choice(words, size=120)) + f" құжат{i}" for i in range(1000)]
    idx = BM25Index.build(docs)
    queries = [" ".join(rng.choice(words, size=8)) + "дың қандай?" for _ in range(50)]
    idx.search(queries[0], 10)
    start = time.perf_counter()
    for q in queries:
        idx.search(q, 10)
    per_query_ms = (time.perf_counter() - start) * 1000 / len(queries)
    assert per_query_ms < 5.0, per_query_ms


@pytest.mark.parametrize("method", ["lucene", "robertson", "atire", "bm25l", "bm25+"])
def test_scores_are_bm25s_own_to_the_last_bit(method: str, tmp_path: Path) -> None:
    """Queries are scored from the saved matrix without bm25s: the same float32 sums."""
    import bm25s

    cfg = LexicalConfig(bm25_method=method)
    texts = [t for t in CORPUS if t] + [
        "Ассамблея Ассамблеясы ассамблеяның құрылды құрылған жылы 1995 наурыз",
        "Қордай ауданында 2020 жылы ақпанда қақтығыс болды; Қордай оқиғасы.",
    ]
    built = BM25Index.build(texts, cfg)
    built.save(tmp_path / "lexical")
    loaded = BM25Index.load(tmp_path / "lexical")
    reference = bm25s.BM25(k1=cfg.k1, b=cfg.b, method=method, backend="numpy")
    reference.scores = {
        "data": loaded._data,
        "indices": loaded._indices,
        "indptr": loaded._indptr,
        "num_docs": len(texts),
    }
    reference.nonoccurrence_array = loaded._nonoccurrence
    assert (loaded._nonoccurrence is not None) == (method in ("bm25l", "bm25+"))
    queries = [
        "Қазақстан Халқы Ассамблеясы қай жылы құрылды?",
        "Ассамблея Ассамблея құрылды",  # a repeated term counts twice
        "Қордай оқиғасы қашан болды?",
        "How do plants convert light energy?",
    ]
    for query in queries:
        ids = loaded.query_ids(query)
        assert ids, query
        ours = loaded._scores_from_ids(ids)
        theirs = reference.get_scores_from_ids(ids)
        assert ours.dtype == theirs.dtype == np.float32
        assert np.array_equal(ours, theirs), query
        assert np.array_equal(built.scores(query), loaded.scores(query))
