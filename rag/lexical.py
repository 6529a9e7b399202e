"""Kazakh-aware lexical retrieval: one analyzer for documents and queries, and a BM25 index.

The analyzer (:func:`analyze`) does, in order:

1. Unicode NFKC, then casefold; ``ё`` → ``е``; Latin look-alike letters inside Cyrillic words
   are mapped to Cyrillic (``бiрi`` → ``бірі``; ``ибраhим`` → ``ибраһим``), and mixed-script
   Roman numerals to Latin (``хіх`` → ``xix``).
2. Tokenisation on runs of letters and digits (any script: Cyrillic with the Kazakh letters
   ``әғқңөұүһі``, Latin, digits). Hyphenated compounds give their parts
   (``жан-жақты`` → ``жан``, ``жақты``); apostrophes and other punctuation split too.
3. Stop-words: Kazakh function words, particles and question words (``қандай``, ``қай``,
   ``кім``, ``не``, ``қашан``, …, ``қай жылы``), exam imperatives (``атаңыз``), and
   Russian/English stop-words, since questions come in kk/ru/en. A few Russian stop-words that
   are also Kazakh content words (``он`` "ten", ``без`` "gland", ``ал``…) are deliberately left out.
4. Each remaining word is normalised to a stem by the configured method. The default was chosen
   by measurement on KazQAD (see ``evals/experiments/kazqad_lexical.py``): a rule-based Kazakh
   suffix stripper (case, possessive, plural endings, stripped right to left in morphotactic
   order) followed by cutting the stem to its first ``prefix_len`` letters. Digit tokens are
   never cut.

:class:`BM25Index` scores with ``bm25s`` over those tokens, and saves as JSON + ``.npz`` only.

Russian and English questions share few words with Kazakh documents, but their names do:
«Кордайский», "Kordai" and «Қордай»; "Tokayev" and «Тоқаев». On the query side only, a word the
index does not know (5+ letters, no Kazakh-specific letter) is *bridged* to the index terms it
spells: Latin is transliterated to Cyrillic and both sides are folded (``қ``→``к``, ``ү``→``у``,
``й``/``ы``/``і``→``и``, …), and a term whose folded form begins the folded word is added to the
query (:meth:`BM25Index.query_terms`). Measured on the question set: English hit@5 on the test
split 0.667 → 0.833, MRR@10 0.607 → 0.750 (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np


def _bm25s() -> Any:
    """Import bm25s lazily; it sets its own logger to DEBUG on import, which we undo."""
    import logging

    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


__all__ = [
    "DEFAULT_CONFIG",
    "STOPWORDS_VERSION",
    "BM25Index",
    "LexicalConfig",
    "analyze",
    "fold",
    "kazakh_stem",
    "normalize_text",
    "stopwords",
    "tokenize",
    "transliterate",
]

STOPWORDS_VERSION = "kk-ru-en-1"
FORMAT_VERSION = 1
METHODS = ("none", "prefix", "suffix", "suffix_prefix")
SUFFIX_SETS = ("nominal", "full")


@dataclass(frozen=True)
class LexicalConfig:
    """Analyzer and BM25 settings; recorded in an index's manifest via :meth:`to_json`.

    method: ``none`` (word as is), ``prefix`` (first ``prefix_len`` letters),
      ``suffix`` (rule-based Kazakh suffix stripper), ``suffix_prefix`` (stripper, then cut to
      ``prefix_len``). (Dictionary lemmatisers, kazstem and hunspell-kk, are compared in the
      experiment only: see ``evals/experiments/kazqad_lexical.py``.)
    prefix_len: letters kept by the ``*prefix`` methods (0 = no cut).
    min_stem: the suffix stripper never leaves fewer letters than this.
    suffix_set: ``nominal`` (plural, possessive, case and a few attributive endings) or ``full``
      (adds common derivational and verbal endings).
    stopwords: ``STOPWORDS_VERSION`` for the full list, ``function`` for the list without the
      question words, ``none`` for no stop-words.
    k1, b, bm25_method: BM25 parameters (``bm25_method`` is a ``bm25s`` method name).
    """

    method: str = "suffix_prefix"
    prefix_len: int = 6
    min_stem: int = 3
    suffix_set: str = "nominal"
    stopwords: str = STOPWORDS_VERSION
    k1: float = 1.2
    b: float = 0.75
    bm25_method: str = "lucene"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown lexical method {self.method!r}; one of {METHODS}")
        if self.suffix_set not in SUFFIX_SETS:
            raise ValueError(f"unknown suffix set {self.suffix_set!r}; one of {SUFFIX_SETS}")
        if self.stopwords not in (STOPWORDS_VERSION, "function", "none"):
            raise ValueError(f"unknown stop-word list {self.stopwords!r}")
        if self.prefix_len < 0 or self.min_stem < 1:
            raise ValueError("prefix_len must be >= 0 and min_stem >= 1")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``json.dumps`` it as is) that :meth:`from_json` reads back."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> LexicalConfig:
        values: Mapping[str, Any] = json.loads(data) if isinstance(data, str) else data
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @property
    def name(self) -> str:
        """A short label, e.g. ``suffix_prefix6/nominal/min3``."""
        label = self.method
        if self.method.endswith("prefix"):
            label += str(self.prefix_len)
        if self.method.startswith("suffix"):
            label += f"/{self.suffix_set}/min{self.min_stem}"
        return label


DEFAULT_CONFIG = LexicalConfig()

# --------------------------------------------------------------------------------------------
# Normalisation and tokenisation

_TOKEN_RE = re.compile(r"[^\W_]+")
_CYRILLIC_RE = re.compile(r"[\u0400-\u04ff]")
_LATIN_RE = re.compile(r"[a-z]")
# Latin letters that look like Cyrillic ones (after casefolding), as found in Kazakh web text.
_LATIN_TO_CYRILLIC = str.maketrans(
    {
        "a": "а",
        "b": "в",
        "c": "с",
        "e": "е",
        "h": "һ",
        "i": "і",
        "k": "к",
        "m": "м",
        "o": "о",
        "p": "р",
        "t": "т",
        "x": "х",
        "y": "у",
    }
)
# Roman numerals typed with Cyrillic х/і (and mixed with Latin): «ХІХ ғасыр» → xix.
_ROMAN_CHARS = frozenset("ivxlхі")
_CYRILLIC_TO_ROMAN = str.maketrans({"х": "x", "і": "i"})
_CHAR_FIXES = str.maketrans({"ё": "е", "ə": "ә", "\u0301": None, "\u00ad": None})


def normalize_text(text: str) -> str:
    """NFKC + casefold + small orthographic fixes (``ё``→``е``, soft hyphen and stress dropped)."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_CHAR_FIXES)


