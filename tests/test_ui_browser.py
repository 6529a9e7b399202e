"""The chat in Debian's chromium, driven by Playwright against ``kazrag serve``'s app on
127.0.0.1 (the plain tests of rendering and handlers are in ``tests/test_ui.py``).

Run as a module to refresh the README screenshot with the real model::

    .venv/bin/python -m tests.test_ui_browser --screenshot docs/screenshot.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_library import AUYL, small_engine
from ui.examples import EXAMPLES
from ui.feedback import feedback_path
from ui.texts import TEXT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
QUESTION = (
    "HAQ қозғалысы Қордай оқиғасынан кейін Қазақстан халқы ассамблеясының қызметін қалай бағалады?"
)
TIMEOUT_MS = 60_000


# --- the browser ----------------------------------------------------------------------------


def _playwright() -> Any:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium chromium-driver")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(
            "playwright is not installed: pip install playwright (not `playwright install`)"
        )
    return sync_playwright


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    from tests.test_api import running_server
    from ui.server import build_app

    _playwright()  # skip before building anything
    engine = small_engine(tmp_path_factory.mktemp("ui"))
    with running_server(build_app(engine.settings, engine, token="")) as url:
        yield url, engine


@pytest.fixture(scope="module")
def browser(served: tuple[str, Any]) -> Iterator[Any]:
    sync_playwright = _playwright()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser: Any, served: tuple[str, Any]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="kk-KZ")
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(served[0] + "/")
    pg.wait_for_selector("#kz-input textarea")
    yield pg
    context.close()


def ask(page: Any, question: str, n_answers: int) -> Any:
    """Type a question, send it, and wait for the n-th answer to get its citation links."""
    page.fill("#kz-input textarea", question)
    page.click("#kz-send")
    page.wait_for_function(
        "n => document.querySelectorAll('#kz-chat a.kz-cite[href^=\"#kz-src-' + (n - 1) + '-\"]')"
        ".length > 0",
        arg=n_answers,
    )
    return page


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
    # Asked first: nothing is removed until the removal is confirmed.
    page.wait_for_selector("#kz-confirm-yes")
    assert "ауыл.txt" in page.inner_text("#kz-confirm-text")
    assert page.locator("#kz-doc-list tbody tr").count() == rows + 1
    page.click("#kz-confirm-yes")
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
    path = feedback_path(served[1].settings)
    before = path.read_text("utf-8").count("\n") if path.exists() else 0
    ask(page, QUESTION, 1)
    page.click("#kz-chat button[aria-label=Dislike]")
    page.wait_for_function("document.body.innerText.includes('Рақмет')")
    rows = [json.loads(x) for x in path.read_text("utf-8").splitlines()]
    assert len(rows) == before + 1
    assert rows[-1]["rating"] == "down" and rows[-1]["question"] == QUESTION
    assert rows[-1]["citations"]

    page.click("#kz-new")
    page.wait_for_function("document.querySelectorAll('#kz-chat a.kz-cite').length === 0")
    assert TEXT["kk"]["sources_empty"] in page.inner_text("#kz-sources")


@pytest.mark.integration
@pytest.mark.parametrize(("label", "lang"), [("Русский", "ru"), ("English", "en")])
def test_interface_languages(page: Any, label: str, lang: str) -> None:
    page.click(f"#kz-lang label:has-text('{label}')")
    page.wait_for_function(
        "t => document.querySelector('#kz-send').innerText.trim() === t", arg=TEXT[lang]["send"]
    )
    assert page.get_attribute("#kz-input textarea", "placeholder") == TEXT[lang]["placeholder"]
    assert TEXT[lang]["sources"] in page.inner_text("#kz-sources-box")
    # Example questions come in all three languages whatever the interface language.
    examples = page.inner_text("body")
    assert all(q[:30] in examples for q in EXAMPLES)


# --- the README screenshot (not a test) ------------------------------------------------------


def take_screenshot(out: Path, index: Path | None) -> None:
    """Serve the real model on the seed corpus, ask a Kazakh question, open [1], screenshot."""
    import tempfile

    from playwright.sync_api import sync_playwright

    from rag.pipeline import make_engine
    from rag.settings import from_env
    from tests.test_api import running_server
    from ui.server import build_app

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
