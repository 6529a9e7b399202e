"""What the chat shows, as HTML built from escaped text (pure functions: data in, HTML out).

The chatbot's markdown rendering is off and every piece of text from a question, an answer or a
document goes through :func:`html.escape`, so none of them can inject markup. A marker ``[n]``
becomes a link to the card of its passage in the sources panel (``#kz-src-<turn>-<n>``); the
page script (``ui/style.py``) opens that card, or shows it beside the answer on a narrow screen.
"""

from __future__ import annotations

import functools
import html
import re
import urllib.parse
from typing import Any

from rag import library
from rag.schema import MARKER_RE, Answer
from rag.settings import Settings
from rag.sources import SourceError
from ui.texts import TEXT

# Characters of the document shown on each side of a cited span in the sources panel.
CONTEXT_CHARS = 260
# Questions longer than this are cut in the sources panel's group titles.
TITLE_CHARS = 90

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()#!|~{}])")


def render_text(text: str) -> str:
    """Plain text as HTML: escaped, line breaks kept."""
    return html.escape(text).replace("\n", "<br>")


def markdown_text(text: str) -> str:
    """Text from a document or a file name, safe inside the status Markdown: HTML escaped and
    Markdown syntax backslashed, so a title like ``<img …>`` or ``[x](url)`` shows as typed."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text))


def copy_text(record: dict[str, Any], lang: str) -> str:
    """What the copy button puts on the clipboard: the answer, its note and its sources."""
    lines = [record["answer"]]
    if record.get("note"):
        lines.append(record["note"])
    if record["citations"]:
        lines.append("")
        lines.append(TEXT[lang]["sources"] + ":")
        lines += [f"[{c['marker']}] {c['title']} ({c['doc_id']})" for c in record["citations"]]
    return "\n".join(lines)


def _tools(record: dict[str, Any], lang: str, last: bool) -> str:
    """The buttons under an answer: copy (every answer) and regenerate (the last one only).

    They are links, like the markers, because the chatbot's sanitiser keeps links; the page
    script handles their clicks. The copied text rides along hidden, so copying needs no
    round trip and copies text, not the message's HTML.
    """
    t = TEXT[lang]
    tools = f'<a class="kz-copy" href="#kz-copy" role="button">{html.escape(t["copy"])}</a>'
    if last:
        tools += (
            f'<a class="kz-regen" href="#kz-regen" role="button">{html.escape(t["regenerate"])}</a>'
        )
    payload = html.escape(copy_text(record, lang))
    return f'<span class="kz-tools">{tools}<span class="kz-copytext">{payload}</span></span>'


def render_record(record: dict[str, Any], turn: int, lang: str = "kk", last: bool = False) -> str:
    """An answer (its JSON record) as HTML with each known marker ``[n]`` linked to its card.

    ``last`` marks the newest answer, the one that can be regenerated.
    """
    titles = {c["marker"]: c["title"] for c in record["citations"]}
    escaped = html.escape(record["answer"])

    def link(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if n not in titles:
            return m.group(0)
        title = html.escape(titles[n], quote=True)
        return f'<a class="kz-cite" href="#kz-src-{turn}-{n}" title="{title}">[{n}]</a>'

    body = MARKER_RE.sub(link, escaped).replace("\n", "<br>")
    if record.get("note"):
        body += f'<br><span class="kz-note">{html.escape(record["note"])}</span>'
    return body + _tools(record, lang, last)


def render_answer(ans: Answer, turn: int, lang: str = "kk", last: bool = False) -> str:
    """The answer as HTML with each known marker ``[n]`` linked to its card in the panel."""
    return render_record(ans.to_json(), turn, lang, last)


def render_messages(
    turns: list[dict[str, Any]], lang: str, last: bool = True
) -> list[dict[str, str]]:
    """The chat's messages for the stored turns (a reloaded page shows its conversation);
    ``last``: the newest answer gets the regenerate button."""
    out = []
    for i, turn in enumerate(turns):
        record = turn["answer"]
        newest = last and i == len(turns) - 1
        out.append({"role": "user", "content": render_text(record["question"])})
        out.append({"role": "assistant", "content": render_record(record, i, lang, newest)})
    return out


def render_header(lang: str) -> str:
    """The title, the one-line explanation and the link to the API docs."""
    t = TEXT[lang]
    return (
        f"<h1>kazrag · {html.escape(t['title'])}</h1><p>{html.escape(t['subtitle'])} "
        f'<a href="/docs" target="_blank">{html.escape(t["api"])}</a></p>'
    )


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


def _turn_cards(
    settings: Settings,
    i: int,
    record: dict[str, Any],
    t: dict[str, str],
    is_open: bool,
    lang: str = "kk",
) -> str:
    """The cards of one answer: its citations (``is_open``: shown open), or the closest
    passages when it abstained."""
    cards = [
        _card(
            f"kz-src-{i}-{c['marker']}",
            f"[{c['marker']}]",
            c,
            document_raw(settings, c["doc_id"]),
            t,
            is_open,
            lang,
        )
        for c in record["citations"]
    ]
    if not cards and record["retrieved"]:
        # An abstained answer points at the closest passages: show them (no highlight).
        cards.append(f'<p class="kz-note">{html.escape(t["closest"])}</p>')
        for h in record["retrieved"][:3]:
            raw = document_raw(settings, h["doc_id"])
            cards.append(_card(f"kz-hit-{i}-{h['rank']}", f"{h['rank']}.", h, raw, t, False, lang))
    if not cards:
        cards.append(f"<p>{html.escape(t['no_citations'])}</p>")
    return "".join(cards)


def render_sources(settings: Settings, turns: list[dict[str, Any]], lang: str) -> str:
    """The sources panel: one group per question (newest first and open), a card per marker."""
    t = TEXT[lang]
    if not turns:
        return f'<p class="kz-empty">{html.escape(t["sources_empty"])}</p>'
    groups = []
    last = len(turns) - 1
    for i in range(last, -1, -1):
        record = turns[i]["answer"]
        cards = _turn_cards(settings, i, record, t, is_open=i == last, lang=lang)
        question = record["question"]
        if len(question) > TITLE_CHARS:
            question = question[: TITLE_CHARS - 1] + "…"
        groups.append(
            f'<details class="kz-turn" id="kz-turn-{i}"{" open" if i == last else ""}>'
            f"<summary>{html.escape(t['turn'])} {i + 1}: {html.escape(question)}</summary>"
            + cards
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
