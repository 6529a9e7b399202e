"""The Gradio chat: streaming answers with clickable citation markers and a sources panel.

It answers through :func:`rag.pipeline.stream_answer` on the same engine as the HTTP API, so the
chat, the API and the CLI give the same answers. Everything shown is built here as HTML from
escaped text (the chatbot's markdown rendering is off): a question or a document can never
inject markup. A marker ``[n]`` is a link to the card of its passage in the sources panel; a
small script (``_HEAD``) opens and highlights that card, without a round trip to the server.

Interface labels are Kazakh by default, with Russian and English; the answer itself is always in
the language of the question.
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import html
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from rag import library
from rag.conversation import Turn
from rag.pipeline import Engine, QuestionError, clean_question, get_engine, stream_answer
from rag.schema import MARKER_RE, Answer
from rag.settings import PROJECT_ROOT, Settings
from rag.sources import SourceError

if TYPE_CHECKING:
    from fastapi import FastAPI

logger = logging.getLogger(__name__)

LANGUAGES = {"Қазақша": "kk", "Русский": "ru", "English": "en"}
# Characters of the document shown on each side of a cited span in the sources panel.
CONTEXT_CHARS = 260

TEXT: dict[str, dict[str, str]] = {
    "kk": {
        "title": "Құжаттар бойынша сұрақ-жауап",
        "subtitle": "Жүктелген құжаттардан жауап береді және әр сөйлемнің дереккөзін көрсетеді. "
        "Дереккөзді ашу үшін [1] белгісін басыңыз.",
        "chat": "Әңгіме",
        "placeholder": "Сұрағыңызды жазыңыз…",
        "input": "Сұрақ",
        "send": "Жіберу",
        "clear": "Тазалау",
        "examples": "Мысал сұрақтар",
        "sources": "Дереккөздер",
        "sources_empty": "Жауаптағы [1] белгісін басқанда дереккөз осында ашылады.",
        "no_citations": "Бұл жауапта дереккөз жоқ.",
        "closest": "Жауап табылмады; ең жақын үзінділер:",
        "turn": "Сұрақ",
        "position": "{start}–{end} таңба ({total} таңбаның {pct}%-ы)",
        "documents": "Құжаттар",
        "upload": "Құжат жүктеу (.txt, .md, .pdf, .docx, .html; 10 МБ-қа дейін)",
        "remove_pick": "Жүктелген құжат",
        "remove": "Жою",
        "settings": "Баптаулар",
        "top_k": "Іздейтін үзінділер саны",
        "generator": "Жауап генераторы",
        "thinking": "Құжаттардан іздеп жатырмын…",
        "added": "Қосылды: «{title}» ({chunks} үзінді).",
        "removed": "Жойылды: {doc_id}.",
        "rejected": "Құжат қабылданбады",
        "too_large": "файл тым үлкен",
        "bad_type": "бұл файл түрі қолдау көрмейді (.txt, .md, .pdf, .docx, .html ғана)",
        "not_found": "құжат табылмады",
        "protected": "кірістірілген құжатты жоюға болмайды",
        "unreadable": "файлды оқу мүмкін болмады",
        "thanks": "Рақмет! Пікіріңіз сақталды.",
        "col_title": "Атауы",
        "col_chunks": "Үзінді",
        "col_source": "Түрі",
        "seed": "кірістірілген",
        "upload_kind": "жүктелген",
        "api": "HTTP API",
        "bad_question": "Сұрақ қабылданбады",
    },
    "ru": {
        "title": "Вопросы и ответы по документам",
        "subtitle": "Отвечает по загруженным документам и показывает источник каждого "
        "предложения. Нажмите на метку [1], чтобы открыть источник.",
        "chat": "Диалог",
        "placeholder": "Напишите вопрос…",
        "input": "Вопрос",
        "send": "Отправить",
        "clear": "Очистить",
        "examples": "Примеры вопросов",
        "sources": "Источники",
        "sources_empty": "Нажмите на метку [1] в ответе, и источник откроется здесь.",
        "no_citations": "В этом ответе нет источников.",
        "closest": "Ответ не найден; ближайшие фрагменты:",
        "turn": "Вопрос",
        "position": "символы {start}–{end} из {total} ({pct}%)",
        "documents": "Документы",
        "upload": "Загрузить документ (.txt, .md, .pdf, .docx, .html; до 10 МБ)",
        "remove_pick": "Загруженный документ",
        "remove": "Удалить",
        "settings": "Настройки",
        "top_k": "Сколько фрагментов искать",
        "generator": "Генератор ответа",
        "thinking": "Ищу в документах…",
        "added": "Добавлен: «{title}» ({chunks} фрагм.).",
        "removed": "Удалён: {doc_id}.",
        "rejected": "Документ не принят",
        "too_large": "файл слишком большой",
        "bad_type": "этот тип файла не поддерживается (только .txt, .md, .pdf, .docx, .html)",
        "not_found": "документ не найден",
        "protected": "встроенный документ удалить нельзя",
        "unreadable": "не удалось прочитать файл",
        "thanks": "Спасибо! Отзыв сохранён.",
        "col_title": "Название",
        "col_chunks": "Фрагм.",
        "col_source": "Тип",
        "seed": "встроенный",
        "upload_kind": "загружен",
        "api": "HTTP API",
        "bad_question": "Вопрос не принят",
    },
    "en": {
        "title": "Questions and answers over documents",
        "subtitle": "Answers from the loaded documents and shows the source of every sentence. "
        "Click a marker like [1] to open its source.",
        "chat": "Chat",
        "placeholder": "Type your question…",
        "input": "Question",
        "send": "Send",
        "clear": "Clear",
        "examples": "Example questions",
        "sources": "Sources",
        "sources_empty": "Click a marker like [1] in an answer to open its source here.",
        "no_citations": "This answer has no sources.",
        "closest": "No answer found; the closest passages:",
        "turn": "Question",
        "position": "characters {start}–{end} of {total} ({pct}%)",
        "documents": "Documents",
        "upload": "Upload a document (.txt, .md, .pdf, .docx, .html; up to 10 MB)",
        "remove_pick": "Uploaded document",
        "remove": "Remove",
        "settings": "Settings",
        "top_k": "Passages to retrieve",
        "generator": "Answer generator",
        "thinking": "Searching the documents…",
        "added": "Added: “{title}” ({chunks} passages).",
        "removed": "Removed: {doc_id}.",
        "rejected": "Document not accepted",
        "too_large": "the file is too large",
        "bad_type": "this file type is not supported (only .txt, .md, .pdf, .docx, .html)",
        "not_found": "document not found",
        "protected": "a built-in document cannot be removed",
        "unreadable": "the file could not be read",
        "thanks": "Thank you! Your feedback was saved.",
        "col_title": "Title",
        "col_chunks": "Passages",
        "col_source": "Kind",
        "seed": "built-in",
        "upload_kind": "uploaded",
        "api": "HTTP API",
        "bad_question": "Question not accepted",
    },
}

# The library reports its stages in English (logs, API); the chat shows them in its language.
STAGES: dict[str, dict[str, str]] = {
    "checking the file": {"kk": "Файл тексерілуде", "ru": "Проверка файла"},
    "extracting the text": {"kk": "Мәтін алынуда", "ru": "Извлечение текста"},
    "cleaning": {"kk": "Мәтін тазалануда", "ru": "Очистка текста"},
    "reading the corpus": {"kk": "Корпус оқылуда", "ru": "Чтение корпуса"},
    "updating the index": {"kk": "Индекс жаңартылуда", "ru": "Обновление индекса"},
    "embedding new passages": {
        "kk": "Жаңа үзінділер векторлануда",
        "ru": "Векторизация фрагментов",
    },
    "embedding new sentences": {
        "kk": "Жаңа сөйлемдер векторлануда",
        "ru": "Векторизация предложений",
    },
    "loading the new index": {"kk": "Жаңа индекс жүктелуде", "ru": "Загрузка нового индекса"},
    "done": {"kk": "Дайын", "ru": "Готово"},
}


def stage_text(message: str, lang: str) -> str:
    """A library progress message (``label`` or ``label: 64/320``) in the interface language."""
    label, sep, count = message.partition(": ")
    return STAGES.get(label, {}).get(lang, label) + (sep + count if sep else "")


EXAMPLES = [
    "HAQ қозғалысы Қордай оқиғасынан кейін Қазақстан халқы ассамблеясының қызметін қалай бағалады?",
    "Түймебаев Қордайдағы жанжалдың қандай үш себебін атады?",
    "Кто возглавлял правительственную комиссию, выезжавшую в Кордайский район?",
    "On which dates did Tokayev visit Brussels in June 2026?",
]

# System fonts: no request to a font CDN, and they cover the Kazakh letters (ә ғ қ ң ө ұ ү һ і).
THEME = gr.themes.Soft(
    font=("ui-sans-serif", "system-ui", "Segoe UI", "Noto Sans", "DejaVu Sans", "sans-serif"),
    font_mono=("ui-monospace", "DejaVu Sans Mono", "monospace"),
)

_MARKER = MARKER_RE

CSS = """
.kz-header h1 { margin: 0; font-size: 1.5rem; }
.kz-header p { margin: .25rem 0 0; opacity: .8; }
.kz-header a { font-size: .9rem; }
a.kz-cite { font-weight: 600; text-decoration: none; padding: 0 .1em; border-radius: 4px;
  color: var(--color-accent); cursor: pointer; white-space: nowrap; }
