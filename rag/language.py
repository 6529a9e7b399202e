"""Which language a question is in: Kazakh, Russian or English.

Script and Kazakh-specific letters settle almost every case (ә ғ қ ң ө ұ ү һ і occur in Kazakh
and never in Russian); the rest (short Cyrillic questions without those letters, such as «Кім?»
or «Не болды?») is decided by a list of frequent Kazakh words and then by the ``lingua`` detector
restricted to the three languages.
"""

from __future__ import annotations

import functools
import re

LANGUAGES = ("kk", "ru", "en")

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


def detect_language(text: str, default: str = "kk") -> str:
    """Return ``kk``, ``ru`` or ``en`` for ``text`` (``default`` when there are no letters)."""
    cyr = len(_CYRILLIC.findall(text))
    lat = len(_LATIN.findall(text))
    if cyr == 0 and lat == 0:
        return default
    if lat > cyr:
        return "en"
    words = [w.lower() for w in _WORD.findall(text)]
    kk = sum(w in _KAZAKH_WORDS for w in words)
    ru = sum(w in _RUSSIAN_WORDS for w in words)
    kazakh_spelled = sum(any(ch in _KAZAKH_LETTERS for ch in w) for w in words)
    if kazakh_spelled:
        # A Kazakh name or title inside a Russian question («Мың бала», «Бәйтерек») does not
        # make it Kazakh: with Russian function words and few Kazakh-spelled words it is Russian.
        if ru > kk and kazakh_spelled * 3 < len(words):
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
