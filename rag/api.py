"""The HTTP API: REST routes under ``/api`` and an OpenAI-compatible ``/v1``, beside the chat.

Every route answers through :func:`rag.pipeline.answer` / :func:`rag.pipeline.stream_answer`
(the one way to answer a question) on the process-wide engine that the chat shares, and
``/api/ask`` returns exactly the answer object of ``kazrag ask --json``. ``kazrag serve`` mounts
the Gradio chat at ``/`` of the same FastAPI app (``ui/server.py``: the library never imports
the chat), so one process holds one model.

Errors are JSON: ``{"error": "message"}`` under ``/api`` (unknown routes too), and OpenAI's
``{"error": {"message", "type", "param", "code"}}`` under ``/v1`` so that OpenAI clients show
the message. When ``KAZRAG_API_TOKEN`` is set, every ``/api`` and ``/v1`` route wants
``Authorization: Bearer <token>``, except ``/api/health``, which without it says only whether
the server is up and ready (a liveness probe); the server binds to 127.0.0.1 unless told
otherwise. The model is loaded and warmed up when the server starts (``ready`` turns true), and
the docs page (``/docs``; ``/redoc`` leads there) loads nothing from outside the server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import importlib.resources
import itertools
import json
import logging
import threading
import time
import typing
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    StreamingResponse,
)
from fastapi.routing import APIRoute
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, create_model
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from rag import library
from rag.conversation import Turn
from rag.generation import SOURCES_LABEL, display_text
from rag.language import detect_language
from rag.pipeline import (
    Engine,
    QuestionError,
    answer,
    clean_question,
    get_engine,
    prepare_question,
    retrieve,
    stream_answer,
)
from rag.schema import Answer, Chunk, Citation, Hit
from rag.session import COOKIE, valid_session
from rag.settings import Settings
from rag.sources import SourceError
from rag.stores.base import StoreUnreachable
from rag.tokens import Tokenizer, cited, tokenizer_of
from rag.tokens import count as count_tokens
from rag.tokens import cut as cut_tokens

logger = logging.getLogger(__name__)

TOKEN_ENV = "KAZRAG_API_TOKEN"
MODEL_ID = "kazrag"
MAX_HISTORY = 50
# Multipart framing (boundaries, part headers) on top of the file itself.
MULTIPART_OVERHEAD = 64 * 1024


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
    # `k` is accepted too: the name of the CLI's flag (`kazrag search -k 3`).
    top_k: int = Field(
        5,
        ge=1,
        le=100,
        validation_alias=AliasChoices("top_k", "k"),
        description="passages to return (`k` is accepted as well)",
    )


class StreamOptions(BaseModel):
    """OpenAI's ``stream_options``: ``include_usage`` adds a last chunk with the token usage."""

    model_config = ConfigDict(extra="allow", strict=True)
    include_usage: bool = False


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions``; OpenAI parameters this bot has no use for are ignored."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: str = Field(
        MODEL_ID,
        description=f"the served model id, {MODEL_ID!r} (GET /v1/models); another name is a "
        "404 model_not_found",
    )
    messages: list[ChatMessage] = Field(min_length=1, max_length=2 * MAX_HISTORY + 2)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(
        None, ge=1, description="cut the answer at a sentence (or token) boundary"
    )
    max_completion_tokens: int | None = Field(None, ge=1, description="the same as max_tokens")
    n: int = Field(1, ge=1, le=128, description="only 1 is supported (more is a 400)")
    top_k: int | None = Field(None, ge=1, le=100, description="kazrag extension")
    inline_sources: bool = Field(
        False,
        description="kazrag extension: also append the sources as text to the message "
        "content (they are always in the `citations` field)",
    )


class ErrorOut(BaseModel):
    """An error under ``/api``; ``code`` names the reason a question was refused."""

    error: str
    code: str | None = Field(
        None, description="not_text, empty, no_words, too_long or bad_top_k for a question"
    )


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorOut(BaseModel):
    """An error under ``/v1``, shaped like OpenAI's."""

    error: OpenAIErrorBody


