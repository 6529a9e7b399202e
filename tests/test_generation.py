"""The evidence-first generator's signals, with hand-made vectors."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from rag.generation import (
    GeneratorConfig,
    ScoredSentence,
    compose,
    detail_gain,
    score_sentences,
    select,
    support,
)
from rag.lexical import analyze
from rag.schema import Chunk, Hit, Sentence

VOCAB = ["токаев", "брюссель", "маусым", "приговор", "срок", "мухаммедкарим", "дело"]


def bag_of_words(texts: Sequence[str]) -> np.ndarray:
    """A unit vector per text: one dimension per known word (prefix match)."""
    out = np.zeros((len(texts), len(VOCAB) + 1), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in re.findall(r"[^\W_]+", text.casefold()):
            hits = [j for j, v in enumerate(VOCAB) if word.startswith(v[:5])]
            out[i, hits[0] if hits else len(VOCAB)] += 1.0
        out[i] /= max(1e-9, float(np.linalg.norm(out[i])))
    return out


def test_a_sentence_that_ignores_a_word_of_the_question_gains_when_it_is_left_out():
    sentence = bag_of_words(["Мухаммедкарим дело"])[0]
    question = "К какому сроку приговорили Мухаммедкарима?"
    gain = detail_gain(question, bag_of_words([question])[0], sentence, bag_of_words)
    assert gain > 0.05  # without «сроку» or «приговорили» the question is closer to it


def test_a_sentence_that_covers_every_word_gains_nothing():
    sentence = bag_of_words(["Токаев Брюссель маусым"])[0]
    question = "Токаев Брюссель маусым?"
    gain = detail_gain(question, bag_of_words([question])[0], sentence, bag_of_words)
    assert gain <= 0.0


def test_a_question_of_stop_words_only_gains_nothing():
    vec = bag_of_words(["дело"])[0]
    assert detail_gain("Что это и как?", vec, vec, bag_of_words) == 0.0


def test_a_passage_sized_question_is_not_checked_word_by_word():
    calls = []

    def counting(texts):
        calls.append(len(texts))
        return bag_of_words(texts)

    question = "Мухаммедкарим приговор срок " * 30
    vec = bag_of_words(["дело"])[0]
    assert detail_gain(question, bag_of_words([question])[0], vec, counting) == 0.0
    assert calls == []


# --- scoring, support, selection and composition with hand-made vectors -----------------------


def _unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


class _Lexical:
    """The part of the BM25 index the scorer uses: the question's analysed terms."""

    def query_terms(self, query: str) -> list[str]:
        return analyze(query)


class _Index:
    """A stand-in index: sentence vectors by (doc, start, end) and term IDF (all equal)."""

    def __init__(self, vectors: dict[tuple[str, int, int], np.ndarray]) -> None:
        self.vectors = vectors
        self.lexical = _Lexical()
        self.term_idf: dict[str, float] = {}
        self.doc_sentences: dict[str, list[tuple[Sentence, Chunk]]] = {}

    def sentence_vector(self, doc_id: str, start: int, end: int) -> np.ndarray | None:
        return self.vectors.get((doc_id, start, end))


def _hit(doc_id: str, sentences: list[str], rank: int = 1, title: str = "Тақырып") -> Hit:
    spans, pos = [], 0
    for text in sentences:
        spans.append(Sentence(text, pos, pos + len(text)))
        pos += len(text) + 1
    chunk = Chunk(f"{doc_id}-0", doc_id, title, " ".join(sentences), 0, pos - 1, tuple(spans))
    return Hit(chunk, 1.0 / rank, rank)


# weights that isolate one signal at a time
DENSE_ONLY = GeneratorConfig(w_dense=1.0, w_overlap=0.0, w_cue=0.0, w_rank=0.0)

S_NEAR = "Алтынбек ауылы Іле өзенінің жағасында құрылған."
S_FAR = "Ауылда екі мың адам тұрады және мектеп бар."
S_YEAR = "Ауыл 1932 жылы құрылды деп жазылған құжат бар."


def _two_sentence_case() -> tuple[Hit, _Index]:
    hit = _hit("d", [S_NEAR, S_FAR])
    s_near, s_far = hit.chunk.sentences
    index = _Index(
        {
            ("d", s_near.start, s_near.end): _unit(1, 0, 0),
            ("d", s_far.start, s_far.end): _unit(0, 1, 0),
        }
    )
    return hit, index


def test_score_sentences_ranks_by_the_dense_similarity_of_hand_made_vectors() -> None:
    hit, index = _two_sentence_case()
    q = _unit(0.8, 0.6, 0)
    scored = score_sentences(q, "ауыл қайда?", [hit], index, DENSE_ONLY)  # type: ignore[arg-type]
    assert [s.sentence.text for s in scored] == [S_NEAR, S_FAR]
    assert np.isclose(scored[0].dense, 0.8) and np.isclose(scored[1].dense, 0.6)
    # full-length sentences (>= 40 chars) are not shortened: score = w_dense * dense
    assert np.isclose(scored[0].score, 0.8) and np.isclose(scored[1].score, 0.6)


