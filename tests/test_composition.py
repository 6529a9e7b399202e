"""Answers that follow the document: lists, reasons, several subjects (hand-made sentences)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from rag.generation import (
    GeneratorConfig,
    ScoredSentence,
    asks_list,
    carried,
    compose,
    follow,
    is_question,
    list_item,
    spread,
)
from rag.index import CorpusIndex
from rag.retriever import interleave, multi_subject, spread_documents, subject_queries
from rag.schema import Chunk, Hit, Sentence
from tests.conftest import SEEDS

VEC = np.ones(4, dtype=np.float32) / 2.0
# The rules that add sentences, seen with the announcement kept in the answer.
KEEP = GeneratorConfig(drop_announcement=False)


def make_doc(doc_id: str, texts: list[str], per_chunk: int = 100) -> tuple[str, list[Chunk]]:
    """A raw text made of ``texts`` (one per line) and chunks of ``per_chunk`` sentences."""
    raw = ""
    sents = []
    for t in texts:
        raw += "  "  # raw offsets differ from clean ones, as in a real file
        sents.append(Sentence(t, len(raw), len(raw) + len(t)))
        raw += t + "\n"
    chunks = []
    for i in range(0, len(sents), per_chunk):
        part = tuple(sents[i : i + per_chunk])
        chunks.append(
            Chunk(
                f"{doc_id}-c{i}",
                doc_id,
                f"Title {doc_id}",
                " ".join(s.text for s in part),
                part[0].start,
                part[-1].end,
                part,
            )
        )
    return raw, chunks


class FakeIndex:
    """The two things :func:`follow` reads from an index."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self.doc_sentences: dict[str, list[tuple[Sentence, Chunk]]] = {}
        for c in chunks:
            for s in c.sentences:
                self.doc_sentences.setdefault(c.doc_id, []).append((s, c))

    def sentence_vector(self, doc_id: str, start: int, end: int) -> None:
        return None


def scored(chunk: Chunk, i: int, score: float = 1.0, rank: int = 1) -> ScoredSentence:
    """The ``i``-th sentence of ``chunk`` as a chosen sentence."""
    hit = Hit(chunk, score, rank)
    return ScoredSentence(chunk.sentences[i], hit, VEC, 0.5, 0.0, 0.0, score)


def texts_of(chosen: list[ScoredSentence]) -> list[str]:
    return [c.sentence.text for c in chosen]


LIST_BY_COLON = [
    "Қозғалыс бұған дейін де мәлімдеме жасаған.",
    "Осыған байланысты HAQ келесі талаптарды қояды:",
    "1. Сайлау ашық өтуі тиіс.",
    "2. Бақылаушыларға кедергі жасалмауы керек.",
    "3. Нәтижелер уақытында жариялануы қажет.",
    "Мәлімдемеге қол қойылды.",
]


def test_a_colon_brings_the_numbered_items_after_it_in_document_order():
    _raw, chunks = make_doc("d", LIST_BY_COLON)
    out = follow(
        [scored(chunks[0], 1)], "HAQ қандай талаптар қояды?", FakeIndex(chunks), GeneratorConfig()
    )
    # The announcement holds none of the answer: its items are quoted, it is left out.
    assert texts_of(out) == LIST_BY_COLON[2:5]
    assert [c.follows for c in out] == [0, 0, 0]
    out = follow([scored(chunks[0], 1)], "HAQ қандай талаптар қояды?", FakeIndex(chunks), KEEP)
    assert texts_of(out) == LIST_BY_COLON[1:5]
    assert [c.follows for c in out] == [None, 0, 0, 0]


def test_a_colon_brings_bulleted_items_but_a_dash_elsewhere_is_an_interview_turn():
    bullets = ["Біз мыналарды ұсынамыз:", "– Заңды өзгерту.", "– Комиссия құру.", "Соңы."]
    _raw, chunks = make_doc("d", bullets)
    out = follow(
        [scored(chunks[0], 0)], "Қандай шаралар ұсынады?", FakeIndex(chunks), GeneratorConfig()
    )
    assert texts_of(out) == bullets[1:3]
    turns = ["Жағдай мынадай болды.", "– Сіз не дейсіз?", "– Мен келісемін."]
    _raw, chunks = make_doc("e", turns)
    out = follow(
        [scored(chunks[0], 0)], "Қандай оқиғалар болды?", FakeIndex(chunks), GeneratorConfig()
    )
    assert texts_of(out) == turns[:1]