a.kz-cite:hover { background: var(--color-accent-soft); }
.kz-note { opacity: .75; font-style: italic; }
#kz-sources { max-height: 640px; overflow-y: auto; }
#kz-doc-list { max-height: 320px; overflow-y: auto !important; }
#kz-status { min-height: 3.6rem; }
.kz-turn { border-bottom: 1px solid var(--border-color-primary); padding: .35rem 0; }
.kz-turn > summary { cursor: pointer; font-weight: 600; }
.kz-src { border: 1px solid var(--border-color-primary); border-radius: 8px;
  margin: .5rem 0; padding: .4rem .6rem; background: var(--background-fill-secondary); }
.kz-src > summary { cursor: pointer; }
.kz-src .kz-num { font-weight: 700; color: var(--color-accent); margin-right: .3em; }
.kz-src .kz-passage { line-height: 1.55; margin: .5rem 0 .3rem; white-space: pre-wrap; }
.kz-src mark { background: #fde68a; color: inherit; padding: 0 .1em; border-radius: 3px; }
.kz-src .kz-pos { font-size: .85rem; opacity: .8; }
.kz-bar { height: 5px; background: var(--border-color-primary); border-radius: 3px;
  position: relative; margin-top: .25rem; }
.kz-bar span { position: absolute; top: 0; height: 5px; min-width: 3px;
  background: var(--color-accent); border-radius: 3px; }
.kz-flash { animation: kz-flash 1.6s ease-out; }
@keyframes kz-flash { 0% { box-shadow: 0 0 0 4px var(--color-accent); }
  100% { box-shadow: 0 0 0 0 transparent; } }
.kz-docs { width: 100%; font-size: .88rem; border-collapse: collapse; border: none !important; }
.kz-docs td, .kz-docs th { padding: .25rem .4rem; border: none !important;
  border-bottom: 1px solid var(--border-color-primary) !important; text-align: left;
  vertical-align: top; }
.kz-docs small { opacity: .65; }
"""

# A marker is a plain link to its card's id; this opens the card (and its question group),
# scrolls it into view and flashes it. Capture phase, so the chat's own link handling (open in a
# new tab) never sees the click.
_HEAD = """
<script>
document.addEventListener("click", function (ev) {
  var a = ev.target && ev.target.closest ? ev.target.closest("a.kz-cite") : null;
  if (!a) return;
  ev.preventDefault();
  ev.stopPropagation();
  var card = document.getElementById((a.getAttribute("href") || "").slice(1));
  if (!card) return;
  var group = card.closest("details.kz-turn");
  if (group) group.open = true;
  card.open = true;
  card.scrollIntoView({behavior: "smooth", block: "nearest"});
  card.classList.remove("kz-flash");
  void card.offsetWidth;
  card.classList.add("kz-flash");
}, true);
</script>
"""


# --- rendering (pure functions: text in, escaped HTML out) ------------------------------------


def render_text(text: str) -> str:
    """Plain text as HTML: escaped, line breaks kept."""
    return html.escape(text).replace("\n", "<br>")


def render_answer(ans: Answer, turn: int, lang: str = "kk") -> str:
    """The answer as HTML with each known marker ``[n]`` linked to its card in the panel."""
    titles = {c.marker: c.title for c in ans.citations}
    escaped = html.escape(ans.answer)

    def link(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if n not in titles:
            return m.group(0)
        title = html.escape(titles[n], quote=True)
        return f'<a class="kz-cite" href="#kz-src-{turn}-{n}" title="{title}">[{n}]</a>'

    body = _MARKER.sub(link, escaped).replace("\n", "<br>")
    if ans.note:
        body += f'<br><span class="kz-note">{html.escape(ans.note)}</span>'
    return body


@functools.lru_cache(maxsize=64)
def _raw_text(settings: Settings, doc_id: str, mtime: float) -> str:
    # For a PDF this is the text extracted from it (kept in the index), not the file's bytes.
    return library.document_text(settings, doc_id)


def document_raw(settings: Settings, doc_id: str) -> str | None:
    """The raw text a citation's offsets point into (``None`` if the document is gone)."""
    try:
        path = library.document_path(settings, doc_id)
        return _raw_text(settings, doc_id, path.stat().st_mtime)
    except (library.LibraryError, SourceError, OSError):
        return None


# Paged sources (PDFs): the page label, the link that opens the original file at that page,
# and the documents list's flag for pages whose OCR is not to be trusted without a look.
PAGE_TEXT = {
    "kk": {"page": "{n}-бет", "open": "файлды осы бетте ашу", "low": "OCR сенімсіз беттер"},
    "ru": {"page": "с. {n}", "open": "открыть файл на этой странице", "low": "OCR ненадёжен: с."},
    "en": {"page": "p. {n}", "open": "open the file at this page", "low": "low OCR confidence: p."},
}


def page_link(span: dict[str, Any], lang: str) -> str:
    """``p. N`` and a link to the original file at that page (served by the API), or nothing."""
    page = span.get("page")
    if not page:
        return ""
    t = PAGE_TEXT[lang]
    label = t["page"].format(n=page)
    if span.get("page_end"):
        label += f"–{span['page_end']}"
    href = f"/api/documents/{urllib.parse.quote(span['doc_id'])}/file#page={int(page)}"
    return (
        f' · <a class="kz-page" href="{html.escape(href)}" target="_blank" rel="noopener" '
        f'title="{html.escape(t["open"])}">{html.escape(label)}</a>'
    )


def document_note(d: library.DocumentInfo, lang: str) -> str:
    """Format, page count and low-confidence OCR pages of a document, for the documents list."""
    if d.format in ("text", "markdown"):
        return ""
    note = d.format.upper() + (f", {d.pages} pp." if d.pages else "")
    if d.ocr_pages:
        note += f", OCR {len(d.ocr_pages)}"
    out = f" · {html.escape(note)}"
    if d.low_confidence_pages:
        pages = ", ".join(map(str, d.low_confidence_pages))
        out += f' · <span class="kz-ocr-low">⚠ {html.escape(PAGE_TEXT[lang]["low"])} {pages}</span>'
    return out


def _snap_left(raw: str, pos: int) -> int:
    cut = raw.rfind(" ", 0, pos)
    return pos if cut < 0 or pos - cut > 40 else cut + 1


def _snap_right(raw: str, pos: int) -> int:
    cut = raw.find(" ", pos)
    return pos if cut < 0 or cut - pos > 40 else cut


def render_passage(raw: str | None, start: int, end: int, quote: str) -> str:
    """The cited span highlighted inside some context of the raw document, all escaped."""
    if raw is None or not 0 <= start <= end <= len(raw):
        return f"<mark>{html.escape(quote)}</mark>"
    left = 0 if start <= CONTEXT_CHARS else _snap_left(raw, start - CONTEXT_CHARS)
    right = len(raw) if len(raw) - end <= CONTEXT_CHARS else _snap_right(raw, end + CONTEXT_CHARS)

    def tidy(s: str) -> str:
        # PDF-extracted text has hard line breaks mid-sentence: show it as flowing text.
        return html.escape(re.sub(r"\s+", " ", s))

    return (
        ("…" if left > 0 else "")
        + tidy(raw[left:start])
        + f"<mark>{tidy(raw[start:end])}</mark>"
        + tidy(raw[end:right])
        + ("…" if right < len(raw) else "")
    )


def _card(
    card_id: str,
    label: str,
    span: dict[str, Any],
    raw: str | None,
    t: dict[str, str],
    is_open: bool,
    lang: str = "kk",
) -> str:
    """One passage: title, the span highlighted in its context, its position in the document."""
    title = span.get("title") or span["doc_id"]
    quote = span.get("quote") or span.get("text") or ""
    total = len(raw) if raw is not None else 0
    pct = round(100 * span["start"] / total) if total else 0
    width = max(0.5, 100 * (span["end"] - span["start"]) / total) if total else 0
    pos = t["position"].format(start=span["start"], end=span["end"], total=total, pct=pct)
    return (
        f'<details class="kz-src" id="{card_id}"{" open" if is_open else ""}>'
        f'<summary><span class="kz-num">{html.escape(label)}</span>{html.escape(title)}</summary>'
        f'<div class="kz-passage">{render_passage(raw, span["start"], span["end"], quote)}</div>'
        f'<div class="kz-pos">{html.escape(span["doc_id"])} · {html.escape(pos)}'
        f"{page_link(span, lang)}</div>"
        f'<div class="kz-bar"><span style="left:{pct}%;width:{width:.2f}%"></span></div>'
        "</details>"
    )


def render_sources(settings: Settings, turns: list[dict[str, Any]], lang: str) -> str:
    """The sources panel: one group per question (newest first and open), a card per marker."""
    t = TEXT[lang]
    if not turns:
        return f'<p class="kz-empty">{html.escape(t["sources_empty"])}</p>'
    groups = []
    last = len(turns) - 1
    for i in range(last, -1, -1):
        ans = turns[i]["answer"]
        cards = []
        for c in ans["citations"]:
            raw = document_raw(settings, c["doc_id"])
            card_id = f"kz-src-{i}-{c['marker']}"
            cards.append(_card(card_id, f"[{c['marker']}]", c, raw, t, i == last, lang))
        if not cards and ans["retrieved"]:
            # An abstained answer points at the closest passages: show them (no highlight).
            cards.append(f'<p class="kz-note">{html.escape(t["closest"])}</p>')
            for h in ans["retrieved"][:3]:
                raw = document_raw(settings, h["doc_id"])
                cards.append(
                    _card(f"kz-hit-{i}-{h['rank']}", f"{h['rank']}.", h, raw, t, False, lang)
                )
        if not cards:
            cards.append(f"<p>{html.escape(t['no_citations'])}</p>")
        question = ans["question"] if len(ans["question"]) <= 90 else ans["question"][:89] + "…"
        groups.append(
            f'<details class="kz-turn" id="kz-turn-{i}"{" open" if i == last else ""}>'
            f"<summary>{html.escape(t['turn'])} {i + 1}: {html.escape(question)}</summary>"
            + "".join(cards)
            + "</details>"
        )
    return "".join(groups)


def render_documents(docs: list[library.DocumentInfo], lang: str) -> str:
    """The document list as an escaped HTML table."""
    t = TEXT[lang]
    rows = "".join(
        f"<tr><td>{html.escape(d.title)}<br><small>{html.escape(d.doc_id)}"
        f"{document_note(d, lang)}</small></td>"
        f"<td>{d.chunks}</td>"
        f"<td>{html.escape(t['seed'] if d.source == 'seed' else t['upload_kind'])}</td></tr>"
        for d in docs
    )
    return (
        f'<table class="kz-docs"><thead><tr><th>{html.escape(t["col_title"])}</th>'
        f"<th>{html.escape(t['col_chunks'])}</th><th>{html.escape(t['col_source'])}</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
    )


# --- feedback ---------------------------------------------------------------------------------

_FEEDBACK_LOCK = threading.Lock()


def feedback_path(settings: Settings) -> Path:
    """``feedback.jsonl`` beside the uploads folder (``data/`` by default, out of git)."""
    base = settings.uploads.parent if settings.uploads is not None else PROJECT_ROOT / "data"
    return base / "feedback.jsonl"


def record_feedback(settings: Settings, turn: dict[str, Any], rating: str) -> Path:
    """Append one rating with its question, answer and citations to the feedback file."""
    ans = turn["answer"]
    row = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rating": rating,
        "question": ans["question"],
        "answer": ans["answer"],
        "language": ans["language"],
        "abstained": ans["abstained"],
        "citations": ans["citations"],
        "generator": turn.get("generator"),
    }
    path = feedback_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _FEEDBACK_LOCK, path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


