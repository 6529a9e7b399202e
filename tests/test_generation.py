"""The evidence-first generator's signals, with hand-made vectors."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from rag.generation import detail_gain

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
