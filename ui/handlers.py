"""What the chat does when the user acts: one method per event, on one :class:`ChatHandlers`.

Every answer comes from :func:`rag.pipeline.stream_answer` on the engine the HTTP API shares.
The conversation lives in the browser (a ``gr.BrowserState`` of answer records), so a reload
shows it again; the chat's messages and the sources panel are always drawn from those records.
"""

from __future__ import annotations

import dataclasses
import html
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from rag import library
from rag.conversation import Turn
from rag.generation import GeneratorConfig
from rag.pipeline import Engine, QuestionError, clean_question, get_engine, stream_answer
from rag.schema import Answer
from rag.settings import Settings
from rag.sources import SourceError
from ui.feedback import record_feedback
from ui.render import (
    markdown_text,
    render_documents,
    render_header,
    render_messages,
    render_sources,
    render_text,
)
from ui.texts import (
    LANGUAGES,
    TEXT,
    browser_language,
    code,
    question_error,
    stage_text,
)

logger = logging.getLogger(__name__)

# Turns kept in the browser: enough for any real conversation, small enough for localStorage
# (a turn is a few kB: the answer, its citations and the three closest passages).
MAX_TURNS = 30
# Passages of an answer kept with it: the sources panel shows the closest three of an abstained
# answer, nothing else needs them.
KEPT_PASSAGES = 3

Turns = list[dict[str, Any]]


def default_threshold(settings: Settings) -> float:
    """The abstention threshold the settings slider starts at (the calibrated Kazakh one,
    or the one the settings fix)."""
    if settings.abstain_threshold is not None:
        return settings.abstain_threshold
    return GeneratorConfig().abstain_kk


def language_label(lang: str) -> str:
    """The language picker's label for a language code."""
    return next(label for label, c in LANGUAGES.items() if c == lang)


def library_message(exc: Exception, lang: str) -> str:
    """A refused upload or removal, in the interface language, with the library's detail."""
    t = TEXT[lang]
    kinds: list[tuple[type[Exception], str]] = [
        (library.UploadTooLarge, t["too_large"]),
        (library.UnsupportedType, t["bad_type"]),
        (library.DocumentNotFound, t["not_found"]),
        (library.DocumentProtected, t["protected"]),
    ]
    kind = next((text for cls, text in kinds if isinstance(exc, cls)), t["unreadable"])
    return f"**{t['rejected']}:** {kind}. _{markdown_text(str(exc))}_"


def upload_choices(docs: list[library.DocumentInfo]) -> list[tuple[str, str]]:
    """The removable documents for the picker: (label, doc_id)."""
    return [(f"{d.title[:60]} ({d.doc_id})", d.doc_id) for d in docs if d.removable]


def turn_record(final: Answer, generator: str) -> dict[str, Any]:
    """What the browser keeps of an answer: its JSON, with titles on the closest passages."""
    record = final.to_json()
    record["retrieved"] = [
        {**h.to_json(), "title": h.chunk.title} for h in final.retrieved[:KEPT_PASSAGES]
    ]
    return {"answer": record, "generator": generator}


def _warn(lang: str, message: str) -> None:
    gr.Warning(message, title=TEXT[lang]["warning_title"])