def test_a_question_after_one_fact_keeps_its_one_sentence():
    _raw, chunks = make_doc("d", LIST_BY_COLON)
    out = follow(
        [scored(chunks[0], 1)],
        "HAQ мәлімдемесі қашан жарияланды?",
        FakeIndex(chunks),
        GeneratorConfig(),
    )
    assert texts_of(out) == LIST_BY_COLON[1:2]
    # «қай» asks for one year here, not for a list.
    out = follow(
        [scored(chunks[0], 1)],
        "HAQ талаптарды қай жылы қойды?",
        FakeIndex(chunks),
        GeneratorConfig(),
    )
    assert texts_of(out) == LIST_BY_COLON[1:2]


def test_a_colon_with_no_items_brings_the_one_sentence_it_introduces():
    sents = ["Ол былай деді:", "Бейбітшілік бәрінен қымбат.", "Кездесу аяқталды."]
    _raw, chunks = make_doc("d", sents)
    out = follow(
        [scored(chunks[0], 0)], "Ол қандай сөздер айтты?", FakeIndex(chunks), GeneratorConfig()
    )
    assert texts_of(out) == sents[:2]


ORDINALS = [
    "Кездесуде жанжалдың бірнеше себебі анықталды.",
    "Біріншіден, дүнген этносының тығыз қоныстануы.",
    "Екіншіден, тұрғындардың арыз-шағымына құлақ аспауы.",
    "Үшіншіден, арандатушылық әрекеттер мен үндеу ақпараттардың тарауы.",
    "Елбасы жағдайды зерттеуді тапсырды.",
]


@pytest.mark.parametrize("word", ["бірнеше себебі", "мынадай себептері", "келесі себептері"])
def test_an_announcement_in_words_brings_the_ordinal_items(word):
    sents = [ORDINALS[0].replace("бірнеше себебі", word), *ORDINALS[1:]]
    _raw, chunks = make_doc("d", sents)
    out = follow([scored(chunks[0], 0)], "Қандай үш себебін атады?", FakeIndex(chunks), KEEP)
    assert texts_of(out) == sents[:4]


def test_келесі_meaning_next_brings_nothing_when_no_items_follow():
    sents = ["Сайлау келесі жылы өтеді.", "Дайындық басталды.", "Комиссия құрылды."]
    _raw, chunks = make_doc("d", sents)
    out = follow(
        [scored(chunks[0], 0)], "Сайлау қашан өтеді?", FakeIndex(chunks), GeneratorConfig()
    )
    assert texts_of(out) == sents[:1]


def test_an_ordinal_item_brings_its_siblings_for_a_list_question_only():
    _raw, chunks = make_doc("d", ORDINALS)
    index = FakeIndex(chunks)
    out = follow(
        [scored(chunks[0], 2)], "Түймебаев қандай үш себебін атады?", index, GeneratorConfig()
    )
    assert texts_of(out) == ORDINALS[1:4]  # the one before it too, in document order
    out = follow([scored(chunks[0], 2)], "Арыз-шағымға кім құлақ аспады?", index, GeneratorConfig())
    assert texts_of(out) == ORDINALS[2:3]


def test_numbered_items_may_run_over_several_sentences():
    sents = [
        "HAQ жариялайды:",
        "1. Сайлау өтуі тиіс.",
        "Бұл заң талабы.",
        "2. Сайлау әділ болуы тиіс.",
        "Сайлауға қатысу бойынша ұстаным:",
        "1. Қозғалыс бақылайды.",
    ]
    _raw, chunks = make_doc("d", sents)
    out = follow(
        [scored(chunks[0], 0)],
        "HAQ қандай талаптар жариялайды?",
        FakeIndex(chunks),
        KEEP,
    )
    assert texts_of(out) == sents[:4]  # stops at the next announcement


