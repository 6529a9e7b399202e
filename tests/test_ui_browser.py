"""The chat: rendering and feedback (plain tests), then the real thing in Debian's chromium
driven by Playwright against ``kazrag serve``'s app on 127.0.0.1.

Run as a module to refresh the README screenshot with the real model::

    .venv/bin/python -m tests.test_ui_browser --screenshot docs/screenshot.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from rag.schema import Answer, Citation
from rag.settings import Settings
from tests.helpers import (
    AUYL,
    CHROMIUM,
    CHROMIUM_ARGS,
    SEED_FILES,
    ask,
    small_engine,
)
from ui import app as ui

QUESTION = (
    "HAQ қозғалысы Қордай оқиғасынан кейін Қазақстан халқы ассамблеясының қызметін қалай бағалады?"
)


def _answer(text: str, citations: tuple[Citation, ...] = (), note: str | None = None) -> Answer:
    return Answer(
        question="q",
        answer=text,
        language="kk",
        abstained=not citations,
        citations=citations,
        retrieved=(),
        note=note,
    )


def _citation(marker: int = 1, title: str = "Құжат", start: int = 10, end: int = 20) -> Citation:
    return Citation(marker, "doc.txt", title, "c1", start, end, "quote")


# --- rendering: escaped text in, HTML out ----------------------------------------------------


def test_render_text_escapes_markup() -> None:
    assert ui.render_text('<img src=x onerror="alert(1)">\nжол') == (
        "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;<br>жол"
    )


def test_render_answer_links_known_markers_only() -> None:
    ans = _answer("Бірінші <b>сөйлем</b> [1]. Белгісіз [7].", (_citation(title='"<Атау>"'),))
    out = ui.render_answer(ans, turn=3)
    assert '<a class="kz-cite" href="#kz-src-3-1" title="&quot;&lt;Атау&gt;&quot;">[1]</a>' in out
    assert "[7]" in out and 'href="#kz-src-3-7"' not in out
    assert "&lt;b&gt;сөйлем&lt;/b&gt;" in out and "<b>" not in out


def test_render_answer_shows_the_note() -> None:
    out = ui.render_answer(_answer("Жауап [1]", (_citation(),), note="fallback <used>"), 0)
    assert '<span class="kz-note">fallback &lt;used&gt;</span>' in out


def test_render_passage_highlights_the_span_in_context() -> None:
    raw = "а" * 1000 + " <script>cited\nspan</script> " + "б" * 1000
    start = raw.index("<script>")
    end = raw.index("</script>") + len("</script>")
    out = ui.render_passage(raw, start, end, "ignored")
    assert "<mark>&lt;script&gt;cited span&lt;/script&gt;</mark>" in out
    assert out.startswith("…") and out.endswith("…")
    assert len(out) < 2 * ui.CONTEXT_CHARS + 200
    assert "<script>" not in out


@pytest.mark.parametrize(("start", "end"), [(-1, 3), (5, 2), (0, 10_000)])
def test_render_passage_falls_back_to_the_quote_on_bad_offsets(start: int, end: int) -> None:
    assert (
        ui.render_passage("short text", start, end, "a <quote>") == "<mark>a &lt;quote&gt;</mark>"
    )


def test_render_passage_without_the_document() -> None:
    assert ui.render_passage(None, 0, 3, "q") == "<mark>q</mark>"


def test_render_sources_cards_and_positions(tmp_path: Path) -> None:
    engine = small_engine(tmp_path)
    raw = (engine.settings.corpus / SEED_FILES[0]).read_text(encoding="utf-8")
    start = raw.index("HAQ қозғалысы негізсіз")
    citation = Citation(
        1, SEED_FILES[0], "Title <x>", "c", start, start + 40, raw[start : start + 40]
    )
    turns = [
        {"answer": _answer("Бірінші [1]", (citation,)).to_json()},
        {"answer": _answer("Екінші [1]", (citation,)).to_json()},
    ]
    out = ui.render_sources(engine.settings, turns, "kk")
    # Newest question first and open; every card has its id, its highlight and its position.
    assert out.index('id="kz-turn-1" open') < out.index('id="kz-turn-0"')
    assert 'id="kz-src-0-1"' in out and 'id="kz-src-1-1" open' in out
    assert f"<mark>{raw[start : start + 40]}</mark>" in out.replace("\n", " ")
    pct = round(100 * start / len(raw))
    assert f"{start}–{start + 40} таңба ({len(raw)} таңбаның {pct}%-ы)" in out
    assert "Title &lt;x&gt;" in out
    assert "of" in ui.render_sources(engine.settings, turns, "en")
    assert ui.TEXT["ru"]["sources_empty"] in ui.render_sources(engine.settings, [], "ru")


def test_every_language_has_every_label() -> None:
    keys = set(ui.TEXT["kk"])
    assert all(set(ui.TEXT[lang]) == keys for lang in ("ru", "en"))
    assert set(ui.LANGUAGES.values()) == {"kk", "ru", "en"}


def test_feedback_goes_to_a_settings_derived_jsonl(tmp_path: Path) -> None:
    settings = Settings(uploads=tmp_path / "data" / "uploads")
    assert ui.feedback_path(settings) == tmp_path / "data" / "feedback.jsonl"
    turn = {"answer": _answer("Жауап [1]", (_citation(),)).to_json(), "generator": "extractive"}
    ui.record_feedback(settings, turn, "up")
    ui.record_feedback(settings, turn, "down")
    rows = [json.loads(x) for x in ui.feedback_path(settings).read_text("utf-8").splitlines()]
    assert [r["rating"] for r in rows] == ["up", "down"]
    assert rows[0]["question"] == "q" and rows[0]["answer"] == "Жауап [1]"
    assert rows[0]["citations"][0]["doc_id"] == "doc.txt"


# --- the browser ----------------------------------------------------------------------------


@pytest.mark.integration
def test_ask_in_kazakh_and_open_the_source(page: Any) -> None:
    assert page.inner_text("#kz-send") == "Жіберу"  # Kazakh labels by default
    ask(page, QUESTION, 1)
    chat = page.inner_text("#kz-chat")
    assert QUESTION in chat and "[1]" in chat
    card = page.locator("#kz-src-0-1")
    page.evaluate("document.getElementById('kz-src-0-1').open = false")
    page.click("#kz-chat a.kz-cite >> nth=0")
    page.wait_for_function("document.getElementById('kz-src-0-1').open")
    assert card.is_visible()
    assert card.locator("mark").count() == 1 and card.locator("mark").inner_text().strip()
    assert "таңба" in card.inner_text() and "%" in card.inner_text()
    # Clicking a marker neither navigates nor opens a tab.
    assert "#" not in page.url and len(page.context.pages) == 1


@pytest.mark.integration
def test_follow_up_question_uses_the_history(page: Any) -> None:
    ask(page, QUESTION, 1)
    ask(page, "Ал бұл ұйыммен не істеу керек деп ұсынды?", 2)
    assert page.locator("#kz-src-1-1").count() == 1
    assert page.locator("details.kz-turn").count() == 2


@pytest.mark.integration
def test_question_markup_is_shown_as_text(page: Any) -> None:
    page.evaluate("window.__pwned = false")
    evil = '<img src=x onerror="window.__pwned = true"> Қазақстан халқы ассамблеясы <b>bold</b>'
    ask(page, evil, 1)
    assert page.locator("#kz-chat img[src=x]").count() == 0
    assert page.locator("#kz-chat b").count() == 0
    assert "<b>bold</b>" in page.inner_text("#kz-chat")
    assert page.evaluate("window.__pwned") is False


@pytest.mark.integration
def test_upload_a_document_and_ask_about_it(
    page: Any, served: tuple[str, Any], tmp_path: Path
) -> None:
    doc = tmp_path / "ауыл.txt"
    doc.write_text(AUYL, encoding="utf-8")
    page.click("#kz-docs-box button >> nth=0")
    page.wait_for_selector("#kz-doc-list table")
    rows = page.locator("#kz-doc-list tbody tr").count()
    page.set_input_files("#kz-upload input[type=file]", str(doc))
    page.wait_for_function(
        "n => document.querySelectorAll('#kz-doc-list tbody tr').length === n", arg=rows + 1
    )
    assert "Алтынбек ауылының тарихы" in page.inner_text("#kz-status")
    assert "ауыл.txt" in page.inner_text("#kz-doc-list")

    ask(page, "Алтынбек ауылының алғашқы мектебін кім ашқан?", 1)
    assert "Серікбай Оспанов" in page.inner_text("#kz-chat")
    assert "ауыл.txt" in page.inner_text("#kz-src-0-1")

    # Remove it again through the list.
    page.click("#kz-remove-pick input")
    page.click("ul[role=listbox] li >> text=ауыл.txt")
    page.click("#kz-remove")
    page.wait_for_function(
        "n => document.querySelectorAll('#kz-doc-list tbody tr').length === n", arg=rows
    )
    assert "ауыл.txt" in page.inner_text("#kz-status")
    assert "ауыл.txt" not in {d["doc_id"] for d in served[1].index.documents}


@pytest.mark.integration
def test_rejected_upload_shows_a_clear_message(page: Any, tmp_path: Path) -> None:
    bad = tmp_path / "бос.txt"
    bad.write_bytes(b"\x00\x01\x02\x03")
    page.click("#kz-docs-box button >> nth=0")
    page.wait_for_selector("#kz-doc-list table")
    rows = page.locator("#kz-doc-list tbody tr").count()
    page.set_input_files("#kz-upload input[type=file]", str(bad))
    page.wait_for_function(
        "document.querySelector('#kz-status').innerText.includes('қабылданбады')"
    )
    assert "binary" in page.inner_text("#kz-status")
    assert page.locator("#kz-doc-list tbody tr").count() == rows


@pytest.mark.integration
def test_feedback_and_clear(page: Any, served: tuple[str, Any]) -> None:
    path = ui.feedback_path(served[1].settings)
    before = path.read_text("utf-8").count("\n") if path.exists() else 0
    ask(page, QUESTION, 1)
    page.click("#kz-chat button[aria-label=Dislike]")
    page.wait_for_function("document.body.innerText.includes('Рақмет')")
    rows = [json.loads(x) for x in path.read_text("utf-8").splitlines()]
    assert len(rows) == before + 1
    assert rows[-1]["rating"] == "down" and rows[-1]["question"] == QUESTION
    assert rows[-1]["citations"]

    page.click("#kz-clear")
    page.wait_for_function("document.querySelectorAll('#kz-chat a.kz-cite').length === 0")
    assert ui.TEXT["kk"]["sources_empty"] in page.inner_text("#kz-sources")


@pytest.mark.integration
@pytest.mark.parametrize(("label", "lang"), [("Русский", "ru"), ("English", "en")])
def test_interface_languages(page: Any, label: str, lang: str) -> None:
    page.click(f"#kz-lang label:has-text('{label}')")
    page.wait_for_function(
        "t => document.querySelector('#kz-send').innerText.trim() === t", arg=ui.TEXT[lang]["send"]
    )
    assert page.get_attribute("#kz-input textarea", "placeholder") == ui.TEXT[lang]["placeholder"]
    assert ui.TEXT[lang]["sources"] in page.inner_text("#kz-sources-box")
    # Example questions come in all three languages whatever the interface language.
    examples = page.inner_text("body")
    assert all(q[:30] in examples for q in ui.EXAMPLES)


# --- the README screenshot (not a test) ------------------------------------------------------


def take_screenshot(out: Path, index: Path | None) -> None:
    """Serve the real model on the seed corpus, ask a Kazakh question, open [1], screenshot."""
    import tempfile

    from playwright.sync_api import sync_playwright

    from rag.api import build_app
    from rag.pipeline import make_engine
    from rag.settings import from_env
    from tests.helpers import running_server

    with tempfile.TemporaryDirectory() as tmp:
        settings = from_env(index=index, uploads=Path(tmp) / "uploads")
        engine = make_engine(settings)
        with running_server(build_app(settings, engine, token="")) as url, sync_playwright() as p:
            b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = b.new_page(viewport={"width": 1360, "height": 940}, device_scale_factor=1)
            page.set_default_timeout(120_000)
            page.goto(url + "/")
            page.wait_for_selector("#kz-input textarea")
            ask(page, QUESTION, 1)
            page.click("#kz-chat a.kz-cite >> nth=0")
            page.wait_for_timeout(1500)  # the card's flash animation
            page.evaluate("window.scrollTo(0, 0)")
            page.mouse.move(0, 0)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            b.close()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--screenshot", type=Path, required=True)
    parser.add_argument("--index", type=Path, help="index folder (default: the project's)")
    args = parser.parse_args()
    take_screenshot(args.screenshot, args.index)
    print(f"saved {args.screenshot}", file=sys.stderr)
