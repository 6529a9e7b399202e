"""Kazakh as people type it: the 2021 Latin alphabet, chat transliteration, a Russian keyboard.

The index holds standard Cyrillic Kazakh. A question typed as «Qazaqstan halqy Assambleıasy
qashan quryldy?» (2021 Latin), «Kazakhstan halky Assambleyasy kashan kuryldy?» (chat ASCII) or
«Казакстан халкы Ассамблеясы кашан курылды?» (Russian keyboard: ә ғ қ ң ө ұ ү һ і typed as
а г к н о у у х и) shares few terms with it, and the embedding model reads it poorly. So the
query is brought to the index's spelling before both retrievers (:func:`normalize_query`).

Letter-by-letter mapping is ambiguous in every form (k → к/қ, g → г/ғ, n → н/ң, a → а/ә,
o → о/ө, u → у/ұ/ү, i → и/і/ы, y → ы/й, sh → ш/с+х, kh → х/қ, ng → ң/нг), so nothing is
decided letter by letter. Every spelling is reduced to a *skeleton* in which the ambiguous
letters coincide (қ and к → ``k``; ы, і, и, й, ı, y → ``i``; ш, sh, ş → ``sh``; …), and a typed
word is looked up among the words of the corpus with the same skeleton (:class:`Vocabulary`,
built from the index's own texts plus the Kazakh function and question words of the lexical
analyzer). The corpus decides by frequency; candidates that the corpus cannot tell apart
(frequencies within a factor of :data:`KEEP_RATIO`) are all kept for BM25, the most frequent one
goes to the dense query. A word the corpus does not hold as such is matched by its longest
known stem (the typed ending is carried over with Kazakh vowel harmony), then one typing slip
away, then by a fixed letter table.

The standard Cyrillic path does not change: a question with a Kazakh-specific letter is left as
typed (:func:`typing_form` says ``cyrillic``), and Cyrillic words the corpus knows are never
replaced.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

FORMS = ("cyrillic", "russian_keyboard", "translit", "latin")
# A second candidate is kept (for BM25) when it is at least this share as frequent as the best.
KEEP_RATIO = 0.5
MAX_CANDIDATES = 3

_WORD = re.compile(r"[^\W\d_]+")
_KAZAKH_CYRILLIC = re.compile(r"[әғқңөұүһіӘҒҚҢӨҰҮҺІ]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[a-zA-Z\u00c0-\u024f]")
# Letters of the 2021 Latin alphabet that chat ASCII does not use.
_LATIN_2021 = re.compile(r"[äğıñöşūüÄĞÑÖŞŪÜ]")

# Cyrillic (Kazakh and Russian) → skeleton.
_CYR_SKELETON = str.maketrans(
    {
        "а": "a",
        "ә": "a",
        "б": "b",
        "в": "v",
        "г": "g",
        "ғ": "g",
        "д": "d",
        "е": "e",
        "э": "e",
        "ё": "io",
        "ж": "j",
        "з": "z",
        "и": "i",
        "і": "i",
        "ы": "i",
        "й": "i",
        "к": "k",
        "қ": "k",
        "л": "l",
        "м": "m",
        "н": "n",
        "ң": "n",
        "о": "o",
        "ө": "o",
        "п": "p",
        "р": "r",
        "с": "s",
        "т": "t",
        "у": "u",
        "ұ": "u",
        "ү": "u",
        "ф": "f",
        "х": "h",
        "һ": "h",
        "ц": "ts",
        "ч": "ch",
        "ш": "sh",
        "щ": "sh",
        "ъ": "",
        "ь": "",
        "ю": "iu",
        "я": "ia",
    }
)
# Single Latin letters → skeleton (after the digraphs below).
_LAT_SKELETON = str.maketrans(
    {
        "ä": "a",
        "á": "a",
        "ğ": "g",
        "ǵ": "g",
        "ı": "i",
        "í": "i",
        "ñ": "n",
        "ń": "n",
        "ö": "o",
        "ó": "o",
        "ş": "sh",
        "ū": "u",
        "ü": "u",
        "ú": "u",
        "ý": "u",
        "ç": "ch",
        "q": "k",
        "y": "i",
        "x": "h",
        "w": "u",
        "c": "s",
    }
)
# Latin digraphs with more than one reading: every reading is tried.
_LAT_AMBIGUOUS = (("kh", ("h", "k")), ("ng", ("n", "ng")), ("gh", ("g",)))


_I_RUN = re.compile(r"i{2,}")


def cyrillic_skeleton(word: str) -> str:
    """The skeleton of a (lower-case) Cyrillic word.

    Runs of i-like letters fold to one: «ия», «ий» are typed ıa, ia, iya, ya by different people.
    """
    return _I_RUN.sub("i", word.translate(_CYR_SKELETON))


def latin_skeletons(word: str) -> list[str]:
    """The skeletons a (lower-case) Latin word may stand for, the plainest reading first."""
    base = _I_RUN.sub("i", word.replace("zh", "j").translate(_LAT_SKELETON))
    out = [base]
    for digraph, readings in _LAT_AMBIGUOUS:
        if digraph not in base:
            continue
        grown: list[str] = []
        for s in out:
            grown.append(s)
            grown.extend(s.replace(digraph, r) for r in readings)
        out = list(dict.fromkeys(grown))[:8]
    # A word-initial «ye»/«yo» is often Kazakh е/ө written as Russian spellers do (Yesenov).
    out += [s[1:] for s in out if s.startswith(("ie", "io"))]
    return list(dict.fromkeys(out))


def _cyrillic_cut(word: str, n_skeleton: int) -> int:
    """How many letters of Cyrillic ``word`` spell the first ``n_skeleton`` skeleton letters."""
    total = 0
    for i, ch in enumerate(word):
        if total >= n_skeleton:
            return i
        total += len(ch.translate(_CYR_SKELETON))
    return len(word)


class Vocabulary:
    """Cyrillic words of a corpus with their frequencies, findable by skeleton."""

    def __init__(self, counts: Counter[str]) -> None:
        self.counts = counts
        self.by_skeleton: dict[str, list[str]] = {}
        for word, _ in counts.most_common():
            if _CYRILLIC.search(word):
                self.by_skeleton.setdefault(cyrillic_skeleton(word), []).append(word)
        self.skeletons = sorted(self.by_skeleton)
        self._deletes: dict[str, list[str]] | None = None

    @classmethod
    def from_texts(cls, texts: Iterable[str], extra: Iterable[str] = ()) -> Vocabulary:
        """Word counts of ``texts``; ``extra`` words (function words) count once if absent."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(w.lower() for w in _WORD.findall(text))
        for word in extra:
            counts[word] = counts.get(word, 0) or 1
        return cls(counts)

    def lookup(self, skeleton: str) -> list[str]:
        """Words spelled by ``skeleton``, most frequent first."""
        return self.by_skeleton.get(skeleton, [])

    def one_slip(self, skeleton: str) -> list[str]:
        """Words one dropped or one extra letter away, most frequent first.

        A substituted letter is not a slip here: it turns too many real words into each other
        (қолдай/Қордай, танысты/табысты).
        """
        if self._deletes is None:
            deletes: dict[str, list[str]] = {}
            for sk in self.skeletons:
                if len(sk) >= 5:
                    for i in range(1, len(sk)):
                        deletes.setdefault(sk[:i] + sk[i + 1 :], []).append(sk)
            self._deletes = deletes
        near: set[str] = set(self._deletes.get(skeleton, ()))  # the typist dropped a letter
        if len(skeleton) >= 6:  # … or typed one too many
            near.update(
                cut
                for i in range(1, len(skeleton))
                if (cut := skeleton[:i] + skeleton[i + 1 :]) in self.by_skeleton
            )
        # Typists seldom miss the first letter: «oıynsha» is not бойынша.
        words = [w for sk in near for w in self.by_skeleton[sk]]
        return sorted(words, key=lambda w: (-self.counts[w], w))

    def stem_match(self, skeleton: str, min_len: int = 4) -> tuple[str, int] | None:
        """The most frequent word sharing the longest skeleton prefix (≥ ``min_len``) with it.

        Returns ``(word, shared skeleton letters)``: inflected forms the corpus lacks
        («quryldy» when it holds «құрылған») keep the corpus's stem.
        """
        pos = bisect.bisect_left(self.skeletons, skeleton)
        best_len = 0
        for j in (pos - 1, pos):
            if 0 <= j < len(self.skeletons):
                best_len = max(best_len, _common_prefix(self.skeletons[j], skeleton))
        if best_len < min_len:
            return None
        prefix = skeleton[:best_len]
        lo = bisect.bisect_left(self.skeletons, prefix)
        words: list[str] = []
        for sk in self.skeletons[lo : lo + 200]:
            if not sk.startswith(prefix):
                break
            words.extend(self.by_skeleton[sk])
        word = max(words, key=lambda w: (self.counts[w], -len(w)))
        return word, best_len


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


