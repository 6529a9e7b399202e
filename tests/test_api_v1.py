"""The OpenAI-compatible ``/v1`` as real clients use it: usage, ``stream_options``, ``max_tokens``,
``n``, unknown models, sources; through FastAPI's test client, then the official ``openai``
client and LangChain's ``ChatOpenAI`` against a uvicorn server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rag import api
from rag.pipeline import Engine
from rag.schema import MARKER_RE
from rag.tokens import WordTokenizer, count
from tests.helpers import TOKEN, running_server, small_engine, sse_events, streamed_content

# Answered (with the hash embedder of the tests) in two cited sentences: room to cut.
QUESTION = "Қазақстан халқы ассамблеясы туралы не айтылды?"
FOLLOW_UP = "Ал бұл ұйыммен не істеу керек деп ұсынды?"
WORDS = WordTokenizer()  # the hash embedder has no tokenizer: words and signs are counted


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return small_engine(tmp_path_factory.mktemp("v1"))


@pytest.fixture()
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(api.create_app(engine.settings, engine, token="")) as c:
        yield c


def _ask(client: TestClient, **extra: Any) -> dict[str, Any]:
    body = {"model": "kazrag", "messages": [{"role": "user", "content": QUESTION}], **extra}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _markers(text: str) -> set[int]:
    return {int(n) for n in MARKER_RE.findall(text)}


def test_usage_counts_the_messages_and_the_reply(client: TestClient) -> None:
    body = _ask(client)
    content = body["choices"][0]["message"]["content"]
    usage = body["usage"]
    assert usage["prompt_tokens"] == count(WORDS, QUESTION)
    assert usage["completion_tokens"] == count(WORDS, content) > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_max_tokens_cuts_the_answer_and_its_citations(client: TestClient) -> None:
    full = _ask(client)
    full_text = full["choices"][0]["message"]["content"]
    assert full["choices"][0]["finish_reason"] == "stop"
    assert len(full["citations"]) >= 2, "the test needs an answer with two sentences"
    limit = count(WORDS, full_text) - 1
    for max_tokens in (limit, 12, 5, 1):
        body = _ask(client, max_tokens=max_tokens)
        text = body["choices"][0]["message"]["content"]
        assert body["choices"][0]["finish_reason"] == "length"
        assert full_text.startswith(text) and text != full_text
        assert body["usage"]["completion_tokens"] == count(WORDS, text) <= max_tokens
        # The citations are exactly those whose marker was kept.
        assert {c["marker"] for c in body["citations"]} == _markers(text)
        assert body["kazrag"]["answer"] == text
        assert body["kazrag"]["citations"] == body["citations"]
    # A budget the answer fits in changes nothing.
    same = _ask(client, max_completion_tokens=count(WORDS, full_text))
    assert same["choices"][0]["finish_reason"] == "stop"
    assert same["choices"][0]["message"]["content"] == full_text


def test_streaming_with_usage_and_max_tokens(client: TestClient) -> None:
    whole = _ask(client, max_tokens=12)
    r = client.post(
        "/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": QUESTION}],
            "stream": True,
            "max_tokens": 12,
            "stream_options": {"include_usage": True},
        },
    )
    assert r.status_code == 200
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    # As OpenAI sends it: usage null on every chunk, then one last chunk with no choices.
    *body, last = chunks
    assert all(c["usage"] is None for c in body)
    assert last["choices"] == [] and last["usage"] == whole["usage"]
    finish = body[-1]
    assert finish["choices"][0]["finish_reason"] == "length"
    text = streamed_content(body)
    assert text == whole["choices"][0]["message"]["content"]
    assert finish["citations"] == whole["citations"]


def test_inline_sources_only_for_the_citations_kept(client: TestClient) -> None:
    full = _ask(client)["choices"][0]["message"]["content"]
    first = full[: full.index("[1]") + 3]  # the first sentence and its marker
    body = _ask(client, max_tokens=count(WORDS, first) + 1, inline_sources=True)
    assert body["kazrag"]["answer"] == first
    content = body["choices"][0]["message"]["content"]
    answer_text = body["kazrag"]["answer"]
    sources = content[len(answer_text) :]
    assert content.startswith(answer_text) and "Дереккөздер:" in sources
    assert _markers(sources) == {c["marker"] for c in body["citations"]}


@pytest.mark.parametrize(
    ("extra", "status", "code", "param"),
    [
        ({"n": 2}, 400, "unsupported_value", "n"),
        ({"model": "gpt-4o"}, 404, "model_not_found", "model"),
        ({"max_tokens": 0}, 422, None, None),
    ],
)
def test_openai_shaped_errors(
    client: TestClient, extra: dict[str, Any], status: int, code: str | None, param: str | None
) -> None:
    body = {"messages": [{"role": "user", "content": QUESTION}], **extra}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"]
    assert err["code"] == code and err["param"] == param


# --- real clients on a real socket ------------------------------------------------------------


@pytest.fixture(scope="module")
def url(engine: Engine) -> Iterator[str]:
    with running_server(api.create_app(engine.settings, engine, token=TOKEN)) as base:
        yield f"{base}/v1"


@pytest.mark.integration
def test_openai_client(url: str) -> None:
    import openai

    client = openai.OpenAI(base_url=url, api_key=TOKEN, max_retries=0, timeout=30)
    question = [{"role": "user", "content": QUESTION}]

    done = client.chat.completions.create(model="kazrag", messages=question)  # type: ignore[arg-type]
    text = done.choices[0].message.content or ""
    assert "[1]" in text and done.choices[0].finish_reason == "stop"
    assert done.usage is not None and done.usage.completion_tokens == count(WORDS, text)
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens

    pieces, usage, finish = [], None, None
    for chunk in client.chat.completions.create(
        model="kazrag",
        messages=question,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(pieces) == text and finish == "stop"
    assert usage is not None and usage.total_tokens == done.usage.total_tokens

    turns = [
        *question,
        {"role": "assistant", "content": text},
        {"role": "user", "content": FOLLOW_UP},
    ]
    follow = client.chat.completions.create(model="kazrag", messages=turns)  # type: ignore[arg-type]
    assert follow.choices[0].message.content
    assert follow.usage is not None and follow.usage.prompt_tokens > done.usage.prompt_tokens

    cut = client.chat.completions.create(model="kazrag", messages=question, max_tokens=5)  # type: ignore[arg-type]
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None and cut.usage.completion_tokens <= 5

    with pytest.raises(openai.NotFoundError, match="gpt-4o") as missing:
        client.chat.completions.create(model="gpt-4o", messages=question)  # type: ignore[arg-type]
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as many:
        client.chat.completions.create(model="kazrag", messages=question, n=2)  # type: ignore[arg-type]
    assert many.value.param == "n"
    with pytest.raises(openai.UnprocessableEntityError, match="no words"):
        client.chat.completions.create(
            model="kazrag",
            messages=[{"role": "user", "content": "😀😀 ???"}],
        )


@pytest.mark.integration
def test_langchain_chat_openai(url: str) -> None:
    import openai
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(model="kazrag", base_url=url, api_key=TOKEN, max_retries=0, timeout=30)  # type: ignore[arg-type]
    reply = chat.invoke([HumanMessage(QUESTION)])
    assert "[1]" in str(reply.content)
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] == count(WORDS, str(reply.content))
    assert reply.response_metadata["finish_reason"] == "stop"

    streamed = None
    for piece in ChatOpenAI(
        model="kazrag",
        base_url=url,
        api_key=TOKEN,
        max_retries=0,
        stream_usage=True,  # type: ignore[arg-type]
    ).stream([HumanMessage(QUESTION)]):
        streamed = piece if streamed is None else streamed + piece
    assert streamed is not None and streamed.content == reply.content
    assert streamed.usage_metadata == reply.usage_metadata

    follow = chat.invoke(
        [HumanMessage(QUESTION), AIMessage(str(reply.content)), HumanMessage(FOLLOW_UP)]
    )
    assert follow.content

    short = ChatOpenAI(model="kazrag", base_url=url, api_key=TOKEN, max_retries=0, max_tokens=5)  # type: ignore[arg-type]
    cut = short.invoke([HumanMessage(QUESTION)])
    assert cut.response_metadata["finish_reason"] == "length"
    assert cut.usage_metadata is not None and cut.usage_metadata["output_tokens"] <= 5

    with pytest.raises(openai.NotFoundError):
        ChatOpenAI(model="gpt-4o", base_url=url, api_key=TOKEN, max_retries=0).invoke("салем")  # type: ignore[arg-type]
