"""Checks of the question set ``seeds/questions.jsonl`` against the seed documents (no model)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from rag.schema import Document
from rag.sources import load_corpus, locate

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
QUESTIONS = SEEDS / "questions.jsonl"

LANGS = {"kk", "ru", "en"}
TYPES = {"fact", "number", "date", "list", "why", "multi_doc", "followup", "unanswerable"}
SPLITS = {"dev", "test"}
REQUIRED = {
    "id": str,
    "question": str,
    "lang": str,
    "answerable": bool,
    "type": str,
    "answer": str,
    "keywords": list,
    "evidence": list,
    "split": str,
}


def _load_items() -> list[dict]:
    items = []
    with QUESTIONS.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as e:  # pragma: no cover - reported by the test
                pytest.fail(f"line {n}: not valid JSON: {e}")
    return items


@pytest.fixture(scope="module")
def items() -> list[dict]:
    return _load_items()


@pytest.fixture(scope="module")
def corpus() -> dict[str, Document]:
    return {d.doc_id: d for d in load_corpus(SEEDS)}


def _answerable(items: list[dict]) -> list[dict]:
    return [it for it in items if it["answerable"]]


def test_file_parses_and_is_large_enough(items):
    assert len(items) >= 80


def test_ids_unique_and_well_formed(items):
    ids = [it["id"] for it in items]
    assert len(ids) == len(set(ids)), [i for i, c in Counter(ids).items() if c > 1]
    assert all(re.fullmatch(r"q\d{3,}", i) for i in ids)


def test_required_fields_and_types(items):
    for it in items:
        for field, typ in REQUIRED.items():
            assert field in it, (it.get("id"), f"missing {field}")
            assert isinstance(it[field], typ), (it["id"], field, type(it[field]))
        assert it["question"].strip(), it["id"]
        assert it["lang"] in LANGS, it["id"]
        assert it["type"] in TYPES, it["id"]
        assert it["split"] in SPLITS, it["id"]
        assert all(isinstance(k, str) and k.strip() for k in it["keywords"]), it["id"]
        for ev in it["evidence"]:
            assert isinstance(ev, dict) and set(ev) >= {"doc_id", "text"}, it["id"]
            assert isinstance(ev["doc_id"], str) and isinstance(ev["text"], str), it["id"]
        if "follows" in it:
            assert isinstance(it["follows"], str), it["id"]


def test_answerable_and_unanswerable_items_are_consistent(items):
    for it in items:
        if it["answerable"]:
            assert it["type"] != "unanswerable", it["id"]
            assert it["answer"].strip(), it["id"]
            assert 1 <= len(it["keywords"]) <= 3, it["id"]
            assert it["evidence"], it["id"]
        else:
            assert it["type"] == "unanswerable", it["id"]
            assert it["answer"] == "" and it["keywords"] == [] and it["evidence"] == [], it["id"]


def test_language_and_type_counts(items):
    langs = Counter(it["lang"] for it in items)
    assert langs["ru"] >= 12, langs
    assert langs["en"] >= 10, langs
    assert langs["kk"] > langs["ru"] + langs["en"], langs
    assert sum(not it["answerable"] for it in items) >= 10
    types = Counter(it["type"] for it in items)
    assert types["multi_doc"] >= 5, types
    assert types["followup"] >= 8, types


def test_followups_point_to_an_earlier_item_in_the_same_split(items):
    seen: dict[str, dict] = {}
    for it in items:
        if it["type"] == "followup":
            assert "follows" in it, it["id"]
        if "follows" in it:
            assert it["type"] == "followup", it["id"]
            parent = seen.get(it["follows"])
            assert parent is not None, (it["id"], f"follows unknown or later id {it['follows']}")
            assert parent["split"] == it["split"], (it["id"], it["follows"])
        seen[it["id"]] = it
    followup_langs = {it["lang"] for it in items if it["type"] == "followup"}
    assert followup_langs == LANGS, followup_langs


def test_multi_doc_items_cite_two_documents(items):
    for it in items:
        if it["type"] == "multi_doc":
            assert len({ev["doc_id"] for ev in it["evidence"]}) >= 2, it["id"]


def test_every_evidence_quote_is_found_in_its_document(items, corpus):
    missing = []
    for it in _answerable(items):
        for ev in it["evidence"]:
            doc = corpus.get(ev["doc_id"])
            assert doc is not None, (it["id"], f"unknown doc {ev['doc_id']}")
            if locate(doc, ev["text"]) is None:
                missing.append((it["id"], ev["doc_id"], ev["text"][:80]))
    assert not missing, missing


def test_evidence_quotes_are_short(items):
    for it in _answerable(items):
        for ev in it["evidence"]:
            assert 3 <= len(ev["text"].split()) <= 40, (it["id"], ev["text"][:80])


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def test_keywords_occur_in_the_evidence_documents(items, corpus):
    bad = []
    for it in _answerable(items):
        texts = [_norm(corpus[ev["doc_id"]].clean) for ev in it["evidence"]]
        for kw in it["keywords"]:
            if not any(_norm(kw) in t for t in texts):
                bad.append((it["id"], kw))
    assert not bad, bad


def test_both_splits_nonempty_for_every_language(items):
    pairs = {(it["lang"], it["split"]) for it in items}
    for lang in LANGS:
        for split in SPLITS:
            assert (lang, split) in pairs, (lang, split)


def test_splits_are_roughly_balanced(items):
    splits = Counter(it["split"] for it in items)
    assert abs(splits["dev"] - splits["test"]) <= max(4, len(items) // 10), splits