def test_a_reason_over_two_sentences_for_a_why_question():
    sents = [
        "2022 жылғы Қаңтарға дейін Жаңаөзен оқиғасы болды.",
        "Осы шешілмеген мәселе ақыры трагедияға ұласты.",
        "Брюссельде шектеу мүмкін емес.",
        "Өйткені онда заңдар жұмыс істейді.",
        "Сапар маусымда болды.",
    ]
    _raw, chunks = make_doc("d", sents)
    index = FakeIndex(chunks)
    why = "Неге трагедия болды?"
    # «Осы …» points back: the sentence before carries the reason.
    assert texts_of(follow([scored(chunks[0], 1)], why, index, GeneratorConfig())) == sents[:2]
    # The next sentence opens with «Өйткені»: it is the reason.
    assert texts_of(follow([scored(chunks[0], 2)], why, index, GeneratorConfig())) == sents[2:4]
    # Not a why question: one sentence stays one sentence.
    fact = "Брюссельде не мүмкін емес?"
    assert texts_of(follow([scored(chunks[0], 2)], fact, index, GeneratorConfig())) == sents[2:3]


def test_a_sentence_ending_in_себебі_hands_over_to_the_next():
    sents = ["Қозғалыс бойкотты қолдамайды, себебі:", "Бұл елдің дамуына әкелмейді.", "Соңы."]
    _raw, chunks = make_doc("d", sents)
    out = follow([scored(chunks[0], 0)], "Неге бойкот жоқ?", FakeIndex(chunks), GeneratorConfig())
    assert texts_of(out) == sents[:2]


def test_the_bound_keeps_the_items_nearest_the_announcement():
    sents = ["Талаптар:", *[f"{n}. Талап нөмірі {n} орындалсын." for n in range(1, 9)], "Соңы."]
    _raw, chunks = make_doc("d", sents)
    index = FakeIndex(chunks)
    cfg = dataclasses.replace(KEEP, max_follow=3)
    assert texts_of(follow([scored(chunks[0], 0)], "Қандай талаптар?", index, cfg)) == sents[:4]
    # The length bound: no item is added once the answer would pass max_follow_chars.
    cfg = dataclasses.replace(KEEP, max_follow_chars=len(sents[0]) + 60)
    assert texts_of(follow([scored(chunks[0], 0)], "Қандай талаптар?", index, cfg)) == sents[:3]
    off = dataclasses.replace(GeneratorConfig(), max_follow=0)
    assert texts_of(follow([scored(chunks[0], 0)], "Қандай талаптар?", index, off)) == sents[:1]


def test_every_added_sentence_is_cited_with_its_own_exact_raw_span_across_chunks():
    raw, chunks = make_doc("d", LIST_BY_COLON, per_chunk=3)  # the list crosses a chunk edge
    out = follow([scored(chunks[0], 1)], "HAQ қандай талаптар қояды?", FakeIndex(chunks), KEEP)
    text, cites = compose(out, "kk")
    assert [c.marker for c in cites] == [1, 2, 3, 4]
    for c in cites:
        assert raw[c.start : c.end] == c.quote
        assert f"{c.quote} [{c.marker}]" in text
        assert any(
            s.start == c.start
            for s in next(k for k in chunks if k.chunk_id == c.chunk_id).sentences
        )
    assert cites[-1].chunk_id == chunks[1].chunk_id
    assert [c.start for c in cites] == sorted(c.start for c in cites)


def test_a_list_already_chosen_is_not_quoted_twice():
    _raw, chunks = make_doc("d", LIST_BY_COLON)
    chosen = [scored(chunks[0], 1), scored(chunks[0], 3, score=0.99)]
    out = follow(chosen, "HAQ қандай талаптар қояды?", FakeIndex(chunks), KEEP)
    assert texts_of(out) == LIST_BY_COLON[1:5]