def _fix_script(word: str) -> str:
    if all(ch in _ROMAN_CHARS for ch in word):
        return word.translate(_CYRILLIC_TO_ROMAN)
    if _CYRILLIC_RE.search(word) and _LATIN_RE.search(word):
        return word.translate(_LATIN_TO_CYRILLIC)
    return word


def tokenize(text: str) -> list[str]:
    """Normalised word tokens (letters/digits runs), before stop-words and stemming."""
    return [_fix_script(w) for w in _TOKEN_RE.findall(normalize_text(text))]


# --------------------------------------------------------------------------------------------
# Stop-words

_KK_FUNCTION = """
және мен бен пен да де та те ал бірақ алайда немесе әлде не я яғни әрі иә жоқ емес
сондықтан себебі өйткені егер онда сонда мұнда осында сол соның соны соған содан сондай солай
осы осының осыны осыған осыдан осындай осылай бұл бұның мұның мұны бұған бұдан мұндай
ол оның оны оған одан онымен олар олардың оларды оларға олардан
мен менің мені маған менен сен сенің сені саған сіз сіздің сізге біз біздің бізге
өз өзі өзінің өзін өзіне өздері өздерінің әр әрбір барлық кейбір біреу ешқандай еш ешбір
үшін туралы арқылы бойынша дейін шейін кейін соң бері қарай сияқты секілді тәрізді ретінде
жөнінде жайында бірге ғана қана тек ма ме ба бе па пе ше шы ші ғой қой ау
еді екен болып болды болған болады болатын бола болса деп деген дейді деді дегенмен
өте ең тым аса тағы енді әлі сонымен
"""
# Question words and the exam-question frame (“… дегеніміз не?”, “… атаңыз”).
_KK_QUESTION = """
қай қайсы қайсысы қайсыбір қандай қандайы қашан қашаннан қанша қаншама қаншалықты
кім кімнің кімге кімді кімнен кіммен кімдер кімдердің кімдерді кімде
не ненің неге нені неде неден немен нелер несі неше нешеу нешінші неліктен нешеме
қалай қайда қайдан қайдағы қайтіп
дегеніміз дегенміз дегеніміздің
атаңыз көрсетіңіз табыңыз анықтаңыз жазыңыз келтіріңіз беріңіз түсіндіріңіз сипаттаңыз
"""
# Words dropped only right after «қай»: «қай жылы», «қай кезде», «қай уақытта».
_KK_AFTER_QAI = frozenset({"жылы", "кезде", "уақытта", "кезеңде"})
# NLTK-style Russian list without words that are also Kazakh content words or numbers
# (он "ten", от "fire", у "poison", без "gland", один/два/три …).
_RU = """
и в во не что я с со как а то все она так его но да ты к же вы за бы по только ее её мне
было вот меня еще ещё нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был
него до вас нибудь опять уж вам ведь там потом себя ничего ей может они тут где есть надо ней
для мы тебя их чем была сам чтоб чтобы будто чего раз тоже себе под будет ж тогда кто этот
того потому этого какой какая какие каких каким какое совсем ним здесь этом почти мой тем
нее сейчас были куда зачем всех никогда можно при наконец об другой хоть после над больше
тот через эти нас про всего них много разве эту моя впрочем хорошо свою этой перед иногда
лучше чуть том нельзя такой им более всегда конечно всю между это как сколько который
которая которые которого которых каком почему назовите является являются
"""
_EN = """
a an the of in on at to for from by with without about as into onto over under and or nor but
if then than so not no is are was were be been being am do does did done has have had having
it its this that these those there here what which who whom whose when where why how
i you he she we they me him her us them my your his our their
can could will would shall should may might must
also very just only more most some any each all both few such own same other
name named called
"""
_MARKUP = "gt lt amp quot nbsp br sup sub ref"


