"""The pure metrics of ``evals/metrics.py`` against hand-computed values (fast, no model)."""

from __future__ import annotations

import math

import pytest

from evals.metrics import (
    TARGETS,
    KazqadRecord,
    Record,
    ThresholdError,
    answer_language,
    check_names,
    compare,
    contains_answer,
    covered,
    exact_match,
    figures,
    flatten,
    gate,
    hit_at,
    kazqad_figures,
    keyfacts,
    ndcg_at,
    normalize_answer,
    overlaps,
    parse_threshold,
    percentile,
    reciprocal_rank,
    relevance,
    score,
    strip_markers,
    strip_quoted,
    token_f1,
)

# --------------------------------------------------------------------------- spans and ranks


def test_overlaps_is_half_open_and_per_document():
    assert overlaps(("a", 0, 10), ("a", 9, 20))
    assert not overlaps(("a", 0, 10), ("a", 10, 20))  # touching is not overlapping
    assert not overlaps(("a", 10, 20), ("a", 0, 10))
    assert overlaps(("a", 5, 6), ("a", 0, 100))  # containment
    assert not overlaps(("a", 0, 10), ("b", 0, 10))
    assert not overlaps(("a", 5, 5), ("a", 0, 10))  # an empty span overlaps nothing


def test_relevance_and_coverage():
    evidence = [("d1", 100, 150), ("d2", 0, 40)]
    retrieved = [("d1", 0, 90), ("d2", 30, 300), ("d1", 140, 900), ("d3", 0, 50)]
    assert relevance(retrieved, evidence) == [False, True, True, False]
    assert covered(evidence, retrieved[:2]) == [False, True]
    assert covered(evidence, retrieved) == [True, True]
    assert relevance([], evidence) == []
    assert relevance(retrieved, []) == [False] * 4


def test_hit_and_reciprocal_rank():
    rel = [False, False, True, False, True]
    assert hit_at(rel, 1) == 0.0
    assert hit_at(rel, 2) == 0.0
    assert hit_at(rel, 3) == 1.0
    assert reciprocal_rank(rel, 10) == pytest.approx(1 / 3)
    assert reciprocal_rank(rel, 2) == 0.0
    assert reciprocal_rank([], 10) == 0.0
    assert reciprocal_rank([True], 10) == 1.0


def test_ndcg_hand_computed():
    # Relevant at ranks 1 and 3, two relevant in the whole index:
    # DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) = 1.6309…
    rel = [True, False, True, False]
    assert ndcg_at(rel, 2, 10) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    # Three relevant in the index but only two retrieved: the ideal list has three on top.
    idcg3 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at(rel, 3, 10) == pytest.approx(1.5 / idcg3)
    # A relevant item only at rank 2: 1/log2(3).
    assert ndcg_at([False, True], 1, 10) == pytest.approx(1 / math.log2(3))
    assert ndcg_at([True, True], 2, 10) == pytest.approx(1.0)
    assert ndcg_at([False] * 5, 3, 10) == 0.0
    assert ndcg_at([], 0, 10) == 0.0
    # A caller that under-counts the relevant items never gets more than 1.
    assert ndcg_at([True, True, True], 1, 10) == pytest.approx(1.0)
    # Beyond the cut-off nothing counts.
    assert ndcg_at([False] * 10 + [True], 1, 10) == 0.0


# --------------------------------------------------------------------------- text


def test_keyfacts_case_and_spacing_insensitive():
    found, missing = keyfacts(
        "Ассамблея  Имитациялық сипатта [1] болды.",
        ["имитациялық", "БУТАФОРИЯЛЫҚ", "сипатта болды"],
    )
    assert found == ["имитациялық", "сипатта болды"]  # the marker between words is dropped
    assert missing == ["БУТАФОРИЯЛЫҚ"]
    assert keyfacts("anything", []) == ([], [])
    assert keyfacts("", ["x"]) == ([], ["x"])


def test_squad_normalisation_em_and_f1():
    assert normalize_answer("The  «Нұр Отан» партиясы!") == "нұр отан партиясы"
    assert exact_match("Нұр Отан.", "нұр отан") == 1.0
    assert exact_match("Нұр Отан партиясы", "нұр отан") == 0.0
    # pred 3 tokens, ref 2 tokens, 2 shared: P = 2/3, R = 1, F1 = 0.8
    assert token_f1("Нұр Отан партиясы", "нұр отан") == pytest.approx(0.8)
    # Repeated tokens are counted with multiplicity: pred "a a b", ref "a b b" -> 2 shared.
    assert token_f1("x x y", "x y y") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0
    assert token_f1("x", "") == 0.0
    assert token_f1("the", "") == 1.0  # an English article normalises away
    assert token_f1("бір", "екі") == 0.0


