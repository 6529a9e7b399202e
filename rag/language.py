"""Which language a question is in: Kazakh, Russian or English, or another one.

Script and Kazakh-specific letters settle almost every Cyrillic case (ә ғ қ ң ө ұ ү һ і occur in
Kazakh and never in Russian); the rest (short Cyrillic questions without those letters, such as
«Кім?» or «Не болды?», or Kazakh typed on a Russian keyboard) is decided by a list of frequent
Kazakh words and then by the ``lingua`` detector restricted to the three languages. A question
that mixes Kazakh and Russian is Kazakh when it has Kazakh grammar (two or more Kazakh words that
are not names or quotations); a Kazakh name in a Russian sentence keeps it Russian.

Latin script is not always English: Kazakh is typed in the 2021 Latin alphabet and in chat
transliteration (:mod:`rag.typing_forms`). A Latin question is Kazakh when most of its words
look Kazakh (:func:`_kazakh_latin_word`: a Kazakh-only letter, a Kazakh function word, a Kazakh
ending such as -dy/-ny/-tyñ) and few look English or Turkish (Turkish shares the ı ş ğ ö ü
letters and many endings, but not ы-endings written ``y``, nor its ``-du``/``-mış``/``-iyor``
endings and function words). Otherwise ``lingua``, over English and the common Latin-script
languages, names the language; a question in none of kk/ru/en is answered with an English
lead that says so (:func:`identify` gives both).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from rag.typing_forms import (
    Vocabulary,
    cyrillic_skeleton,
    kazakh_function_words,
    latin_skeletons,
    typing_form,
)

LANGUAGES = ("kk", "ru", "en")
# Names of the languages lingua may report for a Latin question, for the notice.
LANGUAGE_NAMES = {
    "de": "German",
    "tr": "Turkish",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "pl": "Polish",
    "other": "another language",
}

_KAZAKH_LETTERS = set("әғқңөұүһіӘҒҚҢӨҰҮҺІ")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z]")
_WORD = re.compile(r"[^\W\d_]+")
# Frequent Kazakh words spelled without Kazakh-specific letters.
_KAZAKH_WORDS = frozenset(
    [
        "кім",
        "не",
        "неге",
        "неше",
        "бар",
        "жоқ",
        "мен",
        "сен",
        "ол",
        "біз",
        "сол",
        "осы",
        "бұл",
        "және",
        "мен",
        "пен",
        "бен",
        "ме",
        "ма",
        "ба",
        "бе",
        "па",
        "пе",
        "ше",
        "да",
        "де",
        "та",
        "те",
        "деп",
        "еді",
        "екен",
        "болды",
        "болса",
        "берді",
        "жыл",
        "жылы",
        "туралы",
        "бойынша",
        "кейін",
        "ал",
        "енді",
    ]
)
_RUSSIAN_WORDS = frozenset(
    [
        "кто",
        "что",
        "где",
        "когда",
        "почему",
        "зачем",
        "как",
        "какой",
        "какая",
        "какие",
        "сколько",
        "ли",
        "и",
        "в",
        "на",
        "по",
        "с",
        "о",
        "об",
        "от",
        "до",
        "это",
        "был",
        "была",
        "были",
        "его",
        "её",
        "их",
        "она",
        "он",
        "они",
        "для",
        "при",
    ]
)


@functools.lru_cache(maxsize=1)
def _lingua():  # type: ignore[no-untyped-def]
    from lingua import Language, LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(
        Language.KAZAKH, Language.RUSSIAN, Language.ENGLISH
    ).build()


@functools.lru_cache(maxsize=1)
def _lingua_latin():  # type: ignore[no-untyped-def]
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    codes = ["en", *[c for c in LANGUAGE_NAMES if c != "other"]]
    langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in codes]
    # Low-accuracy mode reads trigrams only: its models load in ~2 s (the full 1–5-gram models
    # took 40 s on a loaded 2-core machine, a timeout for the first foreign question). It is
    # weaker on short questions, so German and Turkish function words decide first.
    return LanguageDetectorBuilder.from_languages(*langs).with_low_accuracy_mode().build()


@dataclass(frozen=True)
class LanguageGuess:
    """What :func:`identify` found.

    language: the language to answer in (``kk``, ``ru`` or ``en``).
    asked: the language of the question: one of those, or another ISO 639-1 code (``de``,
      ``tr``…, ``other`` when unnamed); the answer is then in English and says so.
    form: how the question is typed (:data:`rag.typing_forms.FORMS`).
    """

    language: str
    asked: str
    form: str

    @property
    def foreign(self) -> bool:
        """True when the question is in none of the three answer languages."""
        return self.asked not in LANGUAGES


def identify(text: str, default: str = "kk", vocabulary: Vocabulary | None = None) -> LanguageGuess:
    """The answer language, the question's own language and its typing form.

    ``vocabulary`` (the corpus's, :func:`rag.typing_forms.vocabulary_for`) lets a Latin word
    count as Kazakh when the corpus holds it in Cyrillic.
    """
    form = typing_form(text)
    cyr = len(_CYRILLIC.findall(text))
    lat = len(_LATIN.findall(text))
    if cyr == 0 and lat == 0:
        return LanguageGuess(default, default, form)
    if lat > cyr:
        asked = _latin_language(text, vocabulary)
        return LanguageGuess(asked if asked in LANGUAGES else "en", asked, form)
    lang = _cyrillic_language(text, default)
    return LanguageGuess(lang, lang, form)


def detect_language(text: str, default: str = "kk") -> str:
    """Return ``kk``, ``ru`` or ``en`` for ``text`` (``default`` when there are no letters).

    A question in another language gives ``en``, the language it is answered in.
    """
    return identify(text, default).language


# Words a Kazakh question is built with (case, in quotes «…» removed): Kazakh grammar, not a name.
_QUOTED = re.compile(r"«[^»]*»|\"[^\"]*\"|„[^“]*“")


def _cyrillic_language(text: str, default: str) -> str:
    words = [w.lower() for w in _WORD.findall(text)]
    kk = sum(w in _KAZAKH_WORDS for w in words)
    ru = sum(w in _RUSSIAN_WORDS for w in words)
    kazakh_spelled = sum(any(ch in _KAZAKH_LETTERS for ch in w) for w in words)
    if kazakh_spelled:
        # A Kazakh name or title inside a Russian question («Мың бала», «Бәйтерек») does not
        # make it Kazakh: with Russian function words and few Kazakh-spelled words it is Russian
        # — unless it has Kazakh grammar (lower-case Kazakh words outside quotes: «Когда
        # Ассамблея қашан құрылды?» mixes the two and is asked by a Kazakh speaker).
        unquoted = _WORD.findall(_QUOTED.sub(" ", text))
        grammar = sum(
            (w[:1].islower() and any(ch in _KAZAKH_LETTERS for ch in w))
            or w.lower() in _KAZAKH_WORDS
            for w in unquoted[1:]
        )
        if ru > kk and kazakh_spelled * 3 < len(words) and grammar < 2:
            return "ru"
        return "kk"
    if kk != ru:
        return "kk" if kk > ru else "ru"
    try:
        lang = _lingua().detect_language_of(text)
    except ImportError:  # lingua is optional; without it Russian is the better guess here
        return "ru"
    if lang is None:
        return default
    return {"KAZAKH": "kk", "RUSSIAN": "ru", "ENGLISH": "en"}.get(lang.name, default)


# ------------------------------------------------------------------ Latin script

_LATIN_WORD = re.compile(r"[a-zA-Z\u00c0-\u024f]+")
_ENGLISH_WORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "about",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "did",
        "do",
        "does",
        "has",
        "have",
        "had",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "many",
        "much",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "their",
        "they",
        "he",
        "she",
        "his",
        "her",
        "as",
        "into",
        "after",
        "before",
        "than",
        "not",
        "no",
        "can",
        "could",
        "would",
        "should",
        "will",
    ]
)
_TURKISH_WORDS = frozenset(
    [
        "ve",
        "bir",
        "bu",
        "şu",
        "ile",
        "için",
        "mı",
        "mi",
        "mu",
        "mü",
        "hangi",
        "kaç",
        "nedir",
        "nasıl",
        "neden",
        "niçin",
        "nerede",
        "kimdir",
        "olan",
        "olarak",
        "tarafından",
        "hakkında",
        "göre",
        "kadar",
        "yılında",
        "değil",
        "gibi",
        "daha",
        "çok",
        "ama",
        "veya",
        "ya",
    ]
)
_GERMAN_WORDS = frozenset(
    [
        "der",
        "die",
        "das",
        "und",
        "ist",
        "wer",
        "wann",
        "wurde",
        "wurden",
        "von",
        "den",
        "dem",
        "ein",
        "eine",
        "einen",
        "wie",
        "was",
        "warum",
        "wo",
        "welche",
        "welcher",
        "im",
        "zu",
        "mit",
        "nicht",
        "auf",
        "für",
        "sich",
    ]
)
# Endings Turkish has and Kazakh (in any Latin spelling) has not: -du/-dü, -muş, -iyor, -dır; ç;
# and the apostrophe before a name's ending (Kazakistan'da).
_TURKISH_ENDING = re.compile(r"(?:[dt][uü]r?|m[ıiuü]ş|[ıiuü]yor(?:du|lar)?|l[ıu]k)$|ç")
_TURKISH_APOSTROPHE = re.compile(r"[A-Za-z\u00c0-\u024f]['’][a-zıiuüae]")
_KAZAKH_LATIN_LETTERS = re.compile(r"[ñūǵń]|q(?!u[aeiou])")
# ы written y after a consonant ends many Kazakh words (-dy, -ty, -ny, -sy, -ly: quryldy),
# and so do the genitive -nyñ/-dyñ/-tyng, participles -ğan/-gen, nouns -lyq/-lik, -shy…
_KAZAKH_ENDING = re.compile(
    r"(?:[bdfghjklmnpqrstvxzğş]y|yn|ynda|ynan|yñ|yng|iñ|ymen|imen|ynsha|inshe|insha|ady|edi"
    r"|ydy|idi|ğan|ğa|qan|qa|lyq|lyk|dyq|dyk|tyq|tyk|lik|dik|tik|shy|shi|şy|şi|uy|ui|dyñ|tyñ"
    r"|nyñ|diñ|tiñ|niñ|dyng|tyng|nyng|ding|ting|daǵy|dağy|dagy|daghy|degi|tegi|taǵy|tağy"
    r"|tagy|ndegi|ndagy|lardy|lerdi|dardy|derdi|tardy|terdi|larga|lerge|darga|derge)$"
)


@functools.lru_cache(maxsize=1)
def _kazakh_word_skeletons() -> frozenset[str]:
    words = [w for w in kazakh_function_words() if len(w) >= 3 and w not in ("мен", "бар")]
    return frozenset(cyrillic_skeleton(w) for w in words)


def _kazakh_latin_word(word: str, vocabulary: Vocabulary | None) -> bool:
    """Whether a lower-case Latin word looks Kazakh (see the module docstring)."""
    if len(word) >= 4 and (_KAZAKH_LATIN_LETTERS.search(word) or _KAZAKH_ENDING.search(word)):
        return True
    if len(word) >= 3 and word not in _ENGLISH_WORDS:
        skeletons = latin_skeletons(word)
        if any(sk in _kazakh_word_skeletons() for sk in skeletons):
            return True
        # A word the corpus holds in Cyrillic, 4+ letters (short ones collide across languages).
        if vocabulary is not None and len(word) >= 4:
            return any(vocabulary.lookup(sk) for sk in skeletons)
    return False


def _turkish_latin_word(word: str) -> bool:
    return word in _TURKISH_WORDS or bool(_TURKISH_ENDING.search(word))


def _latin_language(text: str, vocabulary: Vocabulary | None = None) -> str:
    """``kk``, ``en`` or another language's ISO 639-1 code for a Latin-script question."""
    words = [w.lower() for w in _LATIN_WORD.findall(text)]
    if not words:
        return "en"
    n = len(words)
    kk = sum(_kazakh_latin_word(w, vocabulary) for w in words)
    en = sum(w in _ENGLISH_WORDS for w in words)
    tr = sum(_turkish_latin_word(w) for w in words) + len(_TURKISH_APOSTROPHE.findall(text))
    de = sum(w in _GERMAN_WORDS for w in words)
    if kk >= 0.4 * n and kk > 2 * en and kk > 2 * tr and kk > 2 * de:
        return "kk"
    if en >= 1 and en > tr and en > de and en >= 0.15 * n:
        return "en"
    if de != tr and max(de, tr) >= 1:
        return "de" if de > tr else "tr"
    try:
        lang = _lingua_latin().detect_language_of(text)
    except ImportError:  # lingua is optional; without it a Latin question is English
        return "en"
    if lang is None:
        return "en"
    code = lang.iso_code_639_1.name.lower()
    return code if code in LANGUAGE_NAMES or code == "en" else "other"
