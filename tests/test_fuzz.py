"""Fuzzing with Hypothesis: the cleaner's offsets, the chunker's raw spans, and the HTTP inputs.

Generated text mixes Kazakh and Latin letters, digits, PDF-style line breaks and hyphens,
markdown, invisible and control characters. Properties: every clean character points at the raw
character it came from (or at the whitespace a separator stands for); every chunk and sentence
span lies inside the raw file and holds its text; no request body, however malformed, makes the
API answer 5xx; names and ids from outside never leave their folders.
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from rag import api, library
from rag.chunking import ChunkingConfig, _split_long, chunk_document, chunk_id, split_sentences
from rag.pipeline import QuestionError, clean_question
from rag.sources import SourceError, clean_text, make_document
from tests.helpers import small_engine

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KAZAKH = "абвгдежзийклмнопрстуфхцчшщъыьэюяәғқңөұүһіАӘБҒҚҢӨҰҮҺІЁё"
LETTERS = KAZAKH + "abcxyzABCXYZ"
SPACES = " \t\u00a0"
BREAKS = ["\n", "\r\n", "\n\n", "-\n", "-\n\n", " -\n", "\n\n\n", "\r"]
PUNCT = '.,!?;:–—-«»"()…•*'
ODD = "\u200b\u00ad\ufeff\x00\x07\x1b\u2028\x85\ufffd😀"

word = st.text(alphabet=LETTERS, min_size=1, max_size=12)


@st.composite
def pdf_like(draw: st.DrawFn) -> str:
    """Text shaped like a PDF extraction: sentences cut by line breaks, hyphens, page numbers,
    markdown headings and links, with the odd invisible or control character."""
    parts: list[str] = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.integers(0, 19))
        if kind < 10:
            parts.append(draw(word))
        elif kind < 13:
            parts.append(draw(st.sampled_from(BREAKS)))
        elif kind < 15:
            parts.append(draw(st.sampled_from(PUNCT)) + " ")
        elif kind == 15:
            parts.append(f"\n{draw(st.integers(1, 300))}\n")  # a page number
        elif kind == 16:
            parts.append("\n" + "#" * draw(st.integers(1, 3)) + " ")
        elif kind == 17:
            parts.append(f"[{draw(word)}](http://x.kz/{draw(word)})")
        elif kind == 18:
            parts.append(draw(st.sampled_from(list(ODD))))
        else:
            parts.append(draw(st.sampled_from(list(SPACES))))
        parts.append(draw(st.sampled_from(["", " ", " ", "\n"])))
    return "".join(parts)


raw_texts = st.one_of(
    pdf_like(),
    st.text(alphabet=LETTERS + SPACES + PUNCT + "\n\r-#[]()0123456789" + ODD, max_size=500),
    st.text(max_size=200),  # anything Unicode has
)


def _is_blank(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) in ("Zs", "Cc", "Zl", "Zp")


def _skeleton(s: str) -> str:
    return "".join(ch.casefold() for ch in s if ch.isalnum())


def _is_subsequence(small: str, big: str) -> bool:
    it = iter(big)
    return all(ch in it for ch in small)


# --- the cleaner ---------------------------------------------------------------------------------


@FUZZ
@given(raw_texts)
def test_clean_text_offsets_point_back_into_the_raw_text(raw: str) -> None:
    clean, offsets = clean_text(raw)
    assert len(offsets) == len(clean) + 1 and offsets[-1] == len(raw)
    assert all(a <= b for a, b in itertools.pairwise(offsets))
    for i, ch in enumerate(clean):
        assert 0 <= offsets[i] < len(raw)
        source = raw[offsets[i]]
        # A kept character is itself; a separator stands for the whitespace it replaced.
        assert ch == source or (ch in " \n" and _is_blank(source)), (i, ch, source)
    assert clean == clean.strip() and "  " not in clean
    assert _is_subsequence(_skeleton(clean), _skeleton(raw))


@FUZZ
@given(raw_texts, st.data())
def test_any_clean_span_maps_to_a_raw_span_holding_it(raw: str, data: st.DataObject) -> None:
    try:
        doc = make_document("fuzz.txt", raw)
    except SourceError:
        assume(False)
    a = data.draw(st.integers(0, len(doc.clean) - 1))
    b = data.draw(st.integers(a + 1, len(doc.clean)))
    start, end = doc.raw_span(a, b)
    assert 0 <= start < end <= len(raw)
    assert doc.clean[a] == raw[start] or _is_blank(raw[start])
    assert _is_subsequence(_skeleton(doc.clean[a:b]), _skeleton(raw[start:end]))


# --- the chunker ---------------------------------------------------------------------------

CONFIGS = [ChunkingConfig(), ChunkingConfig(120, 200, 1), ChunkingConfig(60, 80, 2)]


@FUZZ
@given(raw_texts, st.sampled_from(CONFIGS))
def test_chunks_and_sentences_have_exact_raw_spans(raw: str, cfg: ChunkingConfig) -> None:
    try:
        doc = make_document("fuzz.txt", raw)
    except SourceError:
        assume(False)
    chunks = chunk_document(doc, cfg)
    expected = {
        (p.start, p.end) for s in split_sentences(doc) for p in _split_long(s, doc, cfg.max_chars)
    }
    seen: set[tuple[int, int]] = set()
    for c in chunks:
        assert c.sentences and c.doc_id == "fuzz.txt"
        assert 0 <= c.start < c.end <= len(raw)
        assert (c.start, c.end) == (c.sentences[0].start, c.sentences[-1].end)
        assert c.text == " ".join(s.text for s in c.sentences)
        # The overlap check counts the sentences' characters, not the spaces that join them.
        assert len(c.text) <= cfg.max_chars + len(c.sentences) - 1
        assert c.chunk_id == chunk_id(c.doc_id, c.text)
        for s in c.sentences:
            assert c.start <= s.start < s.end <= c.end
            assert s.text and s.text == s.text.strip()
            assert _is_subsequence(_skeleton(s.text), _skeleton(raw[s.start : s.end]))
            seen.add((s.start, s.end))
        starts = [s.start for s in c.sentences]
        assert starts == sorted(starts)
    assert seen == expected  # no sentence is lost between chunks
    assert [c.chunk_id for c in chunk_document(doc, cfg)] == [c.chunk_id for c in chunks]


@FUZZ
@given(st.text(alphabet=LETTERS + " .!?,–«»", min_size=1, max_size=600))
def test_plain_text_sentences_are_their_raw_text(raw: str) -> None:
    """Without markup, page numbers or line breaks, a sentence is exactly its raw span."""
    try:
        doc = make_document("plain.txt", raw)
    except SourceError:
        assume(False)
    for c in chunk_document(doc, ChunkingConfig(120, 200, 1)):
        for s in c.sentences:
            assert " ".join(raw[s.start : s.end].split()) == s.text


# --- the question and the names that come from outside --------------------------------------------


@FUZZ
@given(st.one_of(st.text(max_size=3000), st.text(alphabet=SPACES + ODD + "\n", max_size=50)))
def test_clean_question_is_printable_trimmed_and_bounded(text: str) -> None:
    try:
        q = clean_question(text, 2000)
    except QuestionError as exc:
        assert exc.code in ("empty", "too_long", "no_words"), exc
        if exc.code == "no_words":  # refused only when there is no letter or digit at all
            assert not any(ch.isalnum() for ch in text)
        return
    assert q and q == q.strip() and len(q) <= 2000
    assert any(ch.isalnum() for ch in q)
    assert all(ch.isprintable() for ch in q) and "  " not in q


@FUZZ
@given(st.text(max_size=300))
def test_upload_names_are_safe(filename: str) -> None:
    name = library.safe_name(filename)
    assert name and not name.startswith(".") and name not in (".", "..")
    assert not any(ch in name for ch in "/\\\x00")
    assert len(name.rsplit(".", 1)[0]) <= library.MAX_NAME_CHARS
    try:
        stored = library.stored_name(filename)
    except library.UnsupportedType:
        return
    assert stored.endswith((".txt", ".md")) and "/" not in stored


@pytest.fixture(scope="module")
def fuzz_engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return small_engine(tmp_path_factory.mktemp("fuzz"))


@FUZZ
@given(doc_id=st.one_of(st.text(max_size=60), st.sampled_from(["..", "../x", "/etc/passwd"])))
def test_document_ids_never_leave_their_folders(fuzz_engine: Any, doc_id: str) -> None:
    s = fuzz_engine.settings
    try:
        path = library.document_path(s, doc_id)
    except library.DocumentNotFound:
        return
    assert path.resolve().parent in (s.corpus.resolve(), s.uploads.resolve())


# --- the HTTP API's input models ----------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
questions = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=KAZAKH + " ?", min_size=1, max_size=80),
    st.text(alphabet=ODD + SPACES, max_size=20),
    json_values,
)
turns = st.one_of(
    st.fixed_dictionaries({"question": questions}, optional={"answer": questions}),
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "developer", "tool", "robot"])},
        optional={"content": st.one_of(questions, st.lists(json_values, max_size=3))},
    ),
    json_values,
)
sentences = st.lists(word, min_size=1, max_size=12).map(lambda ws: " ".join(ws) + "?")
valid_turns = st.one_of(
    st.lists(st.fixed_dictionaries({"question": sentences, "answer": sentences}), max_size=3),
    st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "system"]), "content": sentences}
        ),
        max_size=4,
    ),
)
# Mostly well-formed bodies with one odd part, so that many requests get past validation and
# exercise the pipeline, and the rest probe the validation itself.
ask_bodies = st.one_of(
    st.fixed_dictionaries(
        {"question": st.one_of(sentences, questions)},
        optional={"history": valid_turns, "top_k": st.integers(1, 100)},
    ),
    st.fixed_dictionaries(
        {"question": questions},
        optional={
            "history": st.one_of(st.lists(turns, max_size=4), json_values),
            "top_k": st.one_of(st.integers(-5, 150), json_values),
            "id": json_values,
        },
    ),
    json_values,
)
user_last = st.tuples(
    st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "system"]), "content": sentences}
        ),
        max_size=3,
    ),
    st.one_of(
        sentences,
        questions,
        st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["text", "image_url"]), "text": sentences}
            ),
            max_size=3,
        ),
    ),
).map(lambda t: [*t[0], {"role": "user", "content": t[1]}])
chat_bodies = st.one_of(
    st.fixed_dictionaries(
        {"messages": user_last},
        optional={
            "stream": st.booleans(),
            "top_k": st.integers(1, 100),
            "model": st.text(max_size=20),
            "temperature": st.floats(0, 2),
        },
    ),
    st.fixed_dictionaries(
        {"messages": st.one_of(st.lists(turns, min_size=0, max_size=4), json_values)},
        optional={
            "stream": st.one_of(st.booleans(), json_values),
            "top_k": st.one_of(st.integers(-5, 150), json_values),
            "model": json_values,
            "temperature": json_values,
        },
    ),
    json_values,
)


@pytest.fixture(scope="module")
def fuzz_client(fuzz_engine: Any) -> Iterator[TestClient]:
    with TestClient(
        api.create_app(fuzz_engine.settings, fuzz_engine, token=""), raise_server_exceptions=False
    ) as c:
        yield c


def _check_error(r: Any, openai: bool) -> None:
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    error = r.json()["error"]
    assert isinstance(error["message"] if openai else error, str)


@FUZZ
@given(body=ask_bodies)
def test_ask_never_fails_with_a_5xx(fuzz_client: TestClient, body: Any) -> None:
    r = fuzz_client.post("/api/ask", json=body)
    event(f"status {r.status_code}")
    if r.status_code != 200:
        _check_error(r, openai=False)
        return
    out = r.json()
    assert isinstance(body, dict) and isinstance(body.get("question"), str)
    markers = {int(m) for m in re.findall(r"\[(\d+)\]", out["answer"])}
    assert markers == {c["marker"] for c in out["citations"]}


@FUZZ
@given(body=chat_bodies)
def test_chat_completions_never_fail_with_a_5xx(fuzz_client: TestClient, body: Any) -> None:
    r = fuzz_client.post("/v1/chat/completions", json=body)
    event(f"status {r.status_code}")
    if r.status_code != 200:
        _check_error(r, openai=True)
        return
    if r.headers["content-type"].startswith("text/event-stream"):
        events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        assert not any('"server_error"' in e for e in events)
    else:
        assert r.json()["choices"][0]["message"]["content"]


@FUZZ
@given(
    content=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)),
    ctype=st.sampled_from(
        [
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "",
            "multipart/form-data",
        ]
    ),
    path=st.sampled_from(["/api/ask", "/api/search", "/v1/chat/completions", "/api/documents"]),
)
def test_raw_bodies_never_fail_with_a_5xx(
    fuzz_client: TestClient, content: bytes, ctype: str, path: str
) -> None:
    headers = {"Content-Type": ctype} if ctype else {}
    r = fuzz_client.post(path, content=content, headers=headers)
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code >= 400:
        json.loads(r.text)  # always a JSON error


@FUZZ
@given(
    name=st.tuples(
        st.text(max_size=60), st.sampled_from([*library.ALLOWED_SUFFIXES, ".exe", ""])
    ).map("".join),
    data=st.one_of(
        st.binary(max_size=400),
        st.text(max_size=400).map(str.encode),
        st.lists(sentences, min_size=1, max_size=8).map(lambda x: " ".join(x).encode()),
    ),
)
def test_uploads_of_anything_are_refused_or_stored_safely(
    fuzz_engine: Any, name: str, data: bytes
) -> None:
    try:
        info = library.add_document(fuzz_engine, name, data)
    except (library.LibraryError, SourceError) as exc:
        event(type(exc).__name__)
        return
    event("accepted")
    # Accepted: stored under a safe name inside the uploads folder, then removed again.
    uploads: Path = fuzz_engine.settings.uploads
    assert (uploads / info.doc_id).is_file()
    library.remove_document(fuzz_engine, info.doc_id)
