"""Language detection of questions."""

import pytest

from rag.language import detect_language


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Қордай оқиғасы қашан болды?", "kk"),
        ("Ал оның төрағасы кім болған?", "kk"),
        ("Кім?", "kk"),
        ("Не болды?", "kk"),
        ("Когда произошли события в Кордае?", "ru"),
        ("А кто его возглавлял?", "ru"),
        ("Почему начался конфликт?", "ru"),
        ("When did the Kordai clashes happen?", "en"),
        ("And who chaired it?", "en"),
        ("What does HAQ demand from the authorities?", "en"),
        ("Что говорит HAQ о выборах?", "ru"),
        ("HAQ қозғалысы не талап етеді?", "kk"),
    ],
)
def test_detects_the_three_languages(text, lang):
    assert detect_language(text) == lang


def test_no_letters_falls_back_to_default():
    assert detect_language("123 ?!") == "kk"
    assert detect_language("😀", default="en") == "en"


def test_kazakh_names_inside_russian_questions_stay_russian():
    assert detect_language("Сколько детей получили помощь в рамках акции «Мың бала»?") == "ru"
    assert detect_language("Кто живёт в селе Бәйтерек?") == "ru"
    assert detect_language("Бәйтерек ауылында кім тұрады?") == "kk"