# ------------------------------------------------------------------ the letter table (fallback)

_BACK_VOWELS = set("аоұы")
_FRONT_VOWELS = set("әөүіе")
_LAT_FIXED = (
    ("shch", "щ"),
    ("zh", "ж"),
    ("sh", "ш"),
    ("ch", "ч"),
    ("kh", "х"),
    ("ts", "ц"),
    ("ya", "я"),
    ("ıa", "я"),
    ("ia", "я"),
    ("yu", "ю"),
    ("ıu", "ю"),
    ("iu", "ю"),
    ("gh", "ғ"),
)
_NG_BEFORE_VOWEL = re.compile(r"ng(?=[aeiouyäöüūı])")
_Y_AFTER_VOWEL = re.compile(r"(?<=[aeouäöüū])[iy](?![aeiouäöüūı])")
_LAT_FIXED_LETTERS = {
    "a": "а",
    "ä": "ә",
    "b": "б",
    "c": "с",
    "d": "д",
    "e": "е",
    "f": "ф",
    "g": "г",
    "ğ": "ғ",
    "h": "х",
    "i": "і",
    "ı": "й",
    "j": "ж",
    "k": "к",
    "l": "л",
    "m": "м",
    "n": "н",
    "ñ": "ң",
    "o": "о",
    "ö": "ө",
    "p": "п",
    "q": "қ",
    "r": "р",
    "s": "с",
    "ş": "ш",
    "t": "т",
    "u": "у",
    "ū": "ұ",
    "ü": "ү",
    "v": "в",
    "w": "у",
    "x": "х",
    "y": "ы",
    "z": "з",
    # The acute-accent alphabet of 2017/2018, still typed by some.
    "á": "ә",
    "ǵ": "ғ",
    "ń": "ң",
    "ó": "ө",
    "ú": "ү",
    "ý": "у",
}