def _words(block: str) -> frozenset[str]:
    return frozenset(normalize_text(block).split())


_FUNCTION_STOPWORDS = _words(_KK_FUNCTION) | _words(_RU) | _words(_EN) | _words(_MARKUP)
_QUESTION_STOPWORDS = _words(_KK_QUESTION)


def stopwords(version: str = STOPWORDS_VERSION) -> frozenset[str]:
    """The stop-word set (surface forms, normalised) for a ``LexicalConfig.stopwords`` value."""
    if version == "none":
        return frozenset()
    if version == "function":
        return _FUNCTION_STOPWORDS
    if version == STOPWORDS_VERSION:
        return _FUNCTION_STOPWORDS | _QUESTION_STOPWORDS
    raise ValueError(f"unknown stop-word list {version!r}")


# --------------------------------------------------------------------------------------------
# Rule-based Kazakh suffix stripper

_VOWELS = frozenset("аәеиіоөұүуыэюяё")

# Slots in right-to-left order (a Kazakh noun is stem + plural + possessive + case [+ -ғы/-дағы]).
# Each slot strips at most one ending, the longest that leaves a long enough stem.
_ATTRIBUTIVE = ("ндағы", "ндегі", "дағы", "дегі", "тағы", "тегі", "ғы", "гі", "қы", "кі")
_CASE = (
    "ның",
    "нің",
    "дың",
    "дің",
    "тың",
    "тің",  # genitive
    "ға",
    "ге",
    "қа",
    "ке",
    "на",
    "не",  # dative
    "ны",
    "ні",
    "ды",
    "ді",
    "ты",
    "ті",
    "н",  # accusative (-н only after a 3rd-person possessive)
    "нда",
    "нде",
    "да",
    "де",
    "та",
    "те",  # locative
    "ндан",
    "нден",
    "нан",
    "нен",
    "дан",
    "ден",
    "тан",
    "тен",  # ablative
    "мен",
    "бен",
    "пен",  # instrumental
    "ша",
    "ше",  # equative («қазақша»)
)
# Third person (and "our"); 1sg/2sg (-м, -ым, -ң, -ың, -ңыз …) are rare in reference text and
# their stripping mostly hurt real words («адам», «ғалым», «ислам»).
_POSSESSIVE = ("ымыз", "іміз", "сы", "сі", "ы", "і")
_PLURAL = ("лар", "лер", "дар", "дер", "тар", "тер")
# Extra endings of the "full" set: derivation and common verb forms.
_DERIVATIONAL = (
    "лық",
    "лік",
    "дық",
    "дік",
    "тық",
    "тік",
    "шылық",
    "шілік",
    "лы",
    "лі",
    "сыз",
    "сіз",
    "шы",
    "ші",
)
_VERBAL = (
    "атын",
    "етін",
    "йтын",
    "йтін",
    "ған",
    "ген",
    "қан",
    "кен",
    "ады",
    "еді",
    "йды",
    "йді",
    "ып",
    "іп",
    "уы",
    "уі",
)

