"""Latin / Cyrillic look-alikes in OCR output: the repair on synthetic words, and the real OCR path.

The repair tests are plain strings (no Tesseract). The last tests typeset Kazakh sentences
holding a Latin acronym, scan them into an image-only PDF and read it with Debian's Tesseract,
like the OCR tests in test_readers.py (``make ocr`` installs it; ``make test`` depends on it).
"""

from __future__ import annotations

import re

import pytest

from evals.experiments.ocr_quality import scanned_pdf
from rag.readers import read_document
from rag.readers.ocr import OcrWord, lookalike_words, repair_marks, repair_scripts
from rag.readers.script import (
    CYRILLIC,
    LATIN,
    bang_as_i,
    differs_in_shape,
    repair_line,
    single_script,
    with_letters,
    word_script,
)

CYR_LINE = "Азаматтық қозғалыс бүгін мәлімдеме жасады"


def scripts(text: str) -> set[str | None]:
    """The scripts of the words of ``text``."""
    return {word_script(w) for w in text.split()}


# --- the repair on strings -------------------------------------------------------------------


def test_a_latin_acronym_with_a_latin_only_letter_is_kept_inside_cyrillic_text() -> None:
    words = [*CYR_LINE.split(), "HAQ", "туралы"]
    assert repair_line(words) == words
    assert repair_line(["«HAQ»", "қозғалысы"]) == ["«HAQ»", "қозғалысы"]


def test_a_cyrillic_word_read_with_latin_twins_is_written_in_cyrillic_again() -> None:
    # "Асар" as Tesseract may give it: every letter a Latin look-alike; "ОСЫ" with two.
    got = repair_line(["Acap", "мектеп", "OCЫ", "ауылда"])
    assert got[0] == "Асар" and got[2] == "ОСЫ"
    assert all(word_script(w) == CYRILLIC for w in got)
    # Twins alone, in a Cyrillic line: the line's script.
    assert repair_line(["PK", "Үкіметі", "шешім", "қабылдады"])[0] == "РК"


def test_look_alike_words_follow_their_line_not_a_fixed_script() -> None:
    # The same shapes in an English line stay Latin, and Cyrillic twins there become Latin.
    assert repair_line(["the", "HAO", "report"]) == ["the", "HAO", "report"]
    assert repair_line(["the", "НАО", "report"]) == ["the", "HAO", "report"]
    # A line of one look-alike word takes the page's script.
    assert repair_line(["TOO"], context=(0, 500)) == ["ТОО"]
    assert repair_line(["ТОО"], context=(500, 0)) == ["TOO"]


def test_a_mixed_script_word_takes_its_majority_script() -> None:
    assert single_script("Қазақстaн") == "Қазақстан"  # one Latin "a" among Cyrillic
    assert word_script(single_script("Қазақстaн")) == CYRILLIC
    assert single_script("HAО") == "HAO"  # one Cyrillic "О" among Latin
    assert word_script(single_script("HAО")) == LATIN
    # A letter with no twin stays what it is: the word cannot be made whole, so it is kept.
    assert single_script("Қa") in {"Қа", "Қa"}
    assert single_script("2024") == "2024"


def test_a_second_reading_counts_only_when_it_sees_different_shapes() -> None:
    assert differs_in_shape("НАО", "HAQ")  # Q is not any Cyrillic letter's twin
    assert differs_in_shape("«СОМТЕМТ»", "CONTENT")
    assert not differs_in_shape("РК", "PK")  # the same shapes: nothing learnt
    assert not differs_in_shape("РК", "pk")  # case alone is not a different shape
    assert not differs_in_shape("НАО", "HA0")  # a digit: a different split, not comparable
    assert not differs_in_shape("НАО", "HAQS")
    assert with_letters("«НАО»", "HAQ") == "«HAQ»"


def test_the_tsv_words_are_repaired_per_line_and_look_alikes_are_found() -> None:
    def word(text: str, line: int) -> OcrWord:
        return OcrWord(text, 90.0, (0, 0, 10, 10), (1, 1, line))

    words = [word("Acaр", 1), word("мектеп", 1), word("НАО", 1), word("HAQ", 2), word("үй", 2)]
    fixed = repair_scripts(words)
    assert [w.text for w in fixed] == ["Асар", "мектеп", "НАО", "HAQ", "үй"]
    # Cyrillic words of look-alikes only, two letters or more: the ones read again.
    assert lookalike_words(fixed) == [0, 2]


def test_an_exclamation_mark_read_for_i_is_written_as_i_only_where_the_text_goes_on() -> None:
    # Inside a Cyrillic word, or ending one before lower case or a digit: a misread «і».
    assert bang_as_i("б!р", None) == "бір"
    assert bang_as_i("мелшер!", "4,5") == "мелшері"
    assert bang_as_i("бүг!н", None) == "бүгін"
    # A real exclamation: before a capital, a dash, nothing; after a Latin word or a digit.
    assert bang_as_i("Керемет!", "Біз") == "Керемет!"
    assert bang_as_i("Керемет!", "—") == "Керемет!"
    assert bang_as_i("Керемет!", None) == "Керемет!"
    assert bang_as_i("Yes!", "деді") == "Yes!"
    assert bang_as_i("2021!", "жыл") == "2021!"
    assert bang_as_i("бар!", "2.") == "бар!"  # the next item of a numbered list
    assert bang_as_i("!", "мен") == "!"
    assert bang_as_i("мектеп", "!") == "мектеп"


def test_the_page_words_are_repaired_with_the_next_word_read() -> None:
    def word(text: str, line: int) -> OcrWord:
        return OcrWord(text, 90.0, (0, 0, 10, 10), (1, 1, line))

    # The next word may be on the next line: the sentence goes on there.
    words = [
        word("қаражат", 1),
        word("мелшер!", 1),
        word("4,5", 2),
        word("Міне!", 2),
        word("Ол", 2),
    ]
    fixed = repair_marks(words)
    assert [w.text for w in fixed] == ["қаражат", "мелшері", "4,5", "Міне!", "Ол"]
    assert fixed[1].box == words[1].box and fixed[1].line == words[1].line
    # Not across a paragraph's end: what starts the next paragraph starts a new sentence.
    ends = [word("бар!", 1), OcrWord("бұл", 90.0, (0, 0, 10, 10), (1, 2, 1))]
    assert [w.text for w in repair_marks(ends)] == ["бар!", "бұл"]


# --- the real OCR path -----------------------------------------------------------------------

HAQ_PAGE = (
    "Азаматтық қозғалыс «HAQ» өз мәлімдемесін жариялады.\n\n"
    "Қозғалыс HAQ сайлауға қатысудан бас тартпайды, деп жазды «HAQ» баспасөз қызметі."
)


@pytest.mark.parametrize("dpi", [150, 300])
def test_a_latin_acronym_in_a_scanned_kazakh_page_is_read_as_latin(dpi: int) -> None:
    got = read_document("haq.pdf", scanned_pdf([HAQ_PAGE], dpi=dpi))
    found = re.findall(r"[^\s«»\"]*[HН][AА][QОO][^\s«»\"]*", got.text)
    assert found and all(w == "HAQ" for w in found), got.text
    # The Kazakh words around it stay Cyrillic: no Latin letter outside the acronym.
    others = [w for w in re.findall(r"\w+", got.text) if w != "HAQ"]
    assert others and all(word_script(w) in {CYRILLIC, None} for w in others), got.text