# --- response models derived from the dataclasses of rag/schema.py ------------------------------
#
# The JSON of a Citation (and of a DocumentInfo) is its dataclass as is, so the dataclass itself
# is the response model. The JSON of a Hit and of an Answer flattens or renames a few fields, so
# their models take the dataclass fields and replace just those: a field added to the dataclass
# reaches the served schema, and tests/test_api.py checks the schema against real to_json output.


def _model_of(
    name: str,
    doc: str,
    *parts: tuple[type, Sequence[str] | None],
    types: dict[str, Any] | None = None,
    optional: Sequence[str] = (),
) -> type[BaseModel]:
    """A pydantic model with the named fields of the dataclasses in ``parts`` (None: all).

    ``types`` replaces the type of fields whose JSON differs from the dataclass; fields in
    ``optional`` may be missing from the JSON, every other one is always there.
    """
    fields: dict[str, Any] = {}
    for cls, names in parts:
        hints = typing.get_type_hints(cls)
        for field_name in names if names is not None else [f.name for f in dataclasses.fields(cls)]:
            kind = (types or {}).get(field_name, hints.get(field_name))
            fields[field_name] = (kind, None) if field_name in optional else (kind, ...)
    return create_model(name, __doc__=doc, **fields)


CitationOut = Citation
DocumentOut = library.DocumentInfo
if TYPE_CHECKING:  # to mypy the derived models are plain pydantic models (fields at run time)
    PassageOut = BaseModel
    AnswerOut = BaseModel
else:
    PassageOut = _model_of(
        "PassageOut",
        "A retrieved passage: a Hit's rank and score with its chunk's place and text.",
        (Hit, ("rank",)),
        (Chunk, ("doc_id", "chunk_id", "start", "end")),
        (Hit, ("score",)),
        (Chunk, ("text",)),
        (Chunk, ("title", "page", "page_end")),
        optional=("title", "page", "page_end"),
    )
    AnswerOut = _model_of(
        "AnswerOut",
        "The answer object (the same as ``kazrag ask --json``).",
        (Answer, None),
        types={"citations": list[Citation], "retrieved": list[PassageOut]},
        optional=("note", "asked_language"),
    )


class SearchOut(BaseModel):
    query: str
    results: list[PassageOut]


class DocumentsOut(BaseModel):
    documents: list[DocumentOut]


class UploadOut(BaseModel):
    """The uploaded document: ``added`` (201), or ``replaced`` / ``unchanged`` (200)."""

    status: library.UploadStatus
    document: DocumentOut
    documents: list[DocumentOut]


class RemoveOut(BaseModel):
    removed: str
    documents: list[DocumentOut]


class HealthOut(BaseModel):
    """Status and readiness; what is loaded only for a caller with the token (or no token set)."""

    status: Literal["ok", "loading", "failed"] = Field(
        description="ok: serving; loading: the model is loading and warming up; failed: "
        "the start-up failed (the server log says why)"
    )
    ready: bool = Field(description="true once the model is loaded and warmed up")
    model: str | None = None
    generator: str | None = None
    documents: int | None = None
    chunks: int | None = None
    index_created: str | None = None


class CompletionMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class CompletionChoice(BaseModel):
    index: int
    message: CompletionMessage
    finish_reason: Literal["stop", "length"]


class Usage(BaseModel):
    """Tokens of the request's messages and of the reply (see rag/tokens.py for the tokenizer)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionOut(BaseModel):
    """OpenAI's chat.completion object plus ``citations`` (and the full ``kazrag`` answer)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
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

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.param = param
        self.headers = headers


