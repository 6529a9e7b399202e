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


# ---------------------------------------------------------------- Kazakh as people type it


@pytest.mark.parametrize(
    "text",
    [
        "Qazaqstan halqy Assambleıasy qashan quryldy?",  # 2021 Latin alphabet
        "Kazakhstan halky Assambleyasy kashan kuryldy?",  # chat transliteration
        "Казакстан халкы Ассамблеясы кашан курылды?",  # Russian keyboard
        "Ассамблея народа Казахстана қашан құрылды?",  # mixed kk/ru
        "Түймебаевтың данные бойынша Қазақстанда сколько дунган тұрады?",
    ],
)
def test_kazakh_in_every_typing_form_is_kazakh(text):
    assert detect_language(text) == "kk"


@pytest.fixture(scope="module")
def seed_vocab():
    from rag.typing_forms import Vocabulary, kazakh_function_words
    from tests.conftest import SEEDS

    texts = [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))]
    return Vocabulary.from_texts(texts, extra=kazakh_function_words())


def test_the_question_sets_variants_are_detected_as_kazakh(seed_vocab):
    """Target ≥ 0.95 per form (measured 1.00 Latin/translit/mixed, 0.99 Russian keyboard),
    with the corpus vocabulary as the pipeline passes it; the originals stay as they were."""
    import json
    from collections import Counter

    from rag.language import identify
    from tests.conftest import SEEDS

    rows = [json.loads(x) for x in (SEEDS / "questions.jsonl").read_text("utf-8").splitlines()]
    hits: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for r in rows:
        form = r.get("form") or f"original-{r['lang']}"
        asked = identify(r["question"], vocabulary=seed_vocab).asked
        total[form] += 1
        hits[form] += asked == r["lang"]
    assert {"latin", "translit", "russian_keyboard", "mixed"} <= set(total)
    for form in total:
        floor = 1.0 if form.startswith("original") else 0.95
        assert hits[form] / total[form] >= floor, (form, hits[form], total[form])


# Questions in other languages about the seed documents, written for this test.
FOREIGN = {
    "de": [
        "Wann wurde die Versammlung des Volkes Kasachstans gegründet?",
        "Wer leitete die Regierungskommission in Kordai?",
        "Wie viele Dunganen leben in Kasachstan?",
        "Was fordert die Bewegung HAQ von den Behörden?",
        "Warum kam es zu dem Konflikt in Kordai?",
        "Was sagt Tokajew über Kordai?",
    ],
    "tr": [
        "Kazakistan Halkı Asamblesi ne zaman kuruldu?",
        "Kazakistan'da kaç Dungan yaşıyor?",
        "Tüymebayev çatışmanın hangi üç nedenini sıraladı?",
        "Aksakallar konseyi hangi köylerde kuruldu?",
        "Hükümet komisyonuna kim başkanlık etti?",
        "Seçimlerde bağımsız gözlemcilere neden destek veriliyor?",
        "Makaleye göre Asamble hangi belgeyle kuruldu?",
    ],
    "es": ["¿Cuándo se fundó la Asamblea del Pueblo de Kazajistán?"],
    "fr": ["Combien de Doungans vivent au Kazakhstan?"],
}


@pytest.mark.parametrize(
    ("lang", "text"), [(lang, t) for lang, texts in FOREIGN.items() for t in texts]
)
def test_a_question_in_another_language_is_named_and_answered_in_english(seed_vocab, lang, text):
    """Turkish shares letters and endings with Latin Kazakh: it must not pass for it."""
    from rag.language import identify

    guess = identify(text, vocabulary=seed_vocab)
    assert (guess.asked, guess.language, guess.foreign) == (lang, "en", True)