_NOMINAL_SLOTS = (_ATTRIBUTIVE, _CASE, _POSSESSIVE, _PLURAL)
_FULL_SLOTS = (_ATTRIBUTIVE, _CASE, _POSSESSIVE, _PLURAL, _VERBAL, _DERIVATIONAL, _PLURAL)


def _by_length(slot: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(slot), key=len, reverse=True))


_SLOTS = {
    "nominal": tuple(_by_length(s) for s in _NOMINAL_SLOTS),
    "full": tuple(_by_length(s) for s in _FULL_SLOTS),
}


def _is_kazakh_word(word: str) -> bool:
    return bool(_CYRILLIC_RE.search(word)) and word.isalpha()


_AFTER_POSSESSIVE = frozenset({"н", "на", "не", "нда", "нде", "ндан", "нден", "ндағы", "ндегі"})
_VOICELESS = frozenset("пткқсшфхцчщ")
_DEVOICE = str.maketrans({"б": "п", "г": "к", "ғ": "қ"})


@lru_cache(maxsize=200_000)
def kazakh_stem(word: str, min_stem: int = 3, suffix_set: str = "nominal") -> str:
    """Strip Kazakh inflectional endings from a normalised word, right to left by slot.

    «ассамблеясының» → «ассамблея», «кітаптарымыздан» → «кітап», «кітабы» → «кітап». A stem
    keeps at least ``min_stem`` letters and one vowel; the endings that follow a 3rd-person
    possessive (``-н``, ``-на``, ``-нда``, ``-ндан``, ``-ндағы``) are taken only after ``-ы/-і``
    (and the bare ``-н`` only from a stem of four letters or more). A stem-final б/г/ғ left by a
    vowel-initial ending is devoiced back to п/к/қ (native stems do not end in a voiced stop);
    the attributive -ғы/-гі/-қы/-кі is taken only where its phonology allows it.
    Non-Cyrillic words are returned unchanged.
    """
    if not _is_kazakh_word(word):
        return word
    stem = word
    for slot in _SLOTS[suffix_set]:
        if slot is _SLOTS[suffix_set][1] and stem != word:
            continue  # an attributive -ғы/-дағы was taken: no case ending precedes it
        for suffix in slot:
            if not stem.endswith(suffix):
                continue
            rest = stem[: -len(suffix)]
            if len(rest) < min_stem or not any(ch in _VOWELS for ch in rest):
                continue
            if suffix == "тан" and rest.endswith("с"):
                continue  # «Қазақстан», «Өзбекстан»: the place-name -стан, not an ablative
            if suffix in _AFTER_POSSESSIVE and (
                rest[-1] not in "ыі" or (suffix == "н" and len(rest) < 4)
            ):
                continue  # -н, -на, -нда, -ндан, -ндағы follow a 3rd-person possessive only
            if suffix in ("ғы", "гі") and rest[-1] in _VOWELS:
                continue  # «жүрегі», «құлағы»: a possessive after б/г/ғ, not -ғы/-гі
            if suffix in ("қы", "кі") and rest[-1] not in _VOICELESS:
                continue  # «халқы»: -қы/-кі follows voiceless consonants only
            stem = rest
            break
    if stem != word and stem[-1] in "бгғ":
        stem = stem[:-1] + stem[-1].translate(_DEVOICE)
    return stem