def _error_response(
    request: Request,
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if request.url.path.startswith("/v1"):
        error = {"message": message, "type": kind, "param": param, "code": code}
        body: dict[str, Any] = {"error": error}
    else:
        body = {"error": message} if code is None else {"error": message, "code": code}
    return JSONResponse(body, status_code=status, headers=headers or None)


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
        return _error_response(
            request, err.status, err.message, err.kind, err.code, err.param, err.headers
        )

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        message = _validation_message(cast(RequestValidationError, exc))
        return _error_response(request, 422, message, "invalid_request_error")

    async def question(request: Request, exc: Exception) -> JSONResponse:
        # The reason's code (no_words, too_long, ...) lets a client tell the cases apart.
        code = cast(QuestionError, exc).code
        return _error_response(request, 422, str(exc), "invalid_request_error", code)

    async def library_error(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status if isinstance(exc, library.LibraryError) else 422
        return _error_response(request, status, str(exc), "invalid_request_error")

    async def store_unreachable(request: Request, exc: Exception) -> JSONResponse:
        # The shared store (a Milvus server) is down or restarting: retry later, no crash.
        logger.warning("%s", exc)
        return _error_response(
            request, 503, str(exc), "server_error", "store_unavailable", None, {"Retry-After": "5"}
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        err = cast(StarletteHTTPException, exc)
        return _error_response(request, err.status_code, str(err.detail), "invalid_request_error")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(QuestionError, question)
    app.add_exception_handler(library.LibraryError, library_error)
    app.add_exception_handler(SourceError, library_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(StoreUnreachable, store_unreachable)


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


_session = APIKeyCookie(
    name=COOKIE, auto_error=False, description="the chat's login session (set by /login)"
)


def _authorize_or_session(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_session)],
) -> None:
    """The bearer token, or the chat's session cookie (a browser following a page link)."""
    if credentials is None and valid_session(cookie, request.app.state.token):
        return
    _authorize(request, credentials)


def _token_holder(request: Request) -> bool:
    """Whether the caller may see more than liveness: no token is set, or it sent the token.

    Sending no token is allowed (a liveness probe); sending a wrong one is still a 401. The
    header is read here rather than through ``_bearer`` so that the schema does not mark the
    route as requiring the token.
    """
    if not request.app.state.token:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if not given and not scheme:
        return False
    credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=given.strip())
    _authorize(request, credentials if scheme.lower() == "bearer" else None)
    return True


# --- helpers ----------------------------------------------------------------------------------


def _engine(request: Request, refresh: bool = True) -> Engine:
    engine: Engine | None = request.app.state.engine
    engine = engine if engine is not None else get_engine(request.app.state.settings)
    if refresh:
        engine.refresh()  # a shared store (Milvus) may have changed through another replica
    return engine


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


def appendix(ans: Answer, inline_sources: bool) -> str:
    """What follows the answer in an OpenAI-style reply: the note, then the sources if asked.

    The note (say, "the language model is unavailable") is always shown: it qualifies the
    answer. The sources are in the ``citations`` field; as text only with ``inline_sources``.
    """
    note = f"\n\n({ans.note})" if ans.note else ""
    return note + (sources_text(ans) if inline_sources else "")


def sources_text(ans: Answer) -> str:
    """The citations as plain text (empty when there are none).

    Quotes and titles go through ``display_text`` like the answer's sentences, so a document's
    own «[n]» cannot pose as a marker of the reply.
    """
    if not ans.citations:
        return ""
    lines = [f"\n\n{SOURCES_LABEL.get(ans.language, SOURCES_LABEL['en'])}:"]
    for c in ans.citations:
        quote = display_text(c.quote)
        quote = quote if len(quote) <= 200 else quote[:199].rstrip() + "…"
        title = display_text(c.title)
        lines.append(f"[{c.marker}] {title} ({c.doc_id}, {c.start}–{c.end}): «{quote}»")
    return "\n".join(lines)


def original_file(settings: Settings, doc_id: str) -> FileResponse:
    """A document's original file, shown inline; anything but a PDF in a sandbox.

    The sandbox (no scripts, an origin of its own) keeps an uploaded web page from running
    in the chat's origin; Chromium's PDF viewer does not open in one, and a PDF runs no script.
    """
    path, media_type = library.document_file(settings, doc_id)
    headers = {"X-Content-Type-Options": "nosniff"}
    if media_type != "application/pdf":
        headers["Content-Security-Policy"] = "sandbox"
    return FileResponse(
        path,
        media_type=media_type,
        headers=headers,
        filename=path.name,
        content_disposition_type="inline",
    )


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


@dataclasses.dataclass(frozen=True)
class _Reply:
    """How one /v1 request wants its reply: ids, the token budget, the sources, the usage."""

    cid: str
    created: int
    tokenizer: Tokenizer
    prompt_tokens: int
    max_tokens: int | None
    inline_sources: bool
    include_usage: bool

    def usage(self, content: str) -> dict[str, int]:
        """OpenAI's ``usage`` for a reply whose message content is ``content``."""
        completion = count_tokens(self.tokenizer, content)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def chunk(
        self, delta: dict[str, Any], finish: str | None = None, choices: bool = True
    ) -> dict[str, Any]:
        """One chat.completion.chunk (``usage`` is null on each one when usage was asked for)."""
        body: dict[str, Any] = {
            "id": self.cid,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": MODEL_ID,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
        }
        if self.include_usage:
            body["usage"] = None
        return body


def _trimmed(ans: Answer, text: str) -> Answer:
    """The answer as shown: ``text`` (maybe cut) with only the citations it still marks."""
    if text == ans.answer:
        return ans
    return dataclasses.replace(ans, answer=text, citations=cited(text, ans.citations))


def _event(body: dict[str, Any] | str) -> str:
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return f"data: {data}\n\n"


def _sse(pieces: Iterator[str | Answer], reply: _Reply) -> Iterator[str]:
    """OpenAI's streaming format: role first, content deltas, a finish chunk, usage, [DONE].

    The finish chunk carries the ``citations`` (a field OpenAI clients keep as an extra); with
    ``stream_options.include_usage`` a last chunk with no choices carries the ``usage``, as
    OpenAI sends it. With ``max_tokens`` the text stops at the cut, the finish reason is
    "length" and the citations are those of the text sent.
    """
    yield _event(reply.chunk({"role": "assistant", "content": ""}))
    try:
        final: Answer | None = None
        sent, finish = "", "stop"
        for item in pieces:
            if isinstance(item, Answer):
                final = item
                continue
            if not item or finish == "length":
                continue  # past the cut: the rest is read only for the final answer
            if reply.max_tokens is not None:
                kept = cut_tokens(reply.tokenizer, sent + item, reply.max_tokens)
                if kept != sent + item:
                    finish = "length"
                    item = kept[len(sent) :] if kept.startswith(sent) else ""
            if item:
                sent += item
                yield _event(reply.chunk({"content": item}))
        if final is not None:
            shown = _trimmed(final, sent) if finish == "length" else final
            extra = appendix(shown, reply.inline_sources)
            if extra:
                yield _event(reply.chunk({"content": extra}))
            stop = reply.chunk({}, finish)
            stop["citations"] = [c.to_json() for c in shown.citations]
            yield _event(stop)
            if reply.include_usage:
                last = reply.chunk({}, choices=False)
                last["usage"] = reply.usage(sent + extra)
                yield _event(last)
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
                f"the upload is larger than the {library.megabytes(library.MAX_PDF_UPLOAD_BYTES)} "
                "limit"
            )
        yield chunk


