"""Every example question of the chat, and the README's ``/api/ask`` example, is answered
correctly by the real model: not abstained, citing its evidence, holding its key facts.

The expected evidence and key facts come from the question set (``seeds/questions.jsonl``): an
example that is not one of its questions fails here, so a new example brings its evidence.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from rag.pipeline import Engine, answer, make_engine
from rag.settings import from_env
from tests.conftest import ROOT, SEEDS
from ui.examples import EXAMPLES

pytestmark = pytest.mark.model

CURL = re.compile(r"curl[^\n]*/api/ask[^\n]*-d '(\{[^']*\})'")


def _fold(text: str) -> str:
    """Lower case, soft hyphens out, white space folded: how quotes and facts are compared."""
    return " ".join(text.replace("\xad", "").split()).casefold()


def readme_question() -> str:
    """The question the README's ``curl … /api/ask`` example sends."""
    found = CURL.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(found) == 1, "the README should have exactly one /api/ask curl example"
    return json.loads(found[0])["question"]


def question_set() -> dict[str, dict[str, Any]]:
    rows = [
        json.loads(line) for line in (SEEDS / "questions.jsonl").read_text("utf-8").splitlines()
    ]
    return {row["question"]: row for row in rows}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The product's settings on the seed corpus, its index built in a temporary folder."""
    index = tmp_path_factory.mktemp("examples") / "index"
    return make_engine(from_env(index=index).replace(uploads=None))


def test_examples_cover_the_three_languages() -> None:
    known = question_set()
    assert {known[q]["lang"] for q in EXAMPLES} == {"kk", "ru", "en"}
    assert len(set(EXAMPLES)) == len(EXAMPLES)


@pytest.mark.parametrize("question", [*EXAMPLES, readme_question()])
def test_example_is_answered_with_its_evidence(engine: Engine, question: str) -> None:
    known = question_set()
    assert question in known, f"{question!r} is not in seeds/questions.jsonl"
    row = known[question]
    assert row["answerable"] and row["evidence"] and row["type"] != "followup"

    ans = answer(question, engine=engine)
    assert not ans.abstained, ans.answer
    assert ans.language == row["lang"]
    quotes = [_fold(c.quote) for c in ans.citations]
    for evidence in row["evidence"]:
        wanted = _fold(evidence["text"])
        cited = [
            c for c, q in zip(ans.citations, quotes, strict=True) if wanted in q or q in wanted
        ]
        assert cited, f"evidence not cited: {evidence['text']!r}\nanswer: {ans.answer}"
        assert all(c.doc_id == evidence["doc_id"] for c in cited)
    missing = [k for k in row["keywords"] if _fold(k) not in _fold(ans.answer)]
    assert not missing, f"key facts missing: {missing}\nanswer: {ans.answer}"
