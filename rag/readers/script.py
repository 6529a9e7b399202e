"""Latin / Cyrillic look-alikes in OCR output: one script per word, the line's script when unsure.

Tesseract reading Kazakh and Russian with English data picks a script per word, and many capital
letters look the same in both (А/A, Н/H, О/O, Р/P, С/C, Т/T …). A word drawn only with such
letters cannot be told apart by its shape, so its script is the one its line is written in; a
word that mixes the two scripts is a misread and is written in its majority script. A word with
a letter that exists in one script only (Q, N, Қ, Ш …) keeps its script: that letter is evidence
the twins cannot give. Nothing here knows any word: no dictionary, no acronym list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Cyrillic letters whose printed shape is a Latin letter's, and that letter. Lower case only
# where the shapes agree in print too (к, м, н, т, в are not twins of k, m, h, t, b in lower case).
CYR_TO_LAT = {
    "А": "A",
    "В": "B",
    "С": "C",
    "Е": "E",
    "Н": "H",
    "І": "I",
    "Ј": "J",
    "К": "K",
    "М": "M",
    "О": "O",
    "Р": "P",
    "Ѕ": "S",
    "Т": "T",
    "Х": "X",
    "У": "Y",
    "а": "a",
    "с": "c",
    "е": "e",
    "о": "o",
    "р": "p",
    "х": "x",
    "у": "y",
    "і": "i",
    "ј": "j",
    "ѕ": "s",
    "һ": "h",
}
LAT_TO_CYR = {lat: cyr for cyr, lat in CYR_TO_LAT.items()}

# A list item's number ("2.", "3)"): what follows a real exclamation at a list's item end.
_LIST_NUMBER = re.compile(r"\d+[.)]")

LATIN = "latin"
CYRILLIC = "cyrillic"


def letter_script(ch: str) -> str | None:
    """``LATIN``, ``CYRILLIC`` or None (not a letter of either: digits, punctuation, Greek …)."""
    if "A" <= ch <= "Z" or "a" <= ch <= "z" or "\u00c0" <= ch <= "\u024f":
        return LATIN if ch.isalpha() else None
    if "\u0400" <= ch <= "\u04ff" or "\u0500" <= ch <= "\u052f":
        return CYRILLIC if ch.isalpha() else None
    return None


def counts(text: str) -> tuple[int, int]:
    """Letters of ``text`` in Latin and in Cyrillic script."""
    scripts = [letter_script(c) for c in text]
    return scripts.count(LATIN), scripts.count(CYRILLIC)


def twins_only(word: str) -> bool:
    """True when every letter of ``word`` (at least one) has a twin in the other script."""
    letters = [c for c in word if letter_script(c)]
    return bool(letters) and all(c in CYR_TO_LAT or c in LAT_TO_CYR for c in letters)


def to_script(word: str, script: str) -> str:
    """``word`` with each letter that has a twin in ``script`` written as that twin."""
    table = LAT_TO_CYR if script == CYRILLIC else CYR_TO_LAT
    return "".join(table.get(c, c) for c in word)


def word_script(word: str) -> str | None:
    """The script ``word`` is written in; None when it has no letter or mixes both."""
    lat, cyr = counts(word)
    if lat and not cyr:
        return LATIN
    if cyr and not lat:
        return CYRILLIC
    return None


def single_script(word: str) -> str:
    """A mixed-script word written in one script, letters without a twin left as they are.

    The script that can write the whole word wins: a letter with no twin (Ы, Қ, Q, N) shows
    which script was printed. When both can (twins only) or neither can, the majority does, and
    a tie keeps the script of the first letter (a capital is read more surely than the rest).
    """
    lat, cyr = counts(word)
    if not (lat and cyr):
        return word
    lone = {letter_script(c) for c in word if letter_script(c) and not twins_only(c)}
    if len(lone) == 1:
        return to_script(word, lone.pop() or CYRILLIC)
    if lat == cyr:
        first = next(letter_script(c) for c in word if letter_script(c))
        return to_script(word, first or CYRILLIC)
    return to_script(word, LATIN if lat > cyr else CYRILLIC)


def repair_line(words: Sequence[str], context: tuple[int, int] = (0, 0)) -> list[str]:
    """The words of one printed line with each in one script, look-alike words in the line's.

    ``context`` (Latin, Cyrillic letter counts, e.g. of the whole page) decides the script of
    a line with no other letters (a heading of one acronym).
    """
    fixed = [single_script(w) for w in words]
    out: list[str] = []
    for i, word in enumerate(fixed):
        script = word_script(word)
        if script is None or not twins_only(word):
            out.append(word)
            continue
        # The line's script, this word left out: it is the word being judged.
        lat = sum(counts(w)[0] for j, w in enumerate(fixed) if j != i)
        cyr = sum(counts(w)[1] for j, w in enumerate(fixed) if j != i)
        if lat == cyr:
            lat, cyr = context
        line_script = LATIN if lat > cyr else CYRILLIC if cyr > lat else script
        out.append(to_script(word, line_script))
    return out


def differs_in_shape(cyrillic: str, latin: str) -> bool:
    """True when ``latin`` (another reading of the same printed word) shows different letters.

    The letters are compared one by one after writing the Cyrillic reading with its Latin twins
    (case folded: a reading that differs only in case saw the same shapes). Readings with a
    different number of letters are not comparable: they split the word differently.
    """
    a = [c for c in to_script(cyrillic, LATIN) if letter_script(c)]
    b = [c for c in latin if letter_script(c)]
    if len(a) != len(b) or word_script("".join(b)) != LATIN:
        return False
    return any(x.casefold() != y.casefold() for x, y in zip(a, b, strict=True))


def with_letters(word: str, letters: str) -> str:
    """``word`` with its letters replaced, in order, by ``letters`` (punctuation kept)."""
    it = iter(c for c in letters if letter_script(c))
    return "".join(next(it) if letter_script(c) else c for c in word)


def bang_as_i(word: str, next_word: str | None) -> str:
    """``word`` with an exclamation mark that stands for a Cyrillic «і» written as «і».

    Printed «і» (a stem with a dot above) is read «!» where print is small («мөлшері» read
    «мелшер!» at 150 dpi), and the false sentence end then cuts the sentence in two. A «!» is
    taken for «і» when it sits inside a Cyrillic word («б!р»), or ends one and the text goes on
    with a lower-case letter or a number (``next_word``, the next word read in the same
    paragraph; None at a paragraph's end), where a real exclamation would start a new sentence.
    A «!» after a Latin word, before a capital, a dash or a list number («2.»), or at the end of
    a paragraph stays.
    """
    if "!" not in word:
        return word
    chars = list(word)
    for k, c in enumerate(chars):
        if c != "!" or k == 0 or letter_script(chars[k - 1]) != CYRILLIC:
            continue
        if k + 1 < len(chars):
            inside = letter_script(chars[k + 1]) == CYRILLIC
        else:
            following = next_word or ""
            first = following[:1]
            number = first.isdigit() and not _LIST_NUMBER.fullmatch(following)
            inside = number or (first.isalpha() and first.islower())
        if inside:
            chars[k] = "і"
    return "".join(chars)