async def _read_upload(request: Request) -> tuple[str, bytes]:
    """The one file of a multipart upload, read with a size cap before it is all received."""
    # The largest limit (a PDF's) before the body is read; the file's own after.
    limit = library.MAX_PDF_UPLOAD_BYTES + MULTIPART_OVERHEAD
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise library.UploadTooLarge(
            f"the upload is {int(length) / 1e6:.1f} MB; the limit is "
            f"{library.megabytes(library.MAX_PDF_UPLOAD_BYTES)}"
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
        data = await upload.read(library.upload_limit(upload.filename) + 1)
    finally:
        await upload.close()
    library.check_size(upload.filename, len(data))
    return upload.filename, data


# --- routes -----------------------------------------------------------------------------------

_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


DOCS_ASSETS = "/docs-assets"


def _docs_routes(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) with its script, style sheet and icon served from this server.

    The files come from the ``fastapi-offline`` package (its ``static`` folder: Swagger UI 5,
    which reads OpenAPI 3.1), so the page renders with no outside host.
    """
    assets = Path(str(importlib.resources.files("fastapi_offline") / "static"))
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")
    title = f"{app.title} API"

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=str(app.openapi_url),
            title=title,
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )

    # ReDoc's page fetches its logo from cdn.redoc.ly whatever the options: /redoc sends the
    # reader to /docs instead of being a second, half-offline page (or a 404).
    @app.get("/redoc", include_in_schema=False)
    def redoc() -> RedirectResponse:
        return RedirectResponse("/docs")


def _no_such_route(request: Request) -> None:
    """Unknown paths under /api and /v1 answer in the API's own error shape (not the chat's).

    A known path with the wrong method is a 405 that names the allowed methods.
    """
    routes: list[APIRoute] = request.app.state.api_routes
    allowed = sorted(
        {m for r in routes if r.path_regex.match(request.url.path) for m in r.methods or ()}
    )
    if allowed:
        raise ApiError(
            405,
            f"{request.method} is not allowed on {request.url.path}; use {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )
    raise ApiError(
        404, f"no route {request.method} {request.url.path} (the routes are listed at /docs)"
    )


def _file_routes(guard: Sequence[Any]) -> APIRouter:
    """``GET /api/documents/{id}/file``: guarded by the token *or* the chat's login cookie.

    The chat's "p. N" link is followed by the browser, which sends the session cookie and no
    ``Authorization`` header (``rag/session.py``).
    """
    router = APIRouter(prefix="/api", tags=["kazrag"], dependencies=list(guard))

    @router.get(
        "/documents/{doc_id}/file",
        response_class=FileResponse,
        responses={
            **_errors(ErrorOut, 404),
            200: {"content": {t.split(";")[0]: {} for t in library.MEDIA_TYPES.values()}},
        },
    )
    def document_file(doc_id: str, request: Request) -> FileResponse:
        """The original file of a document (a PDF opens at a page with ``#page=N``)."""
        return original_file(_engine(request).settings, doc_id)

    return router


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
        """Ranked passages for a query (hybrid dense + BM25 retrieval, no answer).

        The number of passages is ``top_k``; ``k`` (the CLI's ``-k``) is accepted as well.
        """
        engine = _engine(request)
        query = clean_question(req.query, engine.settings.max_question_chars)
        prep = prepare_question(engine, query)  # Latin-typed Kazakh is respelled, as in /ask
        hits = retrieve(engine, prep.query, req.top_k, lexical_query=prep.lexical)
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
        responses={
            200: {"model": UploadOut, "description": "the same name again: replaced or unchanged"},
            **_errors(ErrorOut, 409, 413, 415),
        },
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
    async def upload(request: Request) -> JSONResponse:
        """Add a .txt, .md, .pdf, .docx or .html document and update the index.

        At most 10 MB, a PDF 40 MB (scans are large: BENCHMARKS.md § Documents and OCR).

        A new document is 201 "added". The same file name again is 200: "replaced" when the
        text differs, "unchanged" (nothing rebuilt) when it is the same. Scanned PDF pages are
        read by OCR (a few seconds a page).
        """
        filename, data = await _read_upload(request)
        engine = await run_in_threadpool(_engine, request)  # may load the model: not on the loop
        info, status = await run_in_threadpool(library.put_document, engine, filename, data)
        docs = library.list_documents(engine.settings, engine.index)
        body = {
            "status": status,
            "document": info.to_json(),
            "documents": [d.to_json() for d in docs],
        }
        return JSONResponse(body, status_code=201 if status == "added" else 200)

    @router.delete(
        "/documents/{doc_id}", response_model=RemoveOut, responses=_errors(ErrorOut, 404, 409)
    )
    def remove(doc_id: str, request: Request) -> dict[str, Any]:
        """Remove an uploaded document (seed documents are refused with 409)."""
        engine = _engine(request)
        library.remove_document(engine, doc_id)
        docs = library.list_documents(engine.settings, engine.index)
        return {"removed": doc_id, "documents": [d.to_json() for d in docs]}

    router.add_api_route(
        "/{path:path}", _no_such_route, methods=_ALL_METHODS, include_in_schema=False
    )
    return router


def _health_route(app: FastAPI) -> None:
    """``GET /api/health``, outside the token guard: a liveness probe needs no token."""

    @app.get(
        "/api/health",
        tags=["kazrag"],
        response_model=HealthOut,
        response_model_exclude_none=True,
        responses=_errors(ErrorOut),
        # The token is optional here: without it the answer is status and readiness only.
        openapi_extra={"security": [{}, {"HTTPBearer": []}]} if app.state.token else None,
    )
    def health(request: Request, full: Annotated[bool, Depends(_token_holder)]) -> dict[str, Any]:
        """Liveness and readiness (no token needed); what is loaded for a token holder.

        ``ready`` is false while the model loads and warms up at start, then true.
        """
        state = request.app.state
        status = "failed" if state.failed else ("ok" if state.ready else "loading")
        out: dict[str, Any] = {"status": status, "ready": state.ready}
        if full and state.ready:
            # Liveness must not depend on the shared store: a Milvus restart is a 503 on the
            # routes that read it, not a failed probe that gets the replica restarted.
            engine = _engine(request, refresh=False)
            m = engine.index.manifest
            out |= {
                "model": str(m.get("model")),
                "generator": engine.settings.generator,
                "documents": len(engine.index.documents),
                "chunks": len(engine.index.chunks),
                "index_created": m.get("created"),
            }
        return out


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
            **_errors(OpenAIErrorOut, 404),
        },
    )
    def chat_completions(req: ChatRequest, request: Request) -> JSONResponse | StreamingResponse:
        """OpenAI-compatible chat: the last user message is the question, earlier ones history.

        The model is ``kazrag`` (any other name is a 404 ``model_not_found``). Citations come in
        a ``citations`` field (in the final chunk when streaming); ``inline_sources: true`` also
        appends them to the text. ``usage`` counts tokens with the answer's tokenizer (see
        rag/tokens.py); ``max_tokens`` cuts the answer at a sentence or token boundary with
        ``finish_reason`` "length". ``n`` must be 1.
        """
        if req.model != MODEL_ID:
            raise ApiError(
                404,
                f"The model `{req.model}` does not exist; this server offers `{MODEL_ID}`.",
                code="model_not_found",
                param="model",
            )
        if req.n != 1:
            raise ApiError(
                400,
                f"n={req.n} is not supported: this server returns one choice (n=1)",
                code="unsupported_value",
                param="n",
            )
        if req.messages[-1].role != "user":
            raise ApiError(400, "messages: the last message must come from the user")
        question = req.messages[-1].text()
        history = turns_from_messages(req.messages[:-1])
        engine = _engine(request)
        tokenizer = tokenizer_of(engine.embedder)
        limits = [x for x in (req.max_tokens, req.max_completion_tokens) if x is not None]
        reply = _Reply(
            cid=_completion_id(),
            created=int(time.time()),
            tokenizer=tokenizer,
            prompt_tokens=count_tokens(tokenizer, "\n".join(m.text() for m in req.messages)),
            max_tokens=min(limits) if limits else None,
            inline_sources=req.inline_sources,
            include_usage=bool(req.stream_options and req.stream_options.include_usage),
        )
        if req.stream:
            pieces = stream_answer(question, history, engine=engine, top_k=req.top_k)
            # The first item comes after validation and retrieval: a bad question is still a 4xx.
            first = next(pieces, None)
            if first is None:
                raise ApiError(500, "the pipeline produced no answer", "server_error")
            return StreamingResponse(
                _sse(itertools.chain([first], pieces), reply),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        ans = answer(question, history, engine=engine, top_k=req.top_k)
        text = ans.answer
        if reply.max_tokens is not None:
            text = cut_tokens(tokenizer, text, reply.max_tokens)
        shown = _trimmed(ans, text)
        content = text + appendix(shown, req.inline_sources)
        body = {
            "id": reply.cid,
            "object": "chat.completion",
            "created": reply.created,
            "model": MODEL_ID,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop" if text == ans.answer else "length",
                }
            ],
            "usage": reply.usage(content),
            "citations": [c.to_json() for c in shown.citations],
            "kazrag": shown.to_json(),
        }
        return JSONResponse(body)

    router.add_api_route(
        "/{path:path}", _no_such_route, methods=_ALL_METHODS, include_in_schema=False
    )
    return router


