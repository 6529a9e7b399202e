"""The HTTP API: every endpoint through FastAPI's test client, streaming through a real uvicorn
server on loopback (also with the official OpenAI client), and schemathesis against the schema."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rag import api, library
from rag.pipeline import Engine
from rag.settings import from_env
from tests.helpers import (
    AUYL,
    SEED_FILES,
    make_docx,
    running_server,
    small_engine,
    sse_events,
    streamed_content,
)

QUESTION = (
    "HAQ қозғалысы Қордай оқиғасынан кейін Қазақстан халқы ассамблеясының қызметін қалай бағалады?"
)
FOLLOW_UP = "Ал бұл ұйыммен не істеу керек деп ұсынды?"
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def shared_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """Read-only tests share one engine; tests that upload or remove build their own."""
    return small_engine(tmp_path_factory.mktemp("api"))


@pytest.fixture()
def client(shared_engine: Engine) -> Iterator[TestClient]:
    with TestClient(api.create_app(shared_engine.settings, shared_engine, token="")) as c:
        yield c


@pytest.fixture()
def own_client(tmp_path: Path) -> Iterator[TestClient]:
    engine = small_engine(tmp_path)
    with TestClient(api.create_app(engine.settings, engine, token="")) as c:
        yield c


# --- /api/health, /api/ask, /api/search ------------------------------------------------------


def test_health(client: TestClient, shared_engine: Engine) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    # A given engine is warmed up before the server takes requests: ready from the start.
    assert body["status"] == "ok" and body["ready"] is True
    assert body["documents"] == len(SEED_FILES)
    assert body["chunks"] == len(shared_engine.index.chunks)
    assert body["model"] == "hash-embedder" and body["generator"] == "extractive"


def test_ask_returns_the_answer_object(client: TestClient, shared_engine: Engine) -> None:
    from rag.pipeline import answer

    r = client.post("/api/ask", json={"question": QUESTION, "top_k": 3})
    assert r.status_code == 200
    body = r.json()
    expected = answer(QUESTION, engine=shared_engine, top_k=3).to_json()
    # The same object as `kazrag ask --json` (only the timings differ).
    assert set(body) == set(expected)
    assert {k: v for k, v in body.items() if k != "timings_ms"} == {
        k: v for k, v in expected.items() if k != "timings_ms"
    }
    assert len(body["retrieved"]) == 3
    assert body["citations"] and "[1]" in body["answer"]
    c = body["citations"][0]
    assert {"marker", "doc_id", "title", "chunk_id", "start", "end", "quote"} <= set(c)


@pytest.mark.parametrize(
    "history",
    [
        [{"question": QUESTION, "answer": "..."}],
        [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "..."}],
        [{"role": "system", "content": "be nice"}, {"role": "user", "content": QUESTION}],
    ],
)
def test_ask_passes_history_for_follow_ups(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, history: list[dict[str, str]]
) -> None:
    seen: list[Any] = []
    real = api.answer

    def spy(question: str, history: Any, **kwargs: Any) -> Any:
        seen.append(list(history))
        return real(question, history, **kwargs)

    monkeypatch.setattr(api, "answer", spy)
    r = client.post("/api/ask", json={"question": FOLLOW_UP, "history": history})
    assert r.status_code == 200
    assert [t.question for t in seen[0]] == [QUESTION]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"question": ""}, "question"),
        ({"question": "   \n\t "}, "empty"),
        ({"question": "\x00\x01"}, "empty"),
        ({}, "question: Field required"),
        ({"question": 42}, "question"),
        ({"question": "сұрақ", "top_k": 0}, "top_k"),
        ({"question": "сұрақ", "top_k": 101}, "top_k"),
        ({"question": "сұрақ", "questoin": "typo"}, "questoin"),
        ({"question": "сұрақ", "history": "not a list"}, "history"),
        ({"question": "сұрақ", "history": [{"role": "robot", "content": "x"}]}, "history"),
        (
            {
                "question": "сұрақ",
                "history": [{"question": "a"}, {"role": "user", "content": "b"}],
            },
            "either",
        ),
        ({"question": "с" * 20_001}, "question"),
    ],
)
def test_ask_rejects_bad_input_with_a_message(
    client: TestClient, body: dict[str, Any], message: str
) -> None:
    r = client.post("/api/ask", json=body)
    assert r.status_code == 422
    assert message in r.json()["error"]


def test_too_long_question_after_cleaning_is_422(client: TestClient, shared_engine: Engine) -> None:
    limit = shared_engine.settings.max_question_chars
    r = client.post("/api/ask", json={"question": "с" * (limit + 1)})
    assert r.status_code == 422
    assert "too long" in r.json()["error"]


@pytest.mark.parametrize(
    ("content", "ctype"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"", "application/json"),
    ],
)
def test_ask_malformed_body(client: TestClient, content: bytes, ctype: str) -> None:
    r = client.post("/api/ask", content=content, headers={"Content-Type": ctype})
    assert r.status_code == 422
    assert r.json()["error"]


def test_search_ranks_passages(client: TestClient) -> None:
    r = client.post("/api/search", json={"query": "Қазақстан халқы ассамблеясы", "top_k": 4})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "Қазақстан халқы ассамблеясы"
    results = body["results"]
    assert [h["rank"] for h in results] == [1, 2, 3, 4]
    scores = [h["score"] for h in results]
    assert scores == sorted(scores, reverse=True)
    assert all(h["title"] and h["text"] and h["doc_id"] in SEED_FILES for h in results)


@pytest.mark.parametrize(
    "body",
    [{"query": ""}, {"query": "  "}, {"query": "x", "top_k": 0}, {"q": "x"}, {"query": None}],
)
def test_search_rejects_bad_input(client: TestClient, body: dict[str, Any]) -> None:
    r = client.post("/api/search", json=body)
    assert r.status_code == 422
    assert isinstance(r.json()["error"], str)


# --- /api/documents ---------------------------------------------------------------------------


def test_list_documents(client: TestClient) -> None:
    r = client.get("/api/documents")
    assert r.status_code == 200
    docs = r.json()["documents"]
    assert [d["doc_id"] for d in docs] == list(SEED_FILES)
    assert all(d["source"] == "seed" and not d["removable"] for d in docs)


def test_upload_ask_and_remove(own_client: TestClient) -> None:
    r = own_client.post("/api/documents", files={"file": ("ауыл.txt", AUYL.encode(), "text/plain")})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "added"
    assert body["document"]["doc_id"] == "ауыл.txt"
    assert "ауыл.txt" in {d["doc_id"] for d in body["documents"]}

    r = own_client.post("/api/ask", json={"question": "Алтынбек ауылының мектебін кім ашқан?"})
    assert r.json()["citations"][0]["doc_id"] == "ауыл.txt"

    r = own_client.delete("/api/documents/ауыл.txt")
    assert r.status_code == 200
    assert r.json()["removed"] == "ауыл.txt"
    assert "ауыл.txt" not in {d["doc_id"] for d in r.json()["documents"]}
    assert own_client.delete("/api/documents/ауыл.txt").status_code == 404


def test_upload_docx(own_client: TestClient) -> None:
    data = make_docx(["Абай Құнанбайұлы 1845 жылы туған."])
    r = own_client.post("/api/documents", files={"file": ("абай.docx", data)})
    assert r.status_code == 201
    assert r.json()["document"]["doc_id"] == "абай.docx"  # kept as uploaded
    assert r.json()["document"]["format"] == "docx"


def test_upload_errors(own_client: TestClient) -> None:
    before = own_client.get("/api/documents").json()

    r = own_client.post("/api/documents", files={"file": ("virus.exe", b"MZ")})
    assert r.status_code == 415 and "unsupported file type" in r.json()["error"]

    r = own_client.post("/api/documents", files={"file": ("empty.txt", b"")})
    assert r.status_code == 422 and "empty" in r.json()["error"]

    r = own_client.post("/api/documents", files={"file": ("bin.txt", b"\x00\x01\x02")})
    assert r.status_code == 422 and "binary" in r.json()["error"]

    r = own_client.post("/api/documents", files={"file": (SEED_FILES[0], AUYL.encode())})
    assert r.status_code == 409 and "rename" in r.json()["error"]

    r = own_client.post("/api/documents", files={"other": ("a.txt", b"text")})
    assert r.status_code == 422 and "'file'" in r.json()["error"]

    r = own_client.post("/api/documents", data={"file": "not a file"})  # urlencoded form
    assert r.status_code == 415

    r = own_client.post(
        "/api/documents", content=b"raw text", headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]

    r = own_client.post(
        "/api/documents",
        content=b"--xyz\r\ngarbage",
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert r.status_code in (400, 422)

    assert own_client.get("/api/documents").json() == before


def test_upload_over_the_limit_is_413_by_content_length(own_client: TestClient) -> None:
    # The declared length alone is enough: the body is never read.
    huge = str(library.MAX_PDF_UPLOAD_BYTES + api.MULTIPART_OVERHEAD + 1)
    r = own_client.post(
        "/api/documents",
        content=b"tiny",
        headers={"Content-Type": "multipart/form-data; boundary=x", "Content-Length": huge},
    )
    assert r.status_code == 413 and "limit" in r.json()["error"]


def test_upload_over_the_limit_is_413_while_streaming(own_client: TestClient) -> None:
    sent = 0

    def body() -> Iterator[bytes]:  # no Content-Length: chunked, so only the cap can stop it
        nonlocal sent
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
        for _ in range(40):
            sent += 1 << 20
            yield b"a" * (1 << 20)
        yield b"\r\n--x--\r\n"

    r = own_client.post(
        "/api/documents",
        content=body(),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 413
    assert sent > library.MAX_UPLOAD_BYTES


def test_file_just_over_the_limit_is_413(own_client: TestClient) -> None:
    data = b"a" * (library.MAX_UPLOAD_BYTES + 1)
    r = own_client.post("/api/documents", files={"file": ("big.txt", data)})
    assert r.status_code == 413


def test_a_pdf_over_the_text_limit_is_read_and_one_over_its_own_is_413(
    own_client: TestClient,
) -> None:
    # Past 10 MB a PDF is still read (here: found not to be one); past 40 MB it is refused.
    data = b"%PDF-1.4\n" + b"0" * library.MAX_UPLOAD_BYTES
    r = own_client.post("/api/documents", files={"file": ("scan.pdf", data)})
    assert r.status_code == 422 and "not a readable PDF" in r.json()["error"]
    data = b"%PDF-1.4\n" + b"0" * library.MAX_PDF_UPLOAD_BYTES
    r = own_client.post("/api/documents", files={"file": ("scan.pdf", data)})
    assert r.status_code == 413 and "40 MB" in r.json()["error"]


def test_remove_seed_and_unknown(client: TestClient) -> None:
    r = client.delete(f"/api/documents/{SEED_FILES[0]}")
    assert r.status_code == 409 and "built-in" in r.json()["error"]
    r = client.delete("/api/documents/nope.txt")
    assert r.status_code == 404 and "nope.txt" in r.json()["error"]
    r = client.delete("/api/documents/..%2Fcorpus%2F" + SEED_FILES[0])
    assert r.status_code == 404


# --- OpenAI-compatible /v1 ----------------------------------------------------------------------


def test_models(client: TestClient) -> None:
    r = client.get("/v1/models")
    assert r.status_code == 200
    assert r.json()["object"] == "list"
    assert [m["id"] for m in r.json()["data"]] == ["kazrag"]


def test_chat_completion(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={
            "model": "kazrag",
            "messages": [{"role": "user", "content": QUESTION}],
            "temperature": 0,
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    content = body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] == "stop"
    # Sources come in their own field by default: the content is the answer alone.
    assert content == body["kazrag"]["answer"]
    assert "[1]" in content and "Дереккөздер:" not in content
    assert body["citations"] and body["citations"][0]["marker"] == 1
    assert body["citations"] == body["kazrag"]["citations"]


def test_chat_completion_with_inline_sources(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": QUESTION}], "inline_sources": True},
    )
    assert r.status_code == 200
    body = r.json()
    content = body["choices"][0]["message"]["content"]
    assert content.startswith(body["kazrag"]["answer"])
    assert "Дереккөздер:" in content
    assert body["citations"][0]["doc_id"] in content


def test_chat_completion_takes_history_and_content_parts(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    real = api.answer

    def spy(question: str, history: Any, **kwargs: Any) -> Any:
        seen.append((question, list(history)))
        return real(question, history, **kwargs)

    monkeypatch.setattr(api, "answer", spy)
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
        {"role": "assistant", "content": "Бірінші жауап [1]"},
        {"role": "user", "content": FOLLOW_UP},
    ]
    r = client.post("/v1/chat/completions", json={"model": "kazrag", "messages": messages})
    assert r.status_code == 200
    question, history = seen[0]
    assert question == FOLLOW_UP
    assert [(t.question, t.answer) for t in history] == [(QUESTION, "Бірінші жауап [1]")]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"messages": []}, 422, "messages"),
        ({}, 422, "messages"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, 400, "last message"),
        ({"messages": [{"role": "user", "content": ""}]}, 422, "empty"),
        ({"messages": [{"role": "user"}]}, 422, "empty"),
        ({"messages": [{"role": "user", "content": "q"}], "top_k": -1}, 422, "top_k"),
        ({"messages": "hello"}, 422, "messages"),
    ],
)
def test_chat_completion_errors_are_openai_shaped(
    client: TestClient, body: dict[str, Any], status: int, message: str
) -> None:
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert message in err["message"]


def test_chat_completion_stream(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": QUESTION}], "stream": True},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["citations"][0]["marker"] == 1
    assert "[1]" in streamed_content(chunks)
    assert "Дереккөздер:" not in streamed_content(chunks)
    assert all("usage" not in c for c in chunks)  # only when stream_options asks for it


def test_stream_with_a_bad_question_is_still_a_4xx(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "   "}], "stream": True},
    )
    assert r.status_code == 422
    assert "empty" in r.json()["error"]["message"]


# --- authentication ---------------------------------------------------------------------------


def _guarded_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) of the schema under /api and /v1."""
    return [
        (method.upper(), path.replace("{doc_id}", "nope.txt"))
        for path, item in app.openapi()["paths"].items()
        if path.startswith(("/api", "/v1"))
        for method in item
    ]