def _harmonise(letters: str, back: bool) -> str:
    """Fix the letters a typist could not mark, by vowel harmony (back or front word)."""
    out = []
    for i, ch in enumerate(letters):
        nxt = letters[i + 1] if i + 1 < len(letters) else ""
        if ch in "ыі":
            ch = "ы" if back else "і"
        elif ch in "кқ":
            ch = "қ" if back else "к"
        elif ch in "гғ":
            ch = "ғ" if back else "г"
        elif ch == "и" and (not nxt or nxt not in "аәоөуұүыіе"):
            ch = "ы" if back else "і"
        out.append(ch)
    return "".join(out)


def _is_back(word: str) -> bool:
    if word.endswith(("ов", "ев", "ова", "ева", "ин", "ина")):
        return True  # Russian-style surnames take back endings: Түймебаевтың, Ақылбекованың
    vowels = [ch for ch in word if ch in _BACK_VOWELS | _FRONT_VOWELS]
    return not vowels or vowels[-1] in _BACK_VOWELS


# The genitive -ның (after a vowel) / -дың, -тың (after a consonant), typed with н; -атын,
# -етін after a vowel or й is a participle and keeps its н.
_GENITIVE_END = re.compile(r"((?:(?<=[аәоөұүыіеуияюэ])н|(?<=[^аәоөұүыіеуийяюэ])[дт])[ыі])н$")


def latin_to_cyrillic(word: str) -> str:
    """A Latin word in Kazakh Cyrillic by a fixed table with vowel harmony (no corpus)."""
    # «ng» before a vowel is н+г (-ланған, -ген), elsewhere ң (тың, мың); y or i after a
    # vowel and not before one is й (qalay, kandai, saiyn).
    ascii_only = not _LATIN_2021.search(word) and "q" not in word
    word = _Y_AFTER_VOWEL.sub("ı", word)
    word = _NG_BEFORE_VOWEL.sub("n\u0000", word).replace("ng", "ñ").replace("\u0000", "g")
    out: list[str] = []
    i = 0
    while i < len(word):
        for latin, cyr in _LAT_FIXED:
            if word.startswith(latin, i):
                out.append(cyr)
                i += len(latin)
                break
        else:
            out.append(_LAT_FIXED_LETTERS.get(word[i], word[i]))
            i += 1
    text = "".join(out)
    if ascii_only:
        # Chat ASCII marks none of ә ө ү ұ ғ қ і: decide the velar and the high vowel by harmony.
        text = _harmonise(text, _is_back(text))
    return _GENITIVE_END.sub(r"\1ң", text)


# ------------------------------------------------------------------ the query