# --------------------------------------------------------------------------------------------
# The analyzer


def _cut(word: str, n: int) -> str:
    if n <= 0 or word.isdigit():
        return word
    return word[:n]


@lru_cache(maxsize=400_000)
def _normalize_word(word: str, config: LexicalConfig) -> str:
    method = config.method
    if method == "none":
        return word
    if method == "prefix":
        return _cut(word, config.prefix_len)
    stem = kazakh_stem(word, config.min_stem, config.suffix_set)
    return _cut(stem, config.prefix_len) if method == "suffix_prefix" else stem


def analyze(text: str, config: LexicalConfig | None = None) -> list[str]:
    """Index/query terms of ``text``: normalised, tokenised, stop-words dropped, stemmed."""
    cfg = config or DEFAULT_CONFIG
    stops = stopwords(cfg.stopwords)
    drop_after_qai = cfg.stopwords == STOPWORDS_VERSION
    out: list[str] = []
    previous = ""
    for word in tokenize(text):
        if word in stops or (drop_after_qai and previous == "қай" and word in _KK_AFTER_QAI):
            previous = word
            continue
        previous = word
        out.append(_normalize_word(word, cfg))
    return out


# --------------------------------------------------------------------------------------------
# Cross-script bridge (query side): Russian and English spellings of Kazakh names

_LATIN_DIGRAPHS = (
    ("shch", "щ"),
    ("zh", "ж"),
    ("kh", "х"),
    ("ch", "ч"),
    ("sh", "ш"),
    ("ts", "ц"),
    ("ya", "я"),
    ("yu", "ю"),
    ("yo", "е"),
    ("ye", "е"),
)
_LATIN_LETTERS = dict(zip("abcdefghijklmnopqrstuvwxyz", "абкдефгхижклмнопкрстуввкйз", strict=True))
_LATIN_LETTERS["x"] = "кс"
# Kazakh and Russian letters that the other spelling writes differently, folded together.
_FOLD = str.maketrans(
    {
        "ә": "а",
        "ғ": "г",
        "қ": "к",
        "ң": "н",
        "ө": "о",
        "ұ": "у",
        "ү": "у",
        "һ": "х",
        "і": "и",
        "й": "и",
        "ы": "и",
        "ю": "у",
        "я": "а",
        "э": "е",
        "ь": None,
        "ъ": None,
    }
)
_KAZAKH_ONLY = re.compile(r"[әғқңөұүһі]")
BRIDGE_MIN_LETTERS = 5


def transliterate(word: str) -> str:
    """A Latin word in Cyrillic letters, as Russian-language sources spell Kazakh names."""
    if not _LATIN_RE.search(word):
        return word
    out: list[str] = []
    i = 0
    while i < len(word):
        for latin, cyrillic in _LATIN_DIGRAPHS:
            if word.startswith(latin, i):
                out.append(cyrillic)
                i += len(latin)
                break
        else:
            out.append(_LATIN_LETTERS.get(word[i], word[i]))
            i += 1
    return "".join(out)


def fold(word: str) -> str:
    """The spelling-neutral key of a word: transliterated, Kazakh/Russian letter pairs merged."""
    return transliterate(word).translate(_FOLD)


# --------------------------------------------------------------------------------------------
# BM25 index