def test_contains_answer_is_whole_word():
    assert contains_answer("Ол 1991 жылы [1] құрылды.", "1991 жылы")
    assert not contains_answer("Ол 19910 жылы құрылды.", "1991")
    assert contains_answer("«Нұр Отан» партиясы", "Нұр Отан")
    assert not contains_answer("anything", "")


def test_strip_markers():
    assert strip_markers("Бірінші [1]. Екінші [2, 3]") == "Бірінші. Екінші"


RU_ANSWER = (
    "В документах (на казахском языке) сказано:\n"
    "- «Ассамблея «Нұр Отан» партиясымен бірге жұмыс істеді.» [1]\n"
    "- «Қордай ауданында оқиға болды.» [2]"
)


def test_strip_quoted_keeps_only_own_words():
    assert strip_quoted(RU_ANSWER).strip() == "В документах (на казахском языке) сказано:"
    # Nested quotes inside a sentence, not on a line of their own.
    assert strip_quoted("Сказано: «a «b» c» [1] и всё.") == "Сказано:  и всё."
    assert strip_quoted("") == ""


def test_answer_language_of_own_words():
    assert answer_language(RU_ANSWER) == "ru"
    en = "The documents (in Kazakh) say:\n- «Қордай ауданында оқиға болды.» [1]"
    assert answer_language(en) == "en"
    # A Kazakh answer is the source sentences themselves (its inner «quotes» are dropped).
    assert answer_language("Ассамблея «Нұр Отан» партиясымен бірге жұмыс істеді. [1]") == "kk"
    # Nothing but a quotation: the quoted text decides (Kazakh), so a ru question mismatches.
    assert answer_language("- «Қордай ауданында оқиға болды.» [1]") == "kk"
    assert answer_language("Құжаттарда бұл сұраққа жауап жоқ.") == "kk"


def test_percentile_matches_numpy_linear():
    np = pytest.importorskip("numpy")
    xs = [12.0, 3.0, 7.0, 100.0, 5.0]
    for q in (0, 50, 90, 95, 100):
        assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))
    assert percentile([], 50) is None
    assert percentile([4.0], 95) == 4.0


# --------------------------------------------------------------------------- records -> figures


def _rec(**kw):
    base = dict(
        id="q",
        question="?",
        lang="kk",
        type="fact",
        answerable=True,
        answer="",
        abstained=False,
        timings_ms={"retrieve": 10.0, "generate": 5.0, "total": 15.0},
    )
    base.update(kw)
    return Record(**base)


EV = ("d", 100, 200)


def _records():
    return [
        # hit at rank 1, cited correctly, both keywords: everything right
        _rec(
            id="q1",
            answer="Алма және алмұрт [1]",
            keywords=("алма", "алмұрт"),
            reference="алма алмұрт",
            evidence=(EV,),
            n_relevant=1,
            retrieved=(("d", 150, 300), ("d", 400, 500)),
            citations=(("d", 120, 180),),
        ),
        # hit at rank 3 only, one citation off the evidence, half the keywords
        _rec(
            id="q2",
            lang="ru",
            type="number",
            answer="В документах сказано:\n- «алма» [1]",
            keywords=("алма", "жүзім"),
            reference="алма жүзім",
            evidence=(EV,),
            n_relevant=2,
            retrieved=(("d", 0, 50), ("e", 0, 50), ("d", 180, 260), ("d", 190, 400)),
            citations=(("d", 0, 40),),
        ),
        # answerable but abstained: false abstention, retrieval miss
        _rec(
            id="q3",
            type="number",
            answer="Құжаттарда жауап жоқ.",
            abstained=True,
            keywords=("бес",),
            reference="бес",
            evidence=(EV,),
            n_relevant=1,
            retrieved=(("e", 0, 50),) * 10,
        ),
        # unanswerable, correctly abstained
        _rec(
            id="q4",
            type="unanswerable",
            answerable=False,
            answer="Құжаттарда жауап жоқ.",
            abstained=True,
            timings_ms={"retrieve": 30.0, "generate": 5.0, "total": 35.0},
        ),
        # unanswerable, answered anyway (in English for an English question)
        _rec(
            id="q5",
            lang="en",
            type="unanswerable",
            answerable=False,
            answer="The documents (in Kazakh) say:\n- «Алма.» [1]",
            citations=(("d", 0, 10),),
        ),
    ]