@dataclass
class ChatHandlers:
    """The chat's event handlers over one engine (``None``: the process-wide one, on first use).

    ``threshold`` is where the abstention slider starts; the slider at that value means "use
    the calibrated thresholds" (Kazakh and the other languages have their own).
    """

    settings: Settings
    engine: Engine | None = None
    threshold: float = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.threshold = default_threshold(self.settings)

    def eng(self) -> Engine:
        """The engine answering now."""
        return self.engine if self.engine is not None else get_engine(self.settings)

    def engine_for(self, generator: str | None) -> Engine:
        """The engine with the generator picked in the settings (a per-request view)."""
        base = self.eng()
        if not generator or generator == base.settings.generator:
            return base
        # Same model, index and lock; only the generator differs.
        with base.lock:
            return dataclasses.replace(base, settings=base.settings.replace(generator=generator))

    def _override(self, threshold: float | None) -> float | None:
        """The threshold to pass to the pipeline: ``None`` while the slider is at its start
        (within half of its 0.01 step: the slider shows the start rounded)."""
        if threshold is None or abs(float(threshold) - self.threshold) < 0.005:
            return None
        return float(threshold)

    def _documents(self, lang: str) -> tuple[str, Any]:
        e = self.eng()
        docs = library.list_documents(e.settings, e.index)
        return render_documents(docs, lang), gr.update(choices=upload_choices(docs), value=None)

    # --- asking ------------------------------------------------------------------------------

    def _ask(
        self,
        question: str,
        turns: Turns,
        k: float,
        gen: str | None,
        lang: str,
        threshold: float | None,
    ) -> Iterator[tuple[list[dict[str, str]], Turns, Any]]:
        """Stream one answer to ``question`` after ``turns``: yields (messages, turns, sources).

        A :class:`QuestionError` from the pipeline propagates (the caller restores the chat).
        """
        engine_now = self.engine_for(gen)
        past = [Turn(s["answer"]["question"], s["answer"]["answer"]) for s in turns]
        thinking = f'<span class="kz-note">{html.escape(TEXT[lang]["thinking"])}</span>'
        shown = [
            *render_messages(turns, lang, last=False),
            {"role": "user", "content": render_text(question)},
            {"role": "assistant", "content": thinking},
        ]
        yield shown, turns, gr.update()
        text, final = "", None
        for item in stream_answer(
            question,
            past,
            engine=engine_now,
            top_k=int(k),
            abstain_threshold=self._override(threshold),
        ):
            if isinstance(item, Answer):
                final = item
            else:
                text += item
                shown[-1] = {"role": "assistant", "content": render_text(text)}
                yield shown, turns, gr.update()
        if final is None:
            return
        kept = [*turns, turn_record(final, engine_now.settings.generator)][-MAX_TURNS:]
        yield render_messages(kept, lang), kept, render_sources(self.settings, kept, lang)

    def respond(
        self,
        message: str,
        history: list[dict[str, Any]],
        turns: Turns,
        k: float,
        gen: str | None,
        label: str,
        threshold: float | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """Send: (text box, messages, turns, sources panel) as the answer streams in.

        A refused question leaves everything as it was (the typed text stays) with a warning.
        """
        lang = code(label)
        turns = turns or []
        try:
            question = clean_question(message, self.settings.max_question_chars)
            for shown, kept, sources in self._ask(question, turns, k, gen, lang, threshold):
                yield "", shown, kept, sources
        except QuestionError as exc:
            if message.strip():
                _warn(lang, f"{TEXT[lang]['bad_question']}: {question_error(exc, lang)}")
            yield message, history, turns, gr.update()

    def regenerate(
        self,
        history: list[dict[str, Any]],
        turns: Turns,
        k: float,
        gen: str | None,
        label: str,
        threshold: float | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """Ask the last question again (with the current settings), replacing its answer."""
        lang = code(label)
        if not turns:
            yield history, turns, gr.update()
            return
        question = turns[-1]["answer"]["question"]
        try:
            yield from self._ask(question, turns[:-1], k, gen, lang, threshold)
        except QuestionError as exc:
            _warn(lang, f"{TEXT[lang]['bad_question']}: {question_error(exc, lang)}")
            yield history, turns, gr.update()

    def on_clear(self, label: str) -> tuple[Any, ...]:
        """New conversation: (messages, turns, sources panel, text box) all emptied."""
        return [], [], render_sources(self.settings, [], code(label)), ""

    def on_like(self, turns: Turns, label: str, data: gr.LikeData) -> None:
        """A thumb up or down on an answer goes to the feedback file."""
        index = data.index if isinstance(data.index, int) else data.index[0]
        turn_no = index // 2  # every turn is exactly one user and one assistant message
        if not 0 <= turn_no < len(turns):
            return
        liked = data.liked  # True/False, or the option's name; None when taken back
        if liked is None:
            rating = "cleared"
        elif liked is True or liked == "Like":
            rating = "up"
        elif liked is False or liked == "Dislike":
            rating = "down"
        else:
            rating = str(liked)
        record_feedback(self.settings, turns[turn_no], rating)
        lang = code(label)
        gr.Info(TEXT[lang]["thanks"], title=TEXT[lang]["info_title"])

    # --- documents ---------------------------------------------------------------------------

    def on_upload(
        self,
        path: str | None,
        label: str,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> tuple[Any, ...]:
        """A file dropped or chosen: (file box, status, document list, remove picker)."""
        lang = code(label)
        if not path:
            return gr.update(), gr.update(), gr.update(), gr.update()
        file = Path(path)
        try:
            library.check_type(file.name)
            library.check_size(file.name, file.stat().st_size)
            info = library.add_document(
                self.eng(),
                file.name,
                file.read_bytes(),
                progress=lambda f, msg: progress(f, desc=stage_text(msg, lang)),
            )
            message = TEXT[lang]["added"].format(
                title=markdown_text(info.title), chunks=info.chunks
            )
        except (library.LibraryError, SourceError) as exc:
            message = library_message(exc, lang)
        return None, message, *self._documents(lang)

    def ask_remove(self, doc_id: str | None, label: str) -> tuple[Any, ...]:
        """Remove pressed: show the confirmation (row, its question), or nothing if none picked."""
        if not doc_id:
            return gr.update(visible=False), gr.update()
        question = TEXT[code(label)]["confirm_remove"].format(doc_id=markdown_text(doc_id))
        return gr.update(visible=True), question

    def on_remove(self, doc_id: str | None, label: str) -> tuple[Any, ...]:
        """Removal confirmed: (status, document list, remove picker)."""
        lang = code(label)
        if not doc_id:
            return gr.update(), gr.update(), gr.update()
        try:
            library.remove_document(self.eng(), doc_id)
            message = TEXT[lang]["removed"].format(doc_id=markdown_text(doc_id))
        except (library.LibraryError, SourceError) as exc:
            message = library_message(exc, lang)
        return message, *self._documents(lang)

    # --- page and language ---------------------------------------------------------------------

    def on_load(
        self, turns: Turns | None, saved: str | None, request: gr.Request
    ) -> tuple[Any, ...]:
        """Page (re)loaded: (language, messages, sources, document list, remove picker, text
        box, send button).

        The conversation kept in the browser is shown again; the language is the one picked
        last time in this browser, else the browser's own. The question box and the send
        button start disabled and are enabled here: a question sent before the restore would
        otherwise be wiped from the screen by it.
        """
        headers = getattr(request, "headers", None) or {}
        lang = saved if saved in TEXT else browser_language(headers.get("accept-language"))
        lang = lang or "kk"
        turns = turns or []
        return (
            language_label(lang),
            render_messages(turns, lang),
            render_sources(self.settings, turns, lang),
            *self._documents(lang),
            gr.update(interactive=True),
            gr.update(interactive=True),
        )

    def on_language(self, label: str, turns: Turns) -> tuple[Any, ...]:
        """Language picked: every label, the messages and the panels in it (the order of
        :data:`LANGUAGE_OUTPUTS`), and the choice saved in the browser."""
        lang = code(label)
        t = TEXT[lang]
        turns = turns or []
        return (
            render_header(lang),
            gr.update(label=t["chat"], value=render_messages(turns, lang)),
            gr.update(placeholder=t["placeholder"]),
            gr.update(value=t["send"]),
            gr.update(value=t["new_chat"]),
            gr.update(label=t["sources"]),
            gr.update(label=t["documents"]),
            gr.update(label=t["settings"]),
            gr.update(label=t["upload"]),
            gr.update(label=t["remove_pick"]),
            gr.update(value=t["remove"]),
            gr.update(visible=False),  # a pending confirmation was asked in the old language
            gr.update(value=t["confirm_yes"]),
            gr.update(value=t["cancel"]),
            gr.update(label=t["top_k"]),
            gr.update(label=t["threshold"], info=threshold_info(lang)),
            gr.update(label=t["generator"]),
            render_sources(self.settings, turns, lang),
            self._documents(lang)[0],
            gr.update(label=t["examples"]),
            lang,
        )


# The components :meth:`ChatHandlers.on_language` updates, in its order (``ui/app.py`` names
# its components so).
LANGUAGE_OUTPUTS = (
    "header",
    "chat",
    "box",
    "send",
    "new_chat",
    "src_box",
    "docs_box",
    "set_box",
    "upload",
    "pick",
    "remove",
    "confirm_row",
    "confirm_yes",
    "cancel",
    "top_k",
    "threshold",
    "generator",
    "sources",
    "doc_table",
    "examples",
    "saved_lang",
)


def threshold_info(lang: str) -> str:
    """The one-line explanation under the abstention slider, with the calibrated values."""
    calibrated = GeneratorConfig()
    return TEXT[lang]["threshold_info"].format(
        kk=f"{calibrated.abstain_kk:.2f}", other=f"{calibrated.abstain_other:.2f}"
    )
