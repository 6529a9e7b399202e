"""The example questions shown under the chat: a newcomer's first click.

Every one must be answered correctly by the product as it is (the evidence-first composer, not
a future one): ``tests/test_ui_examples.py`` asks each with the real model and checks that the
answer cites its evidence and holds its key facts, from the question set
``seeds/questions.jsonl`` (each example is one of its questions). That test also checks the
question of the README's ``curl … /api/ask`` example. At least one example per language.
"""

from __future__ import annotations

EXAMPLES: tuple[str, ...] = (
    "HAQ қозғалысы Қордай оқиғасынан кейін Қазақстан халқы ассамблеясының қызметін қалай бағалады?",
    "Үкімет комиссиясы Қордай ауданының қай елді мекендерінің жағдайымен танысты?",
    "Сколько лет, по словам Туймебаева, дунганский народ живёт в Казахстане?",
    "On which dates did Tokayev visit Brussels in June 2026?",
)