def test_score_of_one_record():
    s = score(_records()[1])
    assert s.relevant_ranks == (3, 4)
    assert s.evidence_ranks == (3,)
    assert s.retrieval == {
        "hit@1": 0.0,
        "hit@5": 1.0,
        "mrr@10": pytest.approx(1 / 3),
        "ndcg@10": pytest.approx((1 / 2 + 1 / math.log2(5)) / (1 + 1 / math.log2(3))),
        "all_evidence@5": 1.0,
    }
    assert s.keyfacts_found == ("алма",)
    assert s.keyfacts_missing == ("жүзім",)
    assert s.keyfact_recall == 0.5
    assert s.citation_hits == (False,)
    assert s.evidence_cited == (False,)
    assert s.answer_language == "ru"
    assert s.language_match


def test_figures_hand_computed():
    f = figures(_records())
    assert f["n"] == 5
    r = f["retrieval"]
    assert r["n"] == 3  # the answerable questions with evidence
    assert r["hit@1"] == pytest.approx(round(1 / 3, 4))
    assert r["hit@5"] == pytest.approx(round(2 / 3, 4))
    assert r["mrr@10"] == pytest.approx(round((1 + 1 / 3 + 0) / 3, 4))
    a = f["answer"]
    assert a["n"] == 3
    assert a["keyfact_recall"] == pytest.approx(round((1 + 0.5 + 0) / 3, 4))
    assert a["keyfacts_all"] == pytest.approx(round(1 / 3, 4))
    c = f["citations"]
    assert c["n"] == 2  # citations of answerable questions: one hit, one miss
    assert c["precision"] == 0.5
    assert c["recall"] == pytest.approx(round(1 / 3, 4))
    assert c["answers_with_citation"] == 1.0
    ab = f["abstention"]
    # TP = q4, FP = q3, FN = q5: P = 1/2, R = 1/2, F1 = 1/2; false-abstention 1/3.
    assert ab["precision"] == 0.5
    assert ab["recall"] == 0.5
    assert ab["f1"] == 0.5
    assert ab["false_abstention_rate"] == pytest.approx(round(1 / 3, 4))
    assert ab["accuracy"] == pytest.approx(3 / 5)
    assert f["language"]["match"] == 1.0
    assert f["latency_ms"]["retrieve"]["p50"] == 10.0
    assert f["latency_ms"]["total"]["p95"] == pytest.approx(31.0)  # 15,15,15,15,35 -> 31
    assert list(f["by_lang"]) == ["kk", "ru", "en"]
    assert f["by_lang"]["ru"]["retrieval"]["hit@5"] == 1.0
    assert f["by_type"]["unanswerable"]["retrieval"]["hit@5"] is None
    assert f["by_type"]["unanswerable"]["abstention"]["recall"] == 0.5
    targets = {t["metric"]: t["passed"] for t in f["targets"]}
    assert targets["latency_ms.total.p95"] is True
    assert targets["answer.keyfacts_all"] is False
    assert [t["metric"] for t in f["targets"]] == [t.metric for t in TARGETS]


def test_abstention_undefined_without_abstentions():
    f = figures([_rec(id="x", keywords=("a",), answer="a")])
    assert f["abstention"]["precision"] is None
    assert f["abstention"]["recall"] is None
    assert f["abstention"]["f1"] is None
    assert f["abstention"]["false_abstention_rate"] == 0.0


def test_figures_of_nothing_has_every_name():
    flat = flatten(figures([]))
    assert "retrieval.hit@5" in flat and flat["retrieval.hit@5"] is None
    assert "latency_ms.total.p95" in flat
    assert "answer.keyfacts_all" in flat


def test_language_mismatch_counts():
    # A Russian question answered only with a Kazakh quotation has no Russian words of its own.
    f = figures([_rec(id="x", lang="ru", answer="- «Қордай ауданында оқиға болды.» [1]")])
    assert f["language"]["match"] == 0.0


# --------------------------------------------------------------------------- flat names, gate


def test_flatten_names():
    flat = flatten({"a": {"b": 1, "c": None, "d": {"e": 0.5}}, "f": [1, 2], "g": True, "h": "x"})
    assert flat == {"a.b": 1, "a.c": None, "a.d.e": 0.5}


