"""The HTTP API: REST routes under ``/api`` and an OpenAI-compatible ``/v1``, beside the chat.

Every route answers through :func:`rag.pipeline.answer` / :func:`rag.pipeline.stream_answer`
(the one way to answer a question) on the process-wide engine that the chat shares, and
``/api/ask`` returns exactly the answer object of ``kazrag ask --json``. ``kazrag serve`` mounts
the Gradio chat (``ui/app.py``) at ``/`` of the same FastAPI app, so one process holds one model.

Errors are JSON: ``{"error": "message"}`` under ``/api``, and OpenAI's
``{"error": {"message", "type", "code"}}`` under ``/v1`` so that OpenAI clients show the
message. When ``KAZRAG_API_TOKEN`` is set, every ``/api`` and ``/v1`` route wants
``Authorization: Bearer <token>``; the server binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import hmac
import itertools
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from rag import library
from rag.conversation import Turn
from rag.generation import display_text
from rag.pipeline import (
    Engine,
    QuestionError,
    answer,
    clean_question,
    get_engine,
    retrieve,
    stream_answer,
)
from rag.schema import Answer
from rag.settings import Settings
from rag.sources import SourceError

logger = logging.getLogger(__name__)

TOKEN_ENV = "KAZRAG_API_TOKEN"
MODEL_ID = "kazrag"
MAX_HISTORY = 50
# Multipart framing (boundaries, part headers) on top of the file itself.
MULTIPART_OVERHEAD = 64 * 1024
SOURCES_HEADING = {"kk": "Дереккөздер", "ru": "Источники", "en": "Sources"}


# --- request and response models ------------------------------------------------------------


class _Strict(BaseModel):
    # strict: JSON types as the schema says (no "5" or true for an integer, no 1 for a bool).
    model_config = ConfigDict(extra="forbid", strict=True)


class TurnIn(_Strict):
    """A previous exchange of the conversation."""

    question: str = Field(max_length=20_000)
    answer: str = Field("", max_length=50_000)


class ContentPart(BaseModel):
    """One part of an OpenAI message ``content`` array; only text parts are read."""

    model_config = ConfigDict(extra="allow", strict=True)
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """An OpenAI-style chat message (extra fields such as ``name`` are ignored)."""

    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message text (text parts joined)."""
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content if p.type == "text" and p.text)
        return self.content or ""


class AskRequest(_Strict):
    """``POST /api/ask``: a question, optionally with the conversation so far."""

    question: str = Field(
        min_length=1, max_length=20_000, examples=["HAQ қозғалысы не талап етті?"]
    )
    history: list[TurnIn | ChatMessage] = Field(default_factory=list, max_length=MAX_HISTORY)
    top_k: int | None = Field(None, ge=1, le=100, description="passages to retrieve")


class SearchRequest(_Strict):
    """``POST /api/search``: ranked passages for a query."""

    query: str = Field(min_length=1, max_length=20_000)
    top_k: int = Field(5, ge=1, le=100)


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions``; OpenAI parameters this bot has no use for are ignored."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1, max_length=2 * MAX_HISTORY + 2)
    stream: bool = False
    top_k: int | None = Field(None, ge=1, le=100, description="kazrag extension")


class ErrorOut(BaseModel):
    """An error under ``/api``."""

    error: str


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    code: str | None = None


class OpenAIErrorOut(BaseModel):
    """An error under ``/v1``, shaped like OpenAI's."""

    error: OpenAIErrorBody


class CitationOut(BaseModel):
    marker: int
    doc_id: str
    title: str
    chunk_id: str
    start: int
    end: int
    quote: str


class PassageOut(BaseModel):
    rank: int
    doc_id: str
    chunk_id: str
    start: int
    end: int
    score: float
    text: str
    title: str | None = None


class AnswerOut(BaseModel):
    """The answer object (the same as ``kazrag ask --json``)."""

    id: str | None
    question: str
    answer: str
    language: str
    abstained: bool
    citations: list[CitationOut]
    retrieved: list[PassageOut]
    timings_ms: dict[str, float]
    note: str | None = None


class SearchOut(BaseModel):
    query: str
    results: list[PassageOut]


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    chars: int
    chunks: int
    source: Literal["seed", "upload"]
    removable: bool


class DocumentsOut(BaseModel):
    documents: list[DocumentOut]


class UploadOut(BaseModel):
    document: DocumentOut
    documents: list[DocumentOut]


class RemoveOut(BaseModel):
    removed: str
    documents: list[DocumentOut]


class HealthOut(BaseModel):
    status: Literal["ok"]
    model: str
    generator: str
    documents: int
    chunks: int
    index_created: str | None


class CompletionMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class CompletionChoice(BaseModel):
    index: int
    message: CompletionMessage
    finish_reason: str