def test_score_sentences_adds_overlap_cue_and_rank_with_their_weights() -> None:
    hit = _hit("d", [S_YEAR], rank=4)
    (s,) = hit.chunk.sentences
    index = _Index({("d", s.start, s.end): _unit(1, 0)})
    cfg = GeneratorConfig(w_dense=0.0, w_overlap=0.0, w_cue=0.2, w_rank=0.03)
    (only,) = score_sentences(_unit(0, 1), "Ауыл қашан құрылды?", [hit], index, cfg)  # type: ignore[arg-type]
    assert only.cue == 1.0  # «қашан?» asks for a date and the sentence has a year
    assert np.isclose(only.score, 0.2 + 0.03 / 2)  # cue weight + w_rank / sqrt(rank 4)
    cfg = GeneratorConfig(w_dense=0.0, w_overlap=1.0, w_cue=0.0, w_rank=0.0)
    (only,) = score_sentences(_unit(0, 1), "ауыл құжат", [hit], index, cfg)  # type: ignore[arg-type]
    assert only.overlap == 1.0  # both question terms are in the sentence


def test_score_sentences_skips_short_captions_titles_and_sentences_without_vectors() -> None:
    hit = _hit("d", ["Роза Ақылбекова.", "Тақырып", S_NEAR], title="Тақырып")
    caption, title, _ = hit.chunk.sentences
    vectors = {("d", x.start, x.end): _unit(1, 0) for x in (caption, title)}
    scored = score_sentences(_unit(1, 0), "кім?", [hit], _Index(vectors), DENSE_ONLY)  # type: ignore[arg-type]
    assert scored == []  # the long sentence has no vector and no embedder was given
    embedded: list[str] = []

    def embed(texts: Sequence[str]) -> np.ndarray:
        embedded.extend(texts)
        return np.stack([_unit(1, 0) for _ in texts])

    scored = score_sentences(_unit(1, 0), "кім?", [hit], _Index(vectors), DENSE_ONLY, embed)  # type: ignore[arg-type]
    assert [s.sentence.text for s in scored] == [S_NEAR] and embedded == [S_NEAR]


def _scored(
    text: str,
    score: float,
    cue: float = 0.0,
    vec: np.ndarray | None = None,
    start: int = 0,
    doc: str = "d",
) -> ScoredSentence:
    hit = _hit(doc, [text])
    sentence = Sentence(text, start, start + len(text))
    v = vec if vec is not None else _unit(1, 0)
    return ScoredSentence(sentence, hit, v, score, 0.0, cue, score)


def test_support_is_the_best_score_or_the_best_typed_one() -> None:
    cfg = GeneratorConfig(untyped_penalty=0.3)
    plain = [_scored(S_NEAR, 0.9), _scored(S_FAR, 0.7)]
    assert support(plain, "ауыл қайда?", cfg) == 0.9
    assert support([], "ауыл қайда?", cfg) == 0.0
    # a date question: the best sentence with a date counts
    dated = [_scored(S_NEAR, 0.9), _scored(S_YEAR, 0.7, cue=1.0)]
    assert support(dated, "Ауыл қашан құрылды?", cfg) == 0.7
    # none has a date: the best score minus the penalty
    assert np.isclose(support(plain, "Ауыл қашан құрылды?", cfg), 0.9 - 0.3)


def test_select_keeps_close_distinct_sentences_in_document_order() -> None:
    cfg = GeneratorConfig(max_sentences=3, margin=0.05, duplicate_cosine=0.93)
    best = _scored("Бірінші сөйлем ұзын болуы керек.", 0.90, vec=_unit(1, 0, 0), start=100)
    dup = _scored("Бірінші сөйлемнің көшірмесі ұзын.", 0.89, vec=_unit(1, 0.01, 0), start=300)
    other = _scored("Екінші сөйлем де ұзын болуы керек.", 0.87, vec=_unit(0, 1, 0), start=10)
    far = _scored("Үшінші сөйлем шегінен тыс қалады.", 0.80, vec=_unit(0, 0, 1), start=500)
    chosen = select([best, dup, other, far], cfg)
    # the near-duplicate is skipped, the far one is below the margin; document order after
    assert [c.sentence.start for c in chosen] == [10, 100]
    assert select([], cfg) == []
    assert len(select([best, other], GeneratorConfig(max_sentences=1, margin=0.05))) == 1


def test_compose_numbers_markers_and_cites_exact_spans() -> None:
    a = _scored("Бірінші сөйлем [2] сілтемесімен.", 0.9, start=5)
    b = _scored("- Екінші сөйлем.", 0.8, start=40)
    text, citations = compose([a, b], "kk")
    assert text == "Бірінші сөйлем (2) сілтемесімен. [1] Екінші сөйлем. [2]"
    assert [(c.marker, c.start, c.end, c.quote) for c in citations] == [
        (1, 5, 5 + len(a.sentence.text), a.sentence.text),
        (2, 40, 40 + len(b.sentence.text), b.sentence.text),
    ]
    text, _ = compose([a], "en")
    assert text == "The documents (in Kazakh) say:\n- «Бірінші сөйлем (2) сілтемесімен.» [1]"