def test_parse_threshold():
    t = parse_threshold("answer.keyfacts_all=0.8")
    assert (t.metric, t.op, t.value) == ("answer.keyfacts_all", ">=", 0.8)
    assert parse_threshold("retrieval.hit@5>=0.9").op == ">="
    t = parse_threshold(" latency_ms.total.p95 <= 500 ")
    assert (t.metric, t.op, t.value) == ("latency_ms.total.p95", "<=", 500.0)
    for bad in ("retrieval.hit@5", "=0.5", "retrieval.hit@5=high", "x=nan", ""):
        with pytest.raises(ThresholdError):
            parse_threshold(bad)


def test_gate_and_unknown_names():
    flat = {
        "retrieval.hit@5": 0.9,
        "answer.keyfacts_all": 0.7,
        "latency_ms.total.p95": 400.0,
        "abstention.f1": None,
    }
    ok = [parse_threshold("retrieval.hit@5=0.9"), parse_threshold("latency_ms.total.p95<=500")]
    assert gate(flat, ok) == []
    failing = gate(
        flat,
        [
            parse_threshold("answer.keyfacts_all=0.8"),
            parse_threshold("latency_ms.total.p95<=300"),
            parse_threshold("abstention.f1=0.1"),
        ],
    )
    assert len(failing) == 3
    assert failing[0].startswith("answer.keyfacts_all = 0.7")
    assert "undefined" in failing[2]
    check_names(ok, flat)
    with pytest.raises(ThresholdError, match=r"retrieval\.hit@7"):
        check_names([parse_threshold("retrieval.hit@7=0.5")], flat)


def test_compare_deltas():
    new = {"a": 0.8, "b": None, "c": 0.5}
    old = {"a": 0.6, "b": 0.2}
    assert compare(new, old) == {
        "a": (0.6, pytest.approx(0.2)),
        "b": (0.2, None),
        "c": (None, None),
    }


# --------------------------------------------------------------------------- KazQAD


def test_kazqad_figures_hand_computed():
    recs = [
        KazqadRecord(
            id="1",
            question="?",
            answers=("1991 жылы", "1991"),
            relevant=("c1", "c2"),
            ranked={"lexical": ("c3", "c1", "c2"), "dense": ("c1",), "hybrid": ("c2", "c9")},
            answer="Ол 1991 жылы құрылды [1].",
            abstained=False,
            span="Ол 1991 жылы құрылды.",
            cited=("c2", "c9"),
            gold_in_passages=True,
            timings_ms={"total": 10.0},
            search_ms={"lexical": 1.0, "dense": 2.0, "hybrid": 3.0},
        ),
        KazqadRecord(
            id="2",
            question="?",
            answers=("Абай",),
            relevant=("c5",),
            ranked={"lexical": ("c1",), "dense": ("c5",), "hybrid": ("c5",)},
            answer="Жауап жоқ.",
            abstained=True,
            span="",
            timings_ms={"total": 30.0},
        ),
    ]
    f = kazqad_figures(recs)
    lex = f["retrieval"]["lexical"]
    assert lex["recall@1"] == 0.0
    assert lex["recall@5"] == 0.5
    assert lex["mrr@10"] == pytest.approx(0.25)
    assert lex["all@10"] == 0.5
    idcg2 = 1 + 1 / math.log2(3)
    assert lex["ndcg@10"] == pytest.approx(
        round((1 / math.log2(3) + 1 / math.log2(4)) / idcg2 / 2, 4)
    )
    assert f["retrieval"]["dense"]["recall@1"] == 1.0
    assert f["retrieval"]["dense"]["all@10"] == pytest.approx(0.75)
    a = f["answer"]
    assert a["gold_in_answer"] == 0.5
    assert a["exact_match"] == 0.0
    # best gold for record 1: "1991 жылы" vs span "ол 1991 жылы құрылды": P 2/4, R 1 -> 2/3
    assert a["f1"] == pytest.approx(round((2 / 3) / 2, 4))
    assert a["abstained"] == 0.5
    assert a["gold_in_passages"] == 0.5
    assert f["citations"]["precision"] == 0.5
    assert f["latency_ms"]["total"]["p50"] == 20.0
    assert {t["metric"] for t in f["targets"]} >= {"retrieval.hybrid.recall@5"}


def test_kazqad_figures_of_nothing_has_every_mode():
    flat = flatten(kazqad_figures([]))
    for mode in ("lexical", "dense", "hybrid"):
        assert f"retrieval.{mode}.recall@5" in flat