class CompletionOut(BaseModel):
    """OpenAI's chat.completion object plus ``citations`` (and the full ``kazrag`` answer)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    citations: list[CitationOut]
    kazrag: AnswerOut


class ModelOut(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelsOut(BaseModel):
    object: Literal["list"]
    data: list[ModelOut]


# One server-sent event of a streamed completion: ``data`` is a JSON chat.completion.chunk, or
# ``[DONE]`` at the end (so it is typed as a string).
SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string"},
        "id": {"type": "string"},
        "data": {
            "type": "string",
            "description": "a JSON chat.completion.chunk (the last one carries `citations`), "
            "then [DONE]",
        },
    },
}


# --- errors ---------------------------------------------------------------------------------


class ApiError(Exception):
    """An error with its HTTP status; rendered as JSON by the app's handler."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


def _error_response(request: Request, status: int, message: str, kind: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if request.url.path.startswith("/v1"):
        body: dict[str, Any] = {"error": {"message": message, "type": kind, "code": None}}
    else:
        body = {"error": message}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def _install_error_handlers(app: FastAPI) -> None:
    # Starlette types every handler as taking Exception; each is registered for one class.
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        err = cast(ApiError, exc)
        return _error_response(request, err.status, err.message, err.kind)

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        message = _validation_message(cast(RequestValidationError, exc))
        return _error_response(request, 422, message, "invalid_request_error")

    async def question(request: Request, exc: Exception) -> JSONResponse:
        return _error_response(request, 422, str(exc), "invalid_request_error")

    async def library_error(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status if isinstance(exc, library.LibraryError) else 422
        return _error_response(request, status, str(exc), "invalid_request_error")

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        err = cast(StarletteHTTPException, exc)
        return _error_response(request, err.status_code, str(err.detail), "invalid_request_error")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(QuestionError, question)
    app.add_exception_handler(library.LibraryError, library_error)
    app.add_exception_handler(SourceError, library_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _errors(model: type[BaseModel], *codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error codes a route can return."""
    text = {
        400: "malformed request",
        401: "missing or wrong bearer token",
        404: "not found",
        409: "conflict",
        413: "upload too large",
        415: "unsupported file type",
        422: "invalid input",
    }
    return {c: {"model": model, "description": text[c]} for c in sorted({400, 401, 422, *codes})}


# --- authentication ---------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description=f"required when {TOKEN_ENV} is set")


def _authorize(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    token: str = request.app.state.token
    given = credentials.credentials if credentials is not None else ""
    # Constant-time comparison: the token must not leak through response timing.
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(
            401,
            f"missing or wrong bearer token (send 'Authorization: Bearer <{TOKEN_ENV}>')",
            "authentication_error",
        )


# --- helpers ----------------------------------------------------------------------------------


def _engine(request: Request) -> Engine:
    engine: Engine | None = request.app.state.engine
    return engine if engine is not None else get_engine(request.app.state.settings)


def turns_from_messages(messages: Sequence[ChatMessage]) -> list[Turn]:
    """Pair user messages with the assistant reply that follows them (system messages dropped)."""
    turns: list[Turn] = []
    for m in messages:
        if m.role == "user":
            turns.append(Turn(m.text()))
        elif m.role == "assistant" and turns and not turns[-1].answer:
            turns[-1] = Turn(turns[-1].question, m.text())
    return [t for t in turns if t.question.strip()]


def _history(items: Sequence[TurnIn | ChatMessage]) -> list[Turn]:
    turns = [Turn(i.question, i.answer) for i in items if isinstance(i, TurnIn)]
    messages = [i for i in items if isinstance(i, ChatMessage)]
    if turns and messages:
        raise ApiError(
            422, "history: use either {question, answer} turns or chat messages, not both"
        )
    return turns or turns_from_messages(messages)


def _titles(engine: Engine) -> dict[str, str]:
    return {d["doc_id"]: d.get("title", d["doc_id"]) for d in engine.index.documents}


def sources_text(ans: Answer) -> str:
    """The note (if any) and the citations as plain text, appended to an OpenAI-style reply.

    Quotes and titles go through ``display_text`` like the answer's sentences, so a document's
    own «[n]» cannot pose as a marker of the reply.
    """
    note = f"\n\n({ans.note})" if ans.note else ""
    if not ans.citations:
        return note
    lines = [f"\n\n{SOURCES_HEADING.get(ans.language, 'Sources')}:"]
    for c in ans.citations:
        quote = display_text(c.quote)
        quote = quote if len(quote) <= 200 else quote[:199].rstrip() + "…"
        title = display_text(c.title)
        lines.append(f"[{c.marker}] {title} ({c.doc_id}, {c.start}–{c.end}): «{quote}»")
    return note + "\n".join(lines)


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def _chunk(
    cid: str, created: int, delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _event(body: dict[str, Any] | str) -> str:
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return f"data: {data}\n\n"


def _sse(
    first: str | Answer, rest: Iterator[str | Answer], cid: str, created: int
) -> Iterator[str]:
    """OpenAI's streaming format: role first, content deltas, sources, a stop chunk, [DONE].

    The stop chunk carries the ``citations`` (a field OpenAI clients keep as an extra).
    """
    yield _event(_chunk(cid, created, {"role": "assistant", "content": ""}))
    try:
        final: Answer | None = None
        for item in itertools.chain([first], rest):
            if isinstance(item, Answer):
                final = item
            elif item:
                yield _event(_chunk(cid, created, {"content": item}))
        if final is not None:
            extra = sources_text(final)
            if extra:
                yield _event(_chunk(cid, created, {"content": extra}))
            stop = _chunk(cid, created, {}, "stop")
            stop["citations"] = [c.to_json() for c in final.citations]
            yield _event(stop)
    except Exception as exc:  # the status line is sent already: report it in the stream
        logger.exception("streaming failed")
        yield _event({"error": {"message": f"the answer failed: {exc}", "type": "server_error"}})
    yield _event("[DONE]")


async def _capped_body(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The request body, refused with 413 as soon as it grows past ``limit`` bytes."""
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise library.UploadTooLarge(
                f"the upload is larger than the {library.MAX_UPLOAD_BYTES / 1e6:.0f} MB limit"
            )
        yield chunk


async def _read_upload(request: Request) -> tuple[str, bytes]:
    """The one file of a multipart upload, read with a size cap before it is all received."""
    limit = library.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise library.UploadTooLarge(
            f"the upload is {int(length) / 1e6:.1f} MB; the limit is "
            f"{library.MAX_UPLOAD_BYTES / 1e6:.0f} MB"
        )
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise ApiError(
            415,
            "send the document as multipart/form-data with a 'file' field "
            "(curl -F file=@document.pdf)",
        )
    parser = MultiPartParser(
        request.headers, _capped_body(request, limit), max_files=1, max_fields=10
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, f"malformed multipart body: {exc.message}") from exc
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise ApiError(422, "file: a file field named 'file' is required")
    try:
        library.check_type(upload.filename)
        data = await upload.read(library.MAX_UPLOAD_BYTES + 1)
    finally:
        await upload.close()
    library.check_size(upload.filename, len(data))
    return upload.filename, data


# --- routes -----------------------------------------------------------------------------------


def _api_routes(guard: Sequence[Any]) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["kazrag"], dependencies=list(guard))

    @router.post(
        "/ask", response_model=None, responses={200: {"model": AnswerOut}, **_errors(ErrorOut)}
    )
    def ask(req: AskRequest, request: Request) -> JSONResponse:
        """Answer a question from the documents, with citations (the answer object)."""
        ans = answer(req.question, _history(req.history), engine=_engine(request), top_k=req.top_k)
        return JSONResponse(ans.to_json())

    @router.post("/search", response_model=SearchOut, responses=_errors(ErrorOut))
    def search(req: SearchRequest, request: Request) -> dict[str, Any]:
        """Ranked passages for a query (hybrid dense + BM25 retrieval, no answer)."""
        engine = _engine(request)
        query = clean_question(req.query, engine.settings.max_question_chars)
        hits = retrieve(engine, query, req.top_k)
        titles = _titles(engine)
        results = [
            {**h.to_json(), "title": titles.get(h.chunk.doc_id, h.chunk.title)} for h in hits
        ]
        return {"query": query, "results": results}

    @router.get("/documents", response_model=DocumentsOut, responses=_errors(ErrorOut))
    def documents(request: Request) -> dict[str, Any]:
        """The documents of the corpus: seeds and uploads."""
        engine = _engine(request)
        return {
            "documents": [
                d.to_json() for d in library.list_documents(engine.settings, engine.index)
            ]
        }

    @router.post(
        "/documents",
        status_code=201,
        response_model=UploadOut,
        responses=_errors(ErrorOut, 409, 413, 415),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    }
                },
            }
        },
    )
    async def upload(request: Request) -> dict[str, Any]:
        """Add a .txt, .md, .pdf or .docx document (at most 10 MB) and update the index."""
        filename, data = await _read_upload(request)
        engine = await run_in_threadpool(_engine, request)  # may load the model: not on the loop
        info = await run_in_threadpool(library.add_document, engine, filename, data)
        docs = library.list_documents(engine.settings, engine.index)
        return {"document": info.to_json(), "documents": [d.to_json() for d in docs]}

    @router.delete(
        "/documents/{doc_id}", response_model=RemoveOut, responses=_errors(ErrorOut, 404, 409)
    )
    def remove(doc_id: str, request: Request) -> dict[str, Any]:
        """Remove an uploaded document (seed documents are refused with 409)."""
        engine = _engine(request)
        library.remove_document(engine, doc_id)
        docs = library.list_documents(engine.settings, engine.index)
        return {"removed": doc_id, "documents": [d.to_json() for d in docs]}

    @router.get("/health", response_model=HealthOut, responses=_errors(ErrorOut))
    def health(request: Request) -> dict[str, Any]:
        """Liveness and what is loaded."""
        engine = _engine(request)
        m = engine.index.manifest
        return {
            "status": "ok",
            "model": str(m.get("model")),
            "generator": engine.settings.generator,
            "documents": len(engine.index.documents),
            "chunks": len(engine.index.chunks),
            "index_created": m.get("created"),
        }

    return router