@dataclass(frozen=True)
class TypedQuery:
    """A question brought to the index's spelling.

    text: the best spelling of every word (dense query, sentence scoring).
    lexical: ``text`` plus the other candidates the corpus could not rule out (BM25 query).
    form: how it was typed, one of :data:`FORMS`.
    """

    text: str
    lexical: str
    form: str

    @property
    def changed(self) -> bool:
        """True when some word was respelled."""
        return self.form != "cyrillic"


def typing_form(text: str) -> str:
    """How a question is typed: ``cyrillic``, ``russian_keyboard``, ``translit`` or ``latin``.

    Only the script and the letters are read; whether the words are Kazakh at all is
    :mod:`rag.language`'s question. More Latin than Cyrillic letters is Latin (``latin`` when a
    letter of the 2021 alphabet or ``q`` occurs, else ``translit``); Cyrillic without a Kazakh
    letter is ``russian_keyboard``.
    """
    cyr = len(_CYRILLIC.findall(text))
    lat = len(_LATIN.findall(text))
    if lat > cyr:
        return "latin" if _LATIN_2021.search(text) or re.search(r"[qQ]", text) else "translit"
    if cyr and not _KAZAKH_CYRILLIC.search(text):
        return "russian_keyboard"
    return "cyrillic"


def _latin_candidates(word: str, vocab: Vocabulary) -> list[str]:
    low = word.lower()
    skeletons = latin_skeletons(low)
    found = [w for sk in skeletons for w in vocab.lookup(sk)]
    # A Latin word the corpus itself writes in Latin (HAQ, LGBT) stays, unless a Cyrillic
    # spelling of it is at least as frequent (a stray «Kazakhstan» in a Kazakh corpus).
    latin_count = vocab.counts.get(low, 0) if not _CYRILLIC.search(low) else 0
    if found:
        if latin_count > vocab.counts[_keep(found, vocab)[0]]:
            return [word]
        return _keep(found, vocab)
    if latin_count:
        return [word]
    sk = skeletons[0]
    stem = vocab.stem_match(sk)
    slips = [w for s in skeletons[:2] for w in vocab.one_slip(s)] if len(sk) >= 4 else []
    # A slip inside the stem («medıasıa» for медиация) is a typo of a corpus word; a
    # difference in the last letters is usually an ending the corpus lacks («sebebin» when it
    # holds себебі), better served by the corpus's stem and the typed ending.
    inner = [w for w in slips if _common_prefix(cyrillic_skeleton(w), sk) < len(sk) - 2]
    if inner:
        return _keep(inner, vocab)
    if stem is not None and stem[1] >= len(sk) - 3:
        return [_stem_and_ending(stem, latin_to_cyrillic(low))]
    if slips:
        return _keep(slips, vocab)
    if stem is not None:
        return [_stem_and_ending(stem, latin_to_cyrillic(low))]
    return [latin_to_cyrillic(low)]


def _stem_and_ending(stem: tuple[str, int], typed: str) -> str:
    """The corpus word's first letters (``stem``) and the rest of ``typed``, harmonised.

    The ending's harmony follows the stem unless the ending shows an е (front); a final
    -ның/-дың/-тың typed with н is the genitive, the commonest ending in questions.
    """
    corpus_word, shared = stem
    head = corpus_word[: _cyrillic_cut(corpus_word, shared)]
    tail = typed[_cyrillic_cut(typed, shared) :]
    back = _is_back(head) and "е" not in tail
    return _GENITIVE_END.sub(r"\1ң", head + _harmonise(tail, back)) if tail else head


def _cyrillic_candidates(word: str, vocab: Vocabulary) -> list[str]:
    low = word.lower()
    if _KAZAKH_CYRILLIC.search(low):
        return [word]
    sk = cyrillic_skeleton(low)
    found = vocab.lookup(sk)
    own = vocab.counts.get(low, 0)
    if own:
        # A word the corpus knows as typed stays, unless a Kazakh spelling is far commoner
        # (the corpus's own typo «жане» beside hundreds of «және»).
        best = max(found, key=lambda w: vocab.counts[w])
        if best != low and vocab.counts[best] >= 5 * own + 3:
            return [best, word]
        return [word]
    if found:
        return _keep(found, vocab)
    stem = vocab.stem_match(sk, min_len=5)
    if stem is not None:
        return [_stem_and_ending(stem, low)]
    return [word]