class BM25Index:
    """BM25 over :func:`analyze` terms (the score matrix built by ``bm25s``, summed per query
    without it); rows are the order of ``texts``."""

    def __init__(
        self,
        texts: Sequence[str],
        config: LexicalConfig,
        vocab: dict[str, int],
        arrays: Mapping[str, np.ndarray] | None,
    ) -> None:
        self.texts: list[str] = list(texts)
        self.config = config
        self.vocab = vocab
        self._data: np.ndarray | None = None
        self._indices: np.ndarray | None = None
        self._indptr: np.ndarray | None = None
        self._nonoccurrence: np.ndarray | None = None
        if arrays is not None:
            self._attach(arrays)

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def build(cls, texts: Sequence[str], config: LexicalConfig | None = None) -> BM25Index:
        cfg = config or DEFAULT_CONFIG
        texts = list(texts)
        if not texts:
            return cls(texts, cfg, {}, None)
        corpus_tokens = [analyze(t, cfg) for t in texts]
        vocab: dict[str, int] = {}
        ids = [[vocab.setdefault(tok, len(vocab)) for tok in toks] for toks in corpus_tokens]
        empty_id = len(vocab)  # bm25s needs a token for documents with no terms
        ids = [doc or [empty_id] for doc in ids]
        bm25s = _bm25s()

        retriever = bm25s.BM25(k1=cfg.k1, b=cfg.b, method=cfg.bm25_method, backend="numpy")
        retriever.index(
            (ids, {i: i for i in range(empty_id + 1)}),
            create_empty_token=False,
            show_progress=False,
        )
        arrays = {
            "data": np.asarray(retriever.scores["data"]),
            "indices": np.asarray(retriever.scores["indices"]),
            "indptr": np.asarray(retriever.scores["indptr"]),
        }
        if retriever.nonoccurrence_array is not None:
            arrays["nonoccurrence"] = np.asarray(retriever.nonoccurrence_array)
        return cls(texts, cfg, vocab, arrays)

    def _attach(self, arrays: Mapping[str, np.ndarray]) -> None:
        # Query-time scoring needs only the saved score matrix (bm25s's eager CSC: a column
        # per term), so loading an index imports neither bm25s nor scipy (~1 s of a cold
        # start). bm25s builds the matrix; :meth:`scores` sums its columns as bm25s does.
        self._data = np.asarray(arrays["data"])
        self._indices = np.asarray(arrays["indices"])
        self._indptr = np.asarray(arrays["indptr"])
        self._nonoccurrence = arrays.get("nonoccurrence")

    def add(self, texts: Sequence[str]) -> BM25Index:
        """A new index over the old texts followed by ``texts`` (rebuilt: the corpus is small)."""
        return BM25Index.build([*self.texts, *texts], self.config)

    def __len__(self) -> int:
        return len(self.texts)

    # -- searching --------------------------------------------------------------------------
    @cached_property
    def _folded_vocab(self) -> dict[str, list[tuple[str, str]]]:
        """Index terms by the first letters of their folded form: (folded, term) pairs."""
        out: dict[str, list[tuple[str, str]]] = {}
        for term in self.vocab:
            if len(term) >= BRIDGE_MIN_LETTERS and not term.isdigit():
                key = fold(term)
                out.setdefault(key[:4], []).append((key, term))
        return out

    def bridged_terms(self, query: str) -> list[str]:
        """Index terms that unknown Russian/English words of ``query`` spell (see the module doc)."""
        stops = stopwords(self.config.stopwords)
        out: list[str] = []
        for word in tokenize(query):
            if (
                len(word) < BRIDGE_MIN_LETTERS
                or word in stops
                or word.isdigit()
                or _KAZAKH_ONLY.search(word)
                or _normalize_word(word, self.config) in self.vocab
            ):
                continue
            key = fold(word)
            matches = [t for f, t in self._folded_vocab.get(key[:4], ()) if key.startswith(f)]
            if matches:
                out.append(max(matches, key=lambda t: (len(t), t)))
        return out

    def query_terms(self, query: str) -> list[str]:
        """The query's analysed terms followed by its bridged ones."""
        return analyze(query, self.config) + self.bridged_terms(query)

    def query_ids(self, query: str) -> list[int]:
        return [self.vocab[t] for t in self.query_terms(query) if t in self.vocab]

    def coverage(self, query: str) -> float:
        """Share of the query's terms that the corpus knows, bridged ones included (0.0 if none).

        Near 0 for a question in a language the corpus is not in; the retriever scales the
        BM25 list's weight by it.
        """
        terms = analyze(query, self.config)
        if not terms:
            return 0.0
        known = sum(t in self.vocab for t in terms) + len(self.bridged_terms(query))
        return min(1.0, known / len(terms))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row (0 for rows sharing no term with the query)."""
        ids = self.query_ids(query)
        if not ids or self._data is None:
            return np.zeros(len(self.texts), dtype=np.float32)
        scores = self._scores_from_ids(ids)
        if self._nonoccurrence is not None:
            scores = np.where(self._matched(ids), scores, 0.0)
        return scores

    def _scores_from_ids(self, ids: list[int]) -> np.ndarray:
        """bm25s's ``get_scores_from_ids`` (numpy backend), term by term in the same order, so
        the float32 sums are the same to the last bit (a test compares them)."""
        assert self._data is not None and self._indices is not None and self._indptr is not None
        scores = np.zeros(len(self.texts), dtype=np.float32)
        for t in ids:
            start, end = self._indptr[t], self._indptr[t + 1]
            np.add.at(scores, self._indices[start:end], self._data[start:end])
        if self._nonoccurrence is not None:
            scores += self._nonoccurrence[np.asarray(ids, dtype=np.int32)].sum()
        return scores

    def _matched(self, ids: list[int]) -> np.ndarray:
        assert self._indices is not None and self._indptr is not None
        mask = np.zeros(len(self.texts), dtype=bool)
        for t in set(ids):
            mask[self._indices[self._indptr[t] : self._indptr[t + 1]]] = True
        return mask

    def search(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        """Up to ``k`` (row, score) pairs, best first (ties by row), zero-score rows dropped."""
        if k <= 0:
            return []
        scores = self.scores(query)
        rows = np.flatnonzero(scores > 0)
        if rows.size > k:
            top = np.argpartition(-scores[rows], k - 1)[:k]
            kth = scores[rows[top]].min()
            rows = rows[scores[rows] >= kth]  # keep ties at the cut, then sort and trim
        order = np.lexsort((rows, -scores[rows]))
        return [(int(r), float(scores[r])) for r in rows[order][:k]]

    # -- persistence (JSON + npz, never pickle) ---------------------------------------------
    MANIFEST = "lexical.json"
    ARRAYS = "lexical.npz"

    def save(self, folder: Path | str) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        terms = [""] * len(self.vocab)
        for term, i in self.vocab.items():
            terms[i] = term
        manifest = {
            "format": "rag.lexical.BM25Index",
            "format_version": FORMAT_VERSION,
            "config": self.config.to_json(),
            "num_docs": len(self.texts),
            "terms": terms,
            "texts": self.texts,
        }
        arrays: dict[str, np.ndarray] = {}
        if self._data is not None and self._indices is not None and self._indptr is not None:
            arrays = {"data": self._data, "indices": self._indices, "indptr": self._indptr}
            if self._nonoccurrence is not None:
                arrays["nonoccurrence"] = self._nonoccurrence
        _atomic_write(folder / self.ARRAYS, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
        _atomic_write(
            folder / self.MANIFEST,
            lambda f: f.write(json.dumps(manifest, ensure_ascii=False).encode("utf-8")),
        )

    @classmethod
    def load(cls, folder: Path | str) -> BM25Index:
        folder = Path(folder)
        manifest = json.loads((folder / cls.MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format") != "rag.lexical.BM25Index":
            raise ValueError(f"{folder / cls.MANIFEST} is not a lexical index manifest")
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported lexical index format {manifest.get('format_version')}")
        config = LexicalConfig.from_json(manifest["config"])
        texts = manifest["texts"]
        vocab = {term: i for i, term in enumerate(manifest["terms"])}
        with np.load(folder / cls.ARRAYS, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        if len(texts) != manifest["num_docs"]:
            raise ValueError("lexical index manifest is inconsistent (texts vs num_docs)")
        return cls(texts, config, vocab, arrays or None)


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