def _openai_routes(guard: Sequence[Any]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"], dependencies=list(guard))

    @router.get("/models", response_model=ModelsOut, responses=_errors(OpenAIErrorOut))
    def models(request: Request) -> dict[str, Any]:
        """The one model this server offers (OpenAI format)."""
        created = int(request.app.state.started)
        return {
            "object": "list",
            "data": [{"id": MODEL_ID, "object": "model", "created": created, "owned_by": "kazrag"}],
        }

    @router.post(
        "/chat/completions",
        response_model=None,
        responses={
            200: {
                "model": CompletionOut,
                "content": {"text/event-stream": {"schema": SSE_EVENT}},
                "description": "a chat.completion, or server-sent chunks when stream is true",
            },
            **_errors(OpenAIErrorOut),
        },
    )
    def chat_completions(req: ChatRequest, request: Request) -> JSONResponse | StreamingResponse:
        """OpenAI-compatible chat: the last user message is the question, earlier ones history.

        Citations are appended to the message text and returned in a ``citations`` field (in
        the final chunk when streaming).
        """
        if req.messages[-1].role != "user":
            raise ApiError(400, "messages: the last message must come from the user")
        question = req.messages[-1].text()
        history = turns_from_messages(req.messages[:-1])
        engine = _engine(request)
        cid, created = _completion_id(), int(time.time())
        if req.stream:
            pieces = stream_answer(question, history, engine=engine, top_k=req.top_k)
            # The first item comes after validation and retrieval: a bad question is still a 4xx.
            first = next(pieces, None)
            if first is None:
                raise ApiError(500, "the pipeline produced no answer", "server_error")
            return StreamingResponse(
                _sse(first, pieces, cid, created),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        ans = answer(question, history, engine=engine, top_k=req.top_k)
        body = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": MODEL_ID,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ans.answer + sources_text(ans)},
                    "finish_reason": "stop",
                }
            ],
            "citations": [c.to_json() for c in ans.citations],
            "kazrag": ans.to_json(),
        }
        return JSONResponse(body)

    return router