def test_the_seed_interview_s_three_reasons_follow_their_announcement(seed_chunks):
    index = CorpusIndex(
        Path("."), {}, seed_chunks, np.zeros((0, 4)), None, None, [], np.zeros((0, 4))
    )  # type: ignore[arg-type]
    pairs = index.doc_sentences["002_6d4c584d9e8951c7.txt"]
    sents = [s for s, _ in pairs]
    i = next(k for k, s in enumerate(sents) if "бірнеше себебі анықталды" in s.text)
    got = [sents[j].text.split(",")[0] for j in carried(sents, i, "Қандай үш себебін атады?")]
    assert got == ["Біріншіден", "Екіншіден", "Үшіншіден"]
    raw = (SEEDS / "002_6d4c584d9e8951c7.txt").read_text(encoding="utf-8")
    assert all(raw[s.start : s.end].split()[0] == s.text.split()[0] for s in sents)


def test_list_items_and_list_questions():
    assert list_item("Біріншіден, бәрі жақсы.") == "ordinal"
    assert list_item("Во-вторых, это важно.") == "ordinal"
    assert list_item("3) Үшінші.") == "number"
    assert list_item("10.ОСК нәтижелерді жариялайды.") == "number"
    assert list_item("2020 жылы болды.") is None
    assert list_item("– Сұрақ?") is None and list_item("– Тармақ.", after_colon=True) == "bullet"
    assert asks_list("Түймебаев қандай үш себебін атады?")
    assert asks_list("Какие программы есть?") and asks_list("Which activists are named?")
    assert not asks_list("Ассамблея қашан құрылды?")


def test_multi_subject_questions():
    assert multi_subject("HAQ мәлімдемесі мен Түймебаев сұхбатында не айтылады?")
    assert multi_subject("Что говорят об этом интервью Туймебаева и студенческая статья?")
    assert multi_subject("How do Tuimebayev's interview and the student paper describe it?")
    assert multi_subject("В каких документах упоминается «Мың бала»?")
    assert multi_subject("Ассамблеяның рөлін HAQ пен Түймебаев қалай әртүрлі бағалады?")
    assert not multi_subject("Ассамблея қашан құрылды?")
    assert not multi_subject("Түймебаев қандай үш себебін атады?")
    # Two sources counted, with a word between («the two HAQ statements»); two of anything
    # else is not two sources.
    assert multi_subject("When were the two HAQ statements signed?")
    assert multi_subject("HAQ-тың екі мәлімдемесі қай күні жарияланды?")
    assert multi_subject("Когда подписаны два заявления HAQ?")
    assert not multi_subject("Екі жыл бұрын не болды?")


def test_spread_documents_changes_the_top_k_as_little_as_possible():
    doc = {1: "a", 2: "a", 3: "a", 4: "b", 5: "c"}
    ranked = [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6), (5, 0.5)]
    assert spread_documents(ranked, 3, 2, doc.__getitem__) == [
        (1, 0.9),
        (2, 0.8),
        (4, 0.6),
        (3, 0.7),
        (5, 0.5),
    ]
    assert spread_documents(ranked, 3, 1, doc.__getitem__) == ranked
    # Nothing of another document among the candidates: unchanged.
    same = [(1, 0.9), (2, 0.8), (3, 0.7)]
    assert spread_documents(same, 2, 2, doc.__getitem__) == same


def test_spread_quotes_a_second_document_within_the_margin():
    _raw, a = make_doc("a", ["Бірінші құжат бір нәрсе айтады.", "Тағы бір сөйлем айтылады."])
    _raw, b = make_doc("b", ["Екінші құжат басқа нәрсе айтады."])
    ranked = [scored(a[0], 0, 1.0), scored(a[0], 1, 0.98), scored(b[0], 0, 0.9, rank=3)]
    cfg = GeneratorConfig()
    out = spread(ranked[:2], ranked, cfg)
    assert [c.hit.chunk.doc_id for c in out] == ["a", "a", "b"]
    tight = dataclasses.replace(cfg, spread_margin=0.05)
    assert [c.hit.chunk.doc_id for c in spread(ranked[:2], ranked, tight)] == ["a", "a"]


@pytest.fixture(scope="module")
def real_engine(tmp_path_factory):
    from rag.pipeline import make_engine
    from rag.settings import from_env

    folder = tmp_path_factory.mktemp("compose") / "seeds"
    return make_engine(from_env(corpus=SEEDS, index=folder).replace(uploads=None))