# --- the app ----------------------------------------------------------------------------------


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()#!|~{}])")


def markdown_text(text: str) -> str:
    """Text from a document or a file name, safe inside the status Markdown: HTML escaped and
    Markdown syntax backslashed, so a title like ``<img …>`` or ``[x](url)`` shows as typed."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text))


def _library_message(exc: Exception, lang: str) -> str:
    t = TEXT[lang]
    kinds: list[tuple[type[Exception], str]] = [
        (library.UploadTooLarge, t["too_large"]),
        (library.UnsupportedType, t["bad_type"]),
        (library.DocumentNotFound, t["not_found"]),
        (library.DocumentProtected, t["protected"]),
    ]
    kind = next((text for cls, text in kinds if isinstance(exc, cls)), t["unreadable"])
    return f"**{t['rejected']}:** {kind}. _{markdown_text(str(exc))}_"


def _upload_choices(docs: list[library.DocumentInfo]) -> list[tuple[str, str]]:
    return [(f"{d.title[:60]} ({d.doc_id})", d.doc_id) for d in docs if d.removable]


def build_ui(settings: Settings, engine: Engine | None = None) -> gr.Blocks:
    """The chat as a ``gr.Blocks`` (mount it with :func:`mount_chat`, or ``.launch()`` it)."""

    def eng() -> Engine:
        return engine if engine is not None else get_engine(settings)

    def engine_for(generator: str | None) -> Engine:
        base = eng()
        if not generator or generator == base.settings.generator:
            return base
        # Same model, index and lock; only the generator differs (a per-request view).
        with base.lock:
            return dataclasses.replace(base, settings=base.settings.replace(generator=generator))

    generators = (
        ["extractive"] if settings.generator == "extractive" else [settings.generator, "extractive"]
    )
    t = TEXT["kk"]

    with gr.Blocks(title="kazrag", analytics_enabled=False) as demo:
        turns = gr.State([])
        with gr.Row(equal_height=False):
            header = gr.HTML(_header("kk"), elem_classes="kz-header")
            lang = gr.Radio(
                list(LANGUAGES),
                value="Қазақша",
                show_label=False,
                container=False,
                elem_id="kz-lang",
                scale=0,
                min_width=400,
            )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chat = gr.Chatbot(
                    label=t["chat"],
                    elem_id="kz-chat",
                    height=560,
                    render_markdown=False,
                    sanitize_html=True,
                    feedback_options=["Like", "Dislike"],
                    layout="bubble",
                    buttons=[],  # "copy" would copy the message's HTML, not its text
                )
                with gr.Row():
                    box = gr.Textbox(
                        placeholder=t["placeholder"],
                        show_label=False,
                        lines=1,
                        max_lines=6,
                        scale=5,
                        elem_id="kz-input",
                        autofocus=True,
                        submit_btn=False,
                    )
                    send = gr.Button(t["send"], variant="primary", scale=1, elem_id="kz-send")
                    clear = gr.Button(t["clear"], scale=0, min_width=90, elem_id="kz-clear")
                examples = gr.Examples(EXAMPLES, inputs=[box], label=t["examples"])
            with gr.Column(scale=2):
                with gr.Accordion(t["sources"], open=True, elem_id="kz-sources-box") as src_box:
                    sources = gr.HTML(render_sources(settings, [], "kk"), elem_id="kz-sources")
                with gr.Accordion(t["documents"], open=False, elem_id="kz-docs-box") as docs_box:
                    upload = gr.File(
                        label=t["upload"],
                        file_types=list(library.ALLOWED_SUFFIXES),
                        file_count="single",
                        elem_id="kz-upload",
                        height=150,
                    )
                    status = gr.Markdown("", elem_id="kz-status")
                    doc_table = gr.HTML("", elem_id="kz-doc-list")
                    with gr.Row():
                        pick = gr.Dropdown(
                            [], label=t["remove_pick"], scale=3, elem_id="kz-remove-pick"
                        )
                        remove = gr.Button(
                            t["remove"], variant="stop", scale=1, elem_id="kz-remove"
                        )
                with gr.Accordion(t["settings"], open=False, elem_id="kz-settings-box") as set_box:
                    top_k = gr.Slider(
                        1, 20, value=settings.top_k, step=1, label=t["top_k"], elem_id="kz-top-k"
                    )
                    generator = gr.Dropdown(
                        generators,
                        value=generators[0],
                        label=t["generator"],
                        visible=len(generators) > 1,
                        elem_id="kz-generator",
                    )

        def code(label: str) -> str:
            return LANGUAGES.get(label, "kk")

        def on_load(label: str) -> tuple[str, Any, Any]:
            e = eng()
            docs = library.list_documents(e.settings, e.index)
            return (
                render_documents(docs, code(label)),
                gr.update(choices=_upload_choices(docs), value=None),
                render_sources(settings, [], code(label)),
            )

        def respond(
            message: str,
            history: list[dict[str, Any]],
            state: list[dict[str, Any]],
            k: float,
            gen: str | None,
            label: str,
        ) -> Iterator[tuple[Any, ...]]:
            lg = code(label)
            try:
                question = clean_question(message, settings.max_question_chars)
            except QuestionError as exc:
                if message.strip():
                    gr.Warning(f"{TEXT[lg]['bad_question']}: {exc}")
                yield message, history, state, gr.update()
                return
            engine_now = engine_for(gen)
            past = [Turn(s["answer"]["question"], s["answer"]["answer"]) for s in state]
            shown = [
                *history,
                {"role": "user", "content": render_text(question)},
                {
                    "role": "assistant",
                    "content": f'<span class="kz-note">{TEXT[lg]["thinking"]}</span>',
                },
            ]
            yield "", shown, state, gr.update()
            text, final = "", None
            try:
                for item in stream_answer(question, past, engine=engine_now, top_k=int(k)):
                    if isinstance(item, Answer):
                        final = item
                    else:
                        text += item
                        shown[-1] = {"role": "assistant", "content": render_text(text)}
                        yield "", shown, state, gr.update()
            except QuestionError as exc:
                gr.Warning(f"{TEXT[lg]['bad_question']}: {exc}")
                yield message, history, state, gr.update()
                return
            if final is None:
                return
            turn = len(state)
            record = final.to_json()
            record["retrieved"] = [{**h.to_json(), "title": h.chunk.title} for h in final.retrieved]
            state = [*state, {"answer": record, "generator": engine_now.settings.generator}]
            shown[-1] = {"role": "assistant", "content": render_answer(final, turn, lg)}
            yield "", shown, state, render_sources(settings, state, lg)

        def on_clear(label: str) -> tuple[Any, ...]:
            return [], [], render_sources(settings, [], code(label)), ""

        def on_like(state: list[dict[str, Any]], label: str, data: gr.LikeData) -> None:
            index = data.index if isinstance(data.index, int) else data.index[0]
            turn_no = index // 2  # every turn is exactly one user and one assistant message
            if not 0 <= turn_no < len(state):
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
            record_feedback(settings, state[turn_no], rating)
            gr.Info(TEXT[code(label)]["thanks"])

        def on_upload(
            path: str | None,
            label: str,
            progress: gr.Progress = gr.Progress(),  # noqa: B008
        ) -> tuple[Any, ...]:
            lg = code(label)
            e = eng()
            if not path:
                return gr.update(), gr.update(), gr.update(), gr.update()
            file = Path(path)
            try:
                library.check_type(file.name)
                library.check_size(file.name, file.stat().st_size)
                info = library.add_document(
                    e,
                    file.name,
                    file.read_bytes(),
                    progress=lambda f, msg: progress(f, desc=stage_text(msg, lg)),
                )
                message = TEXT[lg]["added"].format(
                    title=markdown_text(info.title), chunks=info.chunks
                )
            except (library.LibraryError, SourceError) as exc:
                message = _library_message(exc, lg)
            docs = library.list_documents(e.settings, e.index)
            return (
                None,
                message,
                render_documents(docs, lg),
                gr.update(choices=_upload_choices(docs), value=None),
            )

        def on_remove(doc_id: str | None, label: str) -> tuple[Any, ...]:
            lg = code(label)
            e = eng()
            if not doc_id:
                return gr.update(), gr.update(), gr.update()
            try:
                library.remove_document(e, doc_id)
                message = TEXT[lg]["removed"].format(doc_id=markdown_text(doc_id))
            except (library.LibraryError, SourceError) as exc:
                message = _library_message(exc, lg)
            docs = library.list_documents(e.settings, e.index)
            return (
                message,
                render_documents(docs, lg),
                gr.update(choices=_upload_choices(docs), value=None),
            )

        def on_language(label: str, state: list[dict[str, Any]]) -> tuple[Any, ...]:
            lg = code(label)
            tt = TEXT[lg]
            e = eng()
            docs = library.list_documents(e.settings, e.index)
            return (
                _header(lg),
                gr.update(label=tt["chat"]),
                gr.update(placeholder=tt["placeholder"]),
                gr.update(value=tt["send"]),
                gr.update(value=tt["clear"]),
                gr.update(label=tt["sources"]),
                gr.update(label=tt["documents"]),
                gr.update(label=tt["settings"]),
                gr.update(label=tt["upload"]),
                gr.update(label=tt["remove_pick"]),
                gr.update(value=tt["remove"]),
                gr.update(label=tt["top_k"]),
                gr.update(label=tt["generator"]),
                render_sources(settings, state, lg),
                render_documents(docs, lg),
                gr.update(label=tt["examples"]),
            )

        chat_io = dict(
            fn=respond,
            inputs=[box, chat, turns, top_k, generator, lang],
            outputs=[box, chat, turns, sources],
            concurrency_limit=4,
            show_progress="minimal",
        )
        box.submit(**chat_io)  # type: ignore[arg-type]
        send.click(**chat_io)  # type: ignore[arg-type]
        clear.click(on_clear, [lang], [chat, turns, sources, box], queue=False)
        # The chat's own trash icon clears the messages; the turns and the panel must follow.
        chat.clear(on_clear, [lang], [chat, turns, sources, box], queue=False)
        chat.like(on_like, [turns, lang], None)  # queued: gr.Info toasts need the queue
        upload.upload(
            on_upload,
            [upload, lang],
            [upload, status, doc_table, pick],
            concurrency_limit=1,
            show_progress_on=[status],
        )
        remove.click(
            on_remove,
            [pick, lang],
            [status, doc_table, pick],
            concurrency_limit=1,
            show_progress_on=[status],
        )
        lang.change(
            on_language,
            [lang, turns],
            [
                header,
                chat,
                box,
                send,
                clear,
                src_box,
                docs_box,
                set_box,
                upload,
                pick,
                remove,
                top_k,
                generator,
                sources,
                doc_table,
                examples.dataset,
            ],
            queue=False,
        )
        demo.load(on_load, [lang], [doc_table, pick, sources], queue=False)
    return demo


def _header(lang: str) -> str:
    t = TEXT[lang]
    return (
        f"<h1>kazrag · {html.escape(t['title'])}</h1><p>{html.escape(t['subtitle'])} "
        f'<a href="/docs" target="_blank">{html.escape(t["api"])}</a></p>'
    )


def mount_chat(app: FastAPI, settings: Settings, engine: Engine | None = None) -> FastAPI:
    """Mount the chat at ``/`` of a FastAPI app that already has the API routes.

    When the API has a token (``app.state.token``), the chat asks for it too (a login page: any
    user name, the token as password): its own routes under ``/gradio_api`` can ask, upload and
    remove documents, so leaving them open would bypass the token.
    """
    demo = build_ui(settings, engine)
    demo.queue(default_concurrency_limit=4)
    token: str | None = getattr(app.state, "token", None)

    def check(_user: str, password: str) -> bool:
        return bool(token) and hmac.compare_digest(password.encode(), str(token).encode())

    return gr.mount_gradio_app(
        app,
        demo,
        path="/",
        auth=check if token else None,
        max_file_size=library.MAX_UPLOAD_BYTES,
        css=CSS,
        head=_HEAD,
        theme=THEME,
        footer_links=["gradio"],
    )