# A question for the warm-up at start: any text does; this one reaches every step.
WARM_UP_QUESTION = "Бұл құжатта не айтылған?"


def warm_up(engine: Engine) -> None:
    """Run every lazy load the first question would otherwise wait for.

    The extractive composer answers a throwaway question (model, retriever, sentence scoring,
    language detector). With a language model only the local part is warmed: an answer would
    spend the language model's time at every start.
    """
    t0 = time.perf_counter()
    if engine.settings.generator == "extractive":
        answer(WARM_UP_QUESTION, engine=engine)
    else:
        retrieve(engine, WARM_UP_QUESTION, engine.settings.top_k)
        engine.embedder.embed_passages([WARM_UP_QUESTION])
        detect_language(WARM_UP_QUESTION)
    logger.info("warm-up took %.0f ms", (time.perf_counter() - t0) * 1000)


def _start(app: FastAPI) -> None:
    """Load the engine (unless one was given) and warm it; then health reports ready."""
    state = app.state
    try:
        if state.engine is None:
            state.engine = get_engine(state.settings)  # the process-wide one, kept at hand
        warm_up(state.engine)
    except Exception:
        logger.exception("the start-up failed: the model or the index could not be loaded")
        state.failed = True
        return
    state.ready = True


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load and warm the model when the server starts, so the first answer is not the slow one.

    A given engine (already loaded) is warmed before the server accepts requests; otherwise
    the model loads in a thread while the server already answers ``/api/health`` with
    ``ready: false``.
    """
    if app.state.engine is not None:
        await run_in_threadpool(_start, app)
    else:
        threading.Thread(target=_start, args=(app,), name="kazrag-start", daemon=True).start()
    yield


def create_app(
    settings: Settings, engine: Engine | None = None, token: str | None = None
) -> FastAPI:
    """The FastAPI app with the REST and OpenAI routes and the docs pages (offline).

    ``ui.server.build_app`` mounts the chat beside it.

    ``engine`` defaults to the process-wide :func:`rag.pipeline.get_engine`, loaded and warmed
    up when the server starts (see :func:`_lifespan`); ``token`` defaults to
    ``$KAZRAG_API_TOKEN``.
    """
    app = FastAPI(
        title="kazrag",
        version="0.1.0",
        description="Question answering over Kazakh documents with exact citations.",
        # The docs pages are served from files in the package (see _docs_routes): the default
        # ones load their scripts from a CDN, a blank page offline.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.token = token if token is not None else settings.api_token
    app.state.started = time.time()
    app.state.ready = False
    app.state.failed = False
    _install_error_handlers(app)
    _docs_routes(app)
    _health_route(app)
    # The bearer check (and its entry in the schema) only exists when a token is configured,
    # so the served schema always says truthfully whether the API wants one.
    guard = [Depends(_authorize)] if app.state.token else []
    file_guard = [Depends(_authorize_or_session)] if app.state.token else []
    # The file route first: the /api router ends with a catch-all.
    routers = [_file_routes(file_guard), _api_routes(guard), _openai_routes(guard)]
    for router in routers:
        app.include_router(router)
    # What the catch-all routes compare a wrong method against (405 rather than 404).
    app.state.api_routes = [
        r
        for r in [*app.routes, *(r for router in routers for r in router.routes)]
        if isinstance(r, APIRoute) and r.endpoint is not _no_such_route
    ]
    return app