def test_every_api_and_v1_route_wants_the_token(
    shared_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # KAZRAG_API_TOKEN reaches the app through Settings (rag/settings.py reads it)
    monkeypatch.setenv(api.TOKEN_ENV, TOKEN)
    app = api.create_app(from_env(index=shared_engine.settings.index), shared_engine)
    routes = _guarded_routes(app)
    assert len(routes) == 9
    with TestClient(app) as c:
        for method, path in routes:
            if path == "/api/health":
                continue  # a liveness probe: see test_health_without_the_token
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                r = c.request(method, path, headers=headers)
                assert r.status_code == 401, (method, path, headers)
                assert r.headers["www-authenticate"] == "Bearer"
                err = r.json()["error"]
                assert "bearer token" in (err["message"] if path.startswith("/v1") else err)
        ok = {"Authorization": f"Bearer {TOKEN}"}
        assert c.get("/api/health", headers=ok).status_code == 200
        assert c.get("/v1/models", headers=ok).status_code == 200
        assert c.post("/api/ask", json={"question": QUESTION}, headers=ok).status_code == 200
        # The schema and its page stay readable, so clients can be generated.
        assert c.get("/openapi.json").status_code == 200


def test_no_token_means_open(client: TestClient) -> None:
    assert client.get("/api/health").status_code == 200


def test_openapi_schema_documents_the_routes(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/api/ask",
        "/api/search",
        "/api/documents",
        "/api/documents/{doc_id}",
        "/api/health",
        "/v1/chat/completions",
        "/v1/models",
    ):
        assert path in paths
    assert "multipart/form-data" in paths["/api/documents"]["post"]["requestBody"]["content"]
    assert "413" in paths["/api/documents"]["post"]["responses"]
    # No token configured: the schema asks for no authentication.
    assert "securitySchemes" not in schema.get("components", {})


def test_openapi_schema_declares_the_bearer_token(shared_engine: Engine) -> None:
    schema = api.create_app(shared_engine.settings, shared_engine, token=TOKEN).openapi()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    file_route = "/api/documents/{doc_id}/file"
    assert all(
        op.get("security") == [{"HTTPBearer": []}]
        for path, item in schema["paths"].items()
        for op in item.values()
        if path not in ("/api/health", file_route)
    )
    # The original file takes the token or the chat's login cookie (the chat's page links).
    assert schema["paths"][file_route]["get"]["security"] == [
        {"HTTPBearer": []},
        {"APIKeyCookie": []},
    ]
    assert schema["components"]["securitySchemes"]["APIKeyCookie"]["name"] == "kazrag-chat"
    # The health check takes the token optionally ({} is "no authentication").
    assert schema["paths"]["/api/health"]["get"]["security"] == [{}, {"HTTPBearer": []}]


# --- a real server on loopback --------------------------------------------------------------


@pytest.fixture(scope="module")
def server_url(shared_engine: Engine) -> Iterator[str]:
    app = api.create_app(shared_engine.settings, shared_engine, token=TOKEN)
    with running_server(app) as url:
        yield url


@pytest.mark.integration
def test_streaming_over_a_real_socket(server_url: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {"messages": [{"role": "user", "content": QUESTION}], "stream": True}
    lines: list[str] = []
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", f"{server_url}/v1/chat/completions", json=body, headers=headers) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines.extend(r.iter_lines())
    events = sse_events("\n".join(lines))
    assert events[-1] == "[DONE]"
    assert "[1]" in streamed_content(events)
    assert events[-2]["citations"]


@pytest.mark.integration
def test_openai_client_library(server_url: str) -> None:
    from openai import AuthenticationError, OpenAI

    client = OpenAI(base_url=f"{server_url}/v1", api_key=TOKEN, max_retries=0, timeout=30)
    assert [m.id for m in client.models.list()] == ["kazrag"]

    completion = client.chat.completions.create(
        model="kazrag", messages=[{"role": "user", "content": QUESTION}]
    )
    assert "[1]" in (completion.choices[0].message.content or "")
    assert (completion.model_extra or {})["citations"][0]["marker"] == 1

    pieces, citations = [], None
    stream = client.chat.completions.create(
        model="kazrag", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        citations = (chunk.model_extra or {}).get("citations", citations)
    assert "[1]" in "".join(pieces)
    assert citations and citations[0]["marker"] == 1

    bad = OpenAI(base_url=f"{server_url}/v1", api_key="wrong", max_retries=0, timeout=30)
    with pytest.raises(AuthenticationError, match="bearer token"):
        bad.models.list()


@pytest.mark.integration
def test_concurrent_requests_on_a_real_socket(server_url: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    results: list[int] = []

    def ask() -> None:
        with httpx.Client(timeout=60) as http:
            r = http.post(f"{server_url}/api/ask", json={"question": QUESTION}, headers=headers)
            results.append(r.status_code)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [200] * 8


# --- schemathesis -----------------------------------------------------------------------------

OPERATIONS = [
    ("POST", "/api/ask"),
    ("POST", "/api/search"),
    ("GET", "/api/documents"),
    ("POST", "/api/documents"),
    ("DELETE", "/api/documents/{doc_id}"),
    ("GET", "/api/documents/{doc_id}/file"),
    ("GET", "/api/health"),
    ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
]


SEMANTIC_CHECKS = {"/api/ask", "/api/search", "/api/documents", "/v1/chat/completions"}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Any:
    schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a dev dependency")
    engine = small_engine(tmp_path_factory.mktemp("schemathesis"))
    # With a token: schemathesis also checks that requests without it are refused.
    app = api.create_app(engine.settings, engine, token=TOKEN)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_schema_lists_exactly_these_operations(api_schema: Any) -> None:
    found = {(r.ok().method.upper(), r.ok().path) for r in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_schemathesis(api_schema: Any, method: str, path: str, mode: str) -> None:
    """Generated requests (valid and invalid) never crash the server, invalid ones are refused,
    and every status code, content type and body matches the served schema.

    The pytest plugin of schemathesis does not run under pytest 9, so the operation's
    Hypothesis strategy is driven directly. No example database: tests write nothing to the tree.
    """
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hyp_settings
    from schemathesis import GenerationMode
    from schemathesis.checks import load_all_checks
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    if (method, path, mode) == ("GET", "/api/health", "negative"):
        pytest.skip("nothing to make invalid: no parameters, and the token is optional here")
    load_all_checks()
    operation = api_schema[path][method]
    strategy = operation.as_strategy(generation_mode=GenerationMode(mode))
    # Some schema-valid requests are refused on purpose, for reasons a JSON schema cannot
    # state: a whitespace-only question, a .png upload, a conversation ending with the
    # assistant. Those operations skip the "valid data must be accepted" check.
    excluded = [positive_data_acceptance] if path in SEMANTIC_CHECKS else []
    auth = {"Authorization": f"Bearer {TOKEN}"}

    @given(case=strategy)
    @hyp_settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=auth, excluded_checks=excluded)

    check()


# --- issue 10: start-up, liveness, docs, routes, names, uploads ---------------------------------


def test_health_without_the_token_says_only_status_and_readiness(shared_engine: Engine) -> None:
    app = api.create_app(shared_engine.settings, shared_engine, token=TOKEN)
    with TestClient(app) as c:
        r = c.get("/api/health")
        assert r.status_code == 200
        assert r.json() == {"status": "ok", "ready": True}
        full = c.get("/api/health", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert full["ready"] is True and full["documents"] == len(SEED_FILES)
        assert full["model"] == "hash-embedder" and full["chunks"] > 0
        wrong = c.get("/api/health", headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401 and "bearer token" in wrong.json()["error"]


def test_the_model_loads_and_warms_up_at_start(
    shared_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no engine given, the server starts at once, says ready: false while the engine
    loads, warms the engine up (a throwaway question), then says ready: true."""
    release = threading.Event()
    loaded: list[Any] = []
    warmed: list[str] = []

    def slow_engine(settings: Any) -> Engine:
        release.wait(timeout=30)
        loaded.append(settings)
        return shared_engine

    real_answer = api.answer

    def spy(question: str, *args: Any, **kwargs: Any) -> Any:
        warmed.append(question)
        return real_answer(question, *args, **kwargs)

    monkeypatch.setattr(api, "get_engine", slow_engine)
    monkeypatch.setattr(api, "answer", spy)
    app = api.create_app(shared_engine.settings, None, token="")
    with TestClient(app) as c:
        assert c.get("/api/health").json() == {"status": "loading", "ready": False}
        release.set()
        deadline = time.monotonic() + 30
        while not c.get("/api/health").json()["ready"] and time.monotonic() < deadline:
            time.sleep(0.02)
        body = c.get("/api/health").json()
        assert body["ready"] is True and body["status"] == "ok"
        assert loaded == [shared_engine.settings]
        assert warmed == [api.WARM_UP_QUESTION]  # warmed before any question was asked


def test_a_failed_start_is_reported(shared_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(settings: Any) -> Engine:
        raise RuntimeError("no model here")

    monkeypatch.setattr(api, "get_engine", broken)
    with TestClient(api.create_app(shared_engine.settings, None, token="")) as c:
        deadline = time.monotonic() + 30
        while c.get("/api/health").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert c.get("/api/health").json() == {"status": "failed", "ready": False}


def test_docs_page_loads_nothing_from_outside(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "/openapi.json" in html
    # Every script, style sheet and icon comes from this server.
    assert "http://" not in html and "https://" not in html, html
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', html)
    assert len(assets) == 3  # script, style sheet, icon
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    # /redoc is no 404: it leads to /docs.
    r = client.get("/redoc", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/docs"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/nope", 404),
        ("POST", "/api/ask/extra", 404),
        ("GET", "/api/ask", 405),
        ("PUT", "/api/documents/x.txt", 405),
        ("GET", "/v1/nope", 404),
        ("GET", "/v1/chat/completions", 405),
    ],
)
def test_unknown_routes_answer_in_the_api_error_shape(
    client: TestClient, method: str, path: str, status: int
) -> None:
    r = client.request(method, path)
    assert r.status_code == status
    err = r.json()["error"]
    message = err["message"] if path.startswith("/v1") else err
    assert isinstance(message, str) and path in message
    if status == 405:
        assert r.headers["allow"]


def test_search_takes_k_like_the_cli(client: TestClient) -> None:
    by_k = client.post("/api/search", json={"query": "Қазақстан халқы ассамблеясы", "k": 2})
    by_top_k = client.post("/api/search", json={"query": "Қазақстан халқы ассамблеясы", "top_k": 2})
    assert by_k.status_code == 200 and len(by_k.json()["results"]) == 2
    assert by_k.json() == by_top_k.json()
    assert client.post("/api/search", json={"query": "x", "k": 0}).status_code == 422
    # The schema documents one name (top_k); k is accepted.
    props = client.get("/openapi.json").json()["components"]["schemas"]["SearchRequest"]
    assert "top_k" in props["properties"]


def test_uploading_the_same_file_again(own_client: TestClient) -> None:
    first = own_client.post("/api/documents", files={"file": ("ауыл.txt", AUYL.encode())})
    assert first.status_code == 201 and first.json()["status"] == "added"
    again = own_client.post("/api/documents", files={"file": ("ауыл.txt", AUYL.encode())})
    assert again.status_code == 200 and again.json()["status"] == "unchanged"
    assert again.json()["documents"] == first.json()["documents"]
    changed = AUYL + " Мектепте жүз оқушы оқиды."
    other = own_client.post("/api/documents", files={"file": ("ауыл.txt", changed.encode())})
    assert other.status_code == 200 and other.json()["status"] == "replaced"
    doc = other.json()["document"]
    assert doc["doc_id"] == "ауыл.txt" and doc["chars"] > first.json()["document"]["chars"]


@pytest.mark.parametrize("question", ["😀😀 ???", "...", "→ ★ ♥"])
def test_a_question_with_no_words_is_a_4xx_naming_the_reason(
    client: TestClient, question: str
) -> None:
    r = client.post("/api/ask", json={"question": question})
    assert r.status_code == 422
    assert r.json()["code"] == "no_words" and "no words" in r.json()["error"]
    r = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": question}]}
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "no_words"
    assert "no words" in r.json()["error"]["message"]


def test_response_models_match_the_json_of_the_dataclasses(
    client: TestClient, shared_engine: Engine
) -> None:
    """The served schema is derived from rag/schema.py: its fields are exactly the keys of the
    real JSON, and real answers validate against it."""
    from pydantic import TypeAdapter

    from rag.pipeline import answer
    from rag.schema import Citation

    ans = answer(QUESTION, engine=shared_engine)
    body = ans.to_json()
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    optional = {"note", "asked_language"}  # in the JSON only when set
    assert set(schemas["AnswerOut"]["properties"]) == set(body) | optional
    assert set(schemas["AnswerOut"]["required"]) == set(body) - optional
    assert set(schemas["PassageOut"]["properties"]) == set(body["retrieved"][0]) | {"title"}
    assert set(schemas["Citation"]["properties"]) == set(body["citations"][0])
    assert set(schemas["Citation"]["properties"]) == set(Citation.__dataclass_fields__)
    TypeAdapter(api.AnswerOut).validate_python(body)
    listed = client.get("/api/documents").json()["documents"][0]
    assert set(schemas["DocumentInfo"]["properties"]) == set(listed)