@pytest.mark.model
def test_the_three_reasons_of_a_list_question_are_all_cited(real_engine):
    """q030 of the question set: the announcement and its three ordinal items, each cited."""
    from rag.pipeline import answer

    ans = answer("Түймебаев Қордайдағы жанжалдың қандай үш себебін атады?", engine=real_engine)
    assert not ans.abstained
    raw = (SEEDS / "002_6d4c584d9e8951c7.txt").read_text(encoding="utf-8")
    quotes = [c.quote for c in ans.citations if c.doc_id == "002_6d4c584d9e8951c7.txt"]
    for fact in ("тығыз қоныстану", "арыз-", "арандатушылық"):
        assert any(fact in q for q in quotes), (fact, ans.answer)

    # Each cited span of the raw file is the quoted sentence (PDF line breaks aside).
    def skeleton(text: str) -> str:
        return "".join(ch.casefold() for ch in text if ch.isalnum())

    for c in ans.citations:
        if c.doc_id == "002_6d4c584d9e8951c7.txt":
            assert skeleton(raw[c.start : c.end]) == skeleton(c.quote)
        assert f"[{c.marker}]" in ans.answer


# ----------------------------------------------------------------- rules added for issue 14 part 2

BULLETS = [
    "Ассамблеяның құқықтық негіздеріне тоқталсақ:",
    "– Қазақстан Республикасының Конституциясы – негізгі құжат.",
    "– Ассамблея туралы заңы – негізгі нормативтік акт.",
    "– Ассамблея туралы Ереже – нормативтік акт.",
    "Сондай-ақ, Қазақстан көптеген халықаралық шарттарға қосылған.",
]


def test_a_bulleted_item_brings_its_siblings_for_a_list_question_only():
    _raw, chunks = make_doc("d", BULLETS)
    index = FakeIndex(chunks)
    out = follow([scored(chunks[0], 3)], "Қандай құқықтық актілер бар?", index, GeneratorConfig())
    assert texts_of(out) == BULLETS[1:4]  # the siblings, in document order, not the colon
    out = follow([scored(chunks[0], 3)], "Ереже нені белгілейді?", index, GeneratorConfig())
    assert texts_of(out) == BULLETS[3:4]


def test_an_item_that_enumerates_itself_is_the_list_asked_for():
    sents = [
        "СОНДЫҚТАН:",
        "– Ассамблея төрағасы, ІІМ, облыс әкімі кешірім сұрап, қызметінен кетуі тиіс.",
        "– Ассамблеяны реформалау қажет.",
        "– Ұлттық бірегейлік ұғымын енгізу керек.",
    ]
    _raw, chunks = make_doc("d", sents)
    out = follow(
        [scored(chunks[0], 1)], "HAQ кімдердің кетуін талап етті?", FakeIndex(chunks), KEEP
    )
    assert texts_of(out) == sents[1:2]


def test_a_why_question_with_one_item_chosen_gets_no_other_items():
    sents = [
        "Осыған байланысты HAQ жариялайды:",
        "1. Сайлау оффлайн өтуі керек.",
        "2. Қызметкерлерге қысым жасалмауы керек.",
        "3. Бюллетеньге «Барлығына қарсы» позициясын енгізу қажет, сенім деңгейін білу үшін.",
    ]
    _raw, chunks = make_doc("d", sents)
    chosen = [scored(chunks[0], 0), scored(chunks[0], 3, score=0.99)]
    why = "HAQ бюллетеньге не қосуды ұсынды және неге?"
    out = follow(chosen, why, FakeIndex(chunks), KEEP)
    assert texts_of(out) == [sents[0], sents[3]]
    # Nothing chosen from the list yet: the announcement still brings its items.
    out = follow([scored(chunks[0], 0)], why, FakeIndex(chunks), KEEP)
    assert texts_of(out) == sents


def test_the_announcement_is_left_out_once_two_of_its_items_are_quoted():
    _raw, chunks = make_doc("d", BULLETS)
    index = FakeIndex(chunks)
    q = "Қандай құқықтық актілер бар?"
    assert texts_of(follow([scored(chunks[0], 0)], q, index, GeneratorConfig())) == BULLETS[1:4]
    assert texts_of(follow([scored(chunks[0], 0)], q, index, KEEP)) == BULLETS[:4]
    # One item only (the bound): the announcement stays, it is the context of that item.
    one = dataclasses.replace(GeneratorConfig(), max_follow=1)
    assert texts_of(follow([scored(chunks[0], 0)], q, index, one)) == BULLETS[:2]