def create_app(
    settings: Settings, engine: Engine | None = None, token: str | None = None
) -> FastAPI:
    """The FastAPI app with the REST and OpenAI routes (the chat is mounted by :func:`serve`).

    ``engine`` defaults to the process-wide :func:`rag.pipeline.get_engine` (loaded on first
    use); ``token`` defaults to ``$KAZRAG_API_TOKEN``.
    """
    app = FastAPI(
        title="kazrag",
        version="0.1.0",
        description="Question answering over Kazakh documents with exact citations.",
        # Outside /api so that, with a token set, every /api route is guarded and the schema
        # stays readable for client generators.
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.token = token if token is not None else settings.api_token
    app.state.started = time.time()
    _install_error_handlers(app)
    # The bearer check (and its entry in the schema) only exists when a token is configured,
    # so the served schema always says truthfully whether the API wants one.
    guard = [Depends(_authorize)] if app.state.token else []
    app.include_router(_api_routes(guard))
    app.include_router(_openai_routes(guard))
    return app


def build_app(
    settings: Settings, engine: Engine | None = None, token: str | None = None
) -> FastAPI:
    """The API with the Gradio chat mounted at ``/``: what ``kazrag serve`` runs."""
    from ui.app import mount_chat

    app = create_app(settings, engine, token)
    return mount_chat(app, settings, engine)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860) -> int:
    """Load the engine, then serve the chat at ``/`` and the API beside it until interrupted."""
    import uvicorn

    engine = get_engine(settings)  # load the model and index before the first request
    app = build_app(settings, engine)
    if host not in ("127.0.0.1", "localhost", "::1") and not app.state.token:
        logger.warning(
            "serving on %s without %s: anyone on the network can use it", host, TOKEN_ENV
        )
    print(f"kazrag: chat at http://{host}:{port}/  API docs at http://{host}:{port}/docs")
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