def _keep(found: Sequence[str], vocab: Vocabulary) -> list[str]:
    ranked = sorted(dict.fromkeys(found), key=lambda w: (-vocab.counts[w], w))
    best = vocab.counts[ranked[0]]
    return [w for w in ranked if vocab.counts[w] >= KEEP_RATIO * best][:MAX_CANDIDATES]


def _cased(candidate: str, typed: str) -> str:
    if typed[:1].isupper() and candidate[:1].islower():
        return candidate[:1].upper() + candidate[1:]
    return candidate


def normalize_query(text: str, vocab: Vocabulary, form: str | None = None) -> TypedQuery:
    """``text`` in the index's spelling (see the module docstring); ``form`` overrides detection.

    A ``cyrillic`` question comes back unchanged. In a Latin question every Latin word is
    respelled; on a Russian keyboard every Cyrillic word the corpus does not know.
    """
    form = form or typing_form(text)
    if form == "cyrillic":
        return TypedQuery(text, text, form)
    extra: list[str] = []

    def respell(m: re.Match[str]) -> str:
        word = m.group(0)
        if form == "russian_keyboard":
            if not _CYRILLIC.search(word):
                return word
            cands = _cyrillic_candidates(word, vocab)
        else:
            if _CYRILLIC.search(word):
                return word
            cands = _latin_candidates(word, vocab)
        extra.extend(c for c in cands[1:] if c.lower() != cands[0].lower())
        return _cased(cands[0], word)

    best = _WORD.sub(respell, text)
    lexical = best if not extra else f"{best} {' '.join(extra)}"
    if best != text:
        logger.debug("respelled %r (%s) as %r", text, form, best)
    return TypedQuery(best, lexical, form)


# ------------------------------------------------------------------ one vocabulary per index

_VOCABS: weakref.WeakKeyDictionary[object, Vocabulary] = weakref.WeakKeyDictionary()
_VOCAB_LOCK = threading.Lock()


def vocabulary_for(owner: object, texts: Sequence[str]) -> Vocabulary:
    """The vocabulary of ``texts`` plus Kazakh function words, built once per ``owner``.

    ``owner`` is the BM25 index object (a rebuilt index after an upload gets its own).
    """
    with _VOCAB_LOCK:
        vocab = _VOCABS.get(owner)
        if vocab is None:
            vocab = Vocabulary.from_texts(texts, extra=kazakh_function_words())
            _VOCABS[owner] = vocab
        return vocab


def kazakh_function_words() -> list[str]:
    """Kazakh function and question words (қашан, қандай, кім…): questions use them, texts rarely."""
    from rag.lexical import _KK_FUNCTION, _KK_QUESTION

    return (_KK_FUNCTION + " " + _KK_QUESTION + " " + _COMMON_QUESTION_WORDS).split()


# Frequent in questions, often missing from a small corpus.
_COMMON_QUESTION_WORDS = """
құрылды құрылған болды болған жылы жылдан айтты атады деді қабылданды өтті өткен
жариялады жарияланды ұсынды талап етті етеді береді бар жоқ неше қанша қай
бір екі үш төрт бес алты жеті сегіз тоғыз он жиырма отыз қырық елу жүз мың
"""


# ------------------------------------------------------------------ answers in the Latin alphabet

_CYR_TO_LATIN_2021 = {
    "а": "a",
    "ә": "ä",
    "б": "b",
    "в": "v",
    "г": "g",
    "ғ": "ğ",
    "д": "d",
    "е": "e",
    "ё": "ıo",
    "ж": "j",
    "з": "z",
    "и": "ı",
    "й": "ı",
    "к": "k",
    "қ": "q",
    "л": "l",
    "м": "m",
    "н": "n",
    "ң": "ñ",
    "о": "o",
    "ө": "ö",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ұ": "ū",
    "ү": "ü",
    "ф": "f",
    "х": "h",
    "һ": "h",
    "ц": "ts",
    "ч": "ch",
    "ш": "ş",
    "щ": "şş",
    "ъ": "",
    "ы": "y",
    "і": "i",
    "ь": "",
    "э": "e",
    "ю": "ıu",
    "я": "ıa",
}


def to_latin_2021(text: str) -> str:
    """Kazakh Cyrillic text in the 2021 Latin alphabet (other characters kept)."""
    out = []
    for ch in text:
        low = ch.lower()
        lat = _CYR_TO_LATIN_2021.get(low)
        if lat is None:
            out.append(ch)
        elif ch != low:
            out.append(lat[:1].upper() + lat[1:])
        else:
            out.append(lat)
    return "".join(out)