def test_questions_in_the_sources_are_not_evidence():
    assert is_question("– Ассамблея тарапынан қандай қадамдар жасалды?")
    assert is_question("Сіз қалай ойлайсыз?»")
    assert not is_question("Ассамблея 1995 жылы құрылды.")
    assert not is_question("HAQ жариялайды:")


def test_a_genitive_plural_does_not_make_a_list_question():
    assert not asks_list("HAQ органдардың есебін қандай форматта тыңдауды ұсынды?")
    assert not asks_list("Құқық қорғау органдарының қандай кінәсі айтылады?")
    assert asks_list("Институттың негізгі жұмыс бағыттары қандай?")
    assert asks_list("Қай мемлекеттік органдарға тапсыруды ұсынды?")


def test_each_subject_of_a_joined_question_gets_its_own_query():
    assert subject_queries(
        "HAQ мәлімдемесі мен Түймебаев сұхбатында Қордай оқиғасына не айтылады?"
    ) == [
        "HAQ мәлімдемесі Қордай оқиғасына не айтылады?",
        "Түймебаев сұхбатында Қордай оқиғасына не айтылады?",
    ]
    assert subject_queries("How do Tuimebayev's interview and the student paper describe it?") == [
        "How do Tuimebayev's interview describe it?",
        "How do the student paper describe it?",
    ]
    # «Когда и по чьей» joins no subjects; the second «и» does.
    subs = subject_queries(
        "Когда и кем создана Ассамблея — что говорят интервью Туймебаева и статья?"
    )
    assert subs and all(s.startswith("Когда и кем") for s in subs)
    assert subs[1].endswith("что говорят статья?")
    # Not a question about several subjects: nothing to split.
    assert subject_queries("Өзге ұлт өкілдеріне қазақ тілі мен мәдениетін кім үйретеді?") == []
    assert subject_queries("В каких документах упоминается «Мың бала»?") == []


def test_rankings_are_merged_rank_by_rank_once_each():
    a = [(1, 0.9), (2, 0.8), (3, 0.7)]
    b = [(4, 0.95), (1, 0.6)]
    whole = [(2, 0.99), (5, 0.5)]
    assert [r for r, _ in interleave([a, b, whole])] == [1, 4, 2, 5, 3]
    assert interleave([]) == []


@pytest.mark.model
def test_a_reason_over_two_sentences_is_cited_whole(real_engine):
    """q085 of the question set: «Өйткені …» and the sentence that carries on its reason."""
    from rag.pipeline import answer

    ans = answer(
        "Ақылбекова неге Брюссельде құқық қорғаушылардың жұмысын шектеу мүмкін емес деп санайды?",
        engine=real_engine,
    )
    assert not ans.abstained
    quotes = [c.quote for c in ans.citations]
    assert any(q.startswith("Өйткені") and "Брюссельде" in q for q in quotes), ans.answer
    assert any(q.startswith("Онда заңдар жұмыс істейді") for q in quotes), ans.answer


@pytest.mark.model
def test_both_subjects_of_a_two_document_question_are_retrieved_and_quoted(real_engine):
    """q119 of the question set: the interview and the student paper each give the year."""
    from rag.pipeline import answer, retrieve

    q = (
        "Когда и по чьей инициативе была создана Ассамблея народа Казахстана — что говорят "
        "об этом интервью Туймебаева и студенческая статья?"
    )
    docs = {h.chunk.doc_id for h in retrieve(real_engine, q, 5)}
    assert {"002_6d4c584d9e8951c7.txt", "004_b55da46bdd52c0c6.txt"} <= docs
    ans = answer(q, engine=real_engine)
    cited = {c.doc_id for c in ans.citations if "1995" in c.quote}
    assert cited == {"002_6d4c584d9e8951c7.txt", "004_b55da46bdd52c0c6.txt"}, ans.answer
