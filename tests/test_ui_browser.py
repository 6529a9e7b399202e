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

from tests.helpers import (
    AUYL,
    CHROMIUM,
    CHROMIUM_ARGS,
    TIMEOUT_MS,
    _playwright,
    ask,
    small_engine,
)
from ui.examples import EXAMPLES
from ui.feedback import feedback_path
from ui.texts import LANGUAGES, TEXT

QUESTION = (
    "HAQ қозғалысы Қордай оқиғасынан кейін Қазақстан халқы ассамблеясының қызметін қалай бағалады?"
)
TOKEN = "browser-test-token"


# --- the browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    from tests.helpers import running_server
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


def open_page(browser: Any, url: str, **context: Any) -> Any:
    """A page of the chat in a fresh browser context (its own localStorage and cookies)."""
    options = {"viewport": {"width": 1400, "height": 1000}, "locale": "kk-KZ", **context}
    pg = browser.new_context(**options).new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(url + "/")
    pg.wait_for_selector("#kz-input textarea:enabled")  # enabled once the page has loaded
    return pg


@pytest.fixture()
def page(browser: Any, served: tuple[str, Any]) -> Iterator[Any]:
    pg = open_page(browser, served[0])
    yield pg
    pg.context.close()


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
def test_an_example_is_asked_and_the_box_takes_the_next_question(page: Any) -> None:
    # A newcomer's first click: the example fills the box, Send answers it, and the box is
    # enabled again for the next question (loading an example used to re-apply the box's
    # starting state, disabled, so it stayed disabled after the answer).
    page.locator("button.gallery-item").first.click()
    page.wait_for_function(
        "t => document.querySelector('#kz-input textarea').value === t", arg=EXAMPLES[0]
    )
    page.click("#kz-send")
    page.wait_for_function("document.querySelectorAll('#kz-chat a.kz-cite').length > 0")
    page.wait_for_selector("#kz-input textarea:enabled", timeout=10_000)
    ask(page, "Ал бұл ұйыммен не істеу керек деп ұсынды?", 2)
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


# --- themes, phone width, conversation kept, answer tools ------------------------------------

# The contrast ratio (WCAG 2) of an element's text against what is behind it: the colours are
# read from the computed styles, drawn on a canvas to get sRGB whatever the CSS syntax, and the
# backgrounds of the element and its ancestors are composited until one is opaque.
CONTRAST_JS = """
el => {
  const ctx = document.createElement("canvas").getContext("2d", {willReadFrequently: true});
  function rgba(css) {
    ctx.clearRect(0, 0, 1, 1);
    ctx.fillStyle = "rgba(0, 0, 0, 0)";
    ctx.fillStyle = css;
    ctx.fillRect(0, 0, 1, 1);
    const d = ctx.getImageData(0, 0, 1, 1).data;
    return [d[0], d[1], d[2], d[3] / 255];
  }
  function over(top, under) {
    const a = top[3];
    return [0, 1, 2].map(i => top[i] * a + under[i] * (1 - a)).concat([1]);
  }
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const bg = rgba(getComputedStyle(e).backgroundColor);
    if (bg[3] > 0) layers.push(bg);
    if (bg[3] >= 1) break;
  }
  let back = [255, 255, 255, 1];
  for (const layer of layers.reverse()) back = over(layer, back);
  const fore = over(rgba(getComputedStyle(el).color), back);
  function lum(c) {
    const [r, g, b] = c.slice(0, 3).map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }
  const [hi, lo] = [lum(fore), lum(back)].sort((a, b) => b - a);
  return (hi + 0.05) / (lo + 0.05);
}
"""

# The element holding an answer's own text (the bubble of the newest bot message).
ANSWER_TEXT = "#kz-chat .message.bot >> nth=-1"


@pytest.mark.integration
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_answer_markers_and_quotes_are_readable_in_both_themes(
    browser: Any, served: tuple[str, Any], scheme: str, tmp_path: Path
) -> None:
    page = open_page(browser, served[0], color_scheme=scheme)
    try:
        # The chat follows the system's preference: Gradio marks the page dark, or not.
        assert page.evaluate("document.body.classList.contains('dark')") is (scheme == "dark")
        ask(page, QUESTION, 1)
        page.click("#kz-chat a.kz-cite >> nth=0")
        page.wait_for_function("document.getElementById('kz-src-0-1').open")
        page.wait_for_timeout(1700)  # the card's flash animation
        ratios = {
            "answer text": page.locator(ANSWER_TEXT).evaluate(CONTRAST_JS),
            "marker": page.locator("#kz-chat a.kz-cite >> nth=0").evaluate(CONTRAST_JS),
            "copy link": page.locator("#kz-chat a.kz-copy >> nth=0").evaluate(CONTRAST_JS),
            "highlighted quote": page.locator("#kz-src-0-1 mark").evaluate(CONTRAST_JS),
            "passage": page.locator("#kz-src-0-1 .kz-passage").evaluate(CONTRAST_JS),
        }
        assert all(r >= 4.5 for r in ratios.values()), ratios
        page.screenshot(path=str(tmp_path / f"chat-{scheme}.png"))
        assert (tmp_path / f"chat-{scheme}.png").stat().st_size > 10_000
    finally:
        page.context.close()


@pytest.mark.integration
def test_tapping_a_citation_on_a_phone_shows_the_source_beside_the_answer(
    browser: Any, served: tuple[str, Any], tmp_path: Path
) -> None:
    page = open_page(
        browser,
        served[0],
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    try:
        ask(page, QUESTION, 1)
        marker = page.locator("#kz-chat a.kz-cite >> nth=0")
        marker.scroll_into_view_if_needed()
        # At this width the sources panel is far below the chat, out of sight.
        assert page.locator("#kz-sources").evaluate("e => e.getBoundingClientRect().top") > 844
        before = page.evaluate("window.scrollY")
        marker.tap()
        page.wait_for_selector("#kz-sheet mark")
        quote = page.locator("#kz-sheet mark").evaluate(
            "e => { const r = e.getBoundingClientRect(); return [r.top, r.bottom]; }"
        )
        sheet_top = page.locator("#kz-sheet").evaluate("e => e.getBoundingClientRect().top")
        answer = page.locator(ANSWER_TEXT).evaluate(
            "e => { const r = e.getBoundingClientRect(); return [r.top, r.bottom]; }"
        )
        tapped = marker.evaluate("e => e.getBoundingClientRect().bottom")
        # The cited quote is on screen, at the top of the sheet (whole, unless it is taller).
        assert sheet_top <= quote[0] < 844 and (quote[1] <= 844 or quote[0] < sheet_top + 80)
        assert answer[1] > 0 and answer[0] < sheet_top, (answer, sheet_top)  # the answer too
        assert 0 < tapped <= sheet_top  # and the tapped marker is not under the sheet
        assert abs(page.evaluate("window.scrollY") - before) < 400  # no jump to the panel
        page.screenshot(path=str(tmp_path / "phone.png"))
        page.locator("#kz-sheet .kz-sheet-close").tap()
        page.wait_for_selector("#kz-sheet", state="hidden")
        assert page.inner_text("#kz-sheet .kz-sheet-close") == TEXT["kk"]["close"]
    finally:
        page.context.close()


@pytest.mark.integration
def test_the_conversation_survives_a_reload_until_a_new_one_starts(
    browser: Any, served: tuple[str, Any]
) -> None:
    page = open_page(browser, served[0])
    try:
        ask(page, QUESTION, 1)
        ask(page, "Ал бұл ұйыммен не істеу керек деп ұсынды?", 2)
        page.reload()
        page.wait_for_selector("#kz-chat a.kz-cite[href^='#kz-src-1-']")
        assert QUESTION in page.inner_text("#kz-chat")
        assert page.locator("details.kz-turn").count() == 2
        # The restored conversation goes on: a follow-up still sees the history.
        ask(page, "Ал оның себептері қандай?", 3)
        assert page.locator("details.kz-turn").count() == 3

        page.click("#kz-new")
        page.wait_for_function("document.querySelectorAll('#kz-chat a.kz-cite').length === 0")
        page.reload()
        page.wait_for_selector("#kz-sources .kz-empty")
        page.wait_for_timeout(1000)  # give a stored conversation time to come back (it must not)
        assert page.locator("#kz-chat a.kz-cite").count() == 0
        assert QUESTION not in page.inner_text("#kz-chat")
    finally:
        page.context.close()


@pytest.mark.integration
def test_copy_puts_the_answer_and_its_sources_on_the_clipboard(
    browser: Any, served: tuple[str, Any]
) -> None:
    page = open_page(browser, served[0], permissions=["clipboard-read", "clipboard-write"])
    try:
        ask(page, QUESTION, 1)
        answer_text = page.locator("#kz-chat a.kz-cite >> nth=0").evaluate(
            "a => a.closest('.message').innerText"
        )
        page.click("#kz-chat a.kz-copy >> nth=-1")
        page.wait_for_selector("#kz-chat .kz-tools.kz-done .kz-copied")
        copied = page.evaluate("navigator.clipboard.readText()")
        first_line = answer_text.strip().splitlines()[0]
        assert copied.startswith(first_line[:40]) and "[1]" in copied
        assert f"\n\n{TEXT['kk']['sources']}:\n[1] " in copied
        assert "<" not in copied  # text, not the message's HTML
        assert TEXT["kk"]["copied"] in page.inner_text("#kz-chat .kz-tools.kz-done")
    finally:
        page.context.close()


@pytest.mark.integration
def test_regenerate_with_a_stricter_threshold_replaces_the_answer(page: Any) -> None:
    ask(page, QUESTION, 1)
    assert page.locator("#kz-chat a.kz-regen").count() == 1
    page.click("#kz-settings-box button >> nth=0")
    # The accordion draws its content after the click (a CI run read it before it had).
    page.wait_for_function(
        "t => document.querySelector('#kz-settings-box').innerText.includes(t)",
        arg=TEXT["kk"]["threshold"],
    )
    info = page.inner_text("#kz-settings-box")
    assert TEXT["kk"]["threshold"] in info and "0.82" in info  # explained, calibrated value
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = page.locator("#kz-threshold input[type=number]")
    slider = page.locator("#kz-threshold input[type=range]")
    # The slider takes the typed value once its component listens, which can be a moment
    # after the accordion draws it (flaky runs regenerated with the old threshold, or typed
    # into a box that did not listen yet): type again until it has, a few times at most.
    for _ in range(5):
        box.fill("1.5")
        box.press("Enter")
        try:
            page.wait_for_function(
                "() => document.querySelector('#kz-threshold input[type=range]').value === '1.5'",
                timeout=2000,
            )
            break
        except PlaywrightTimeout:
            continue
    assert slider.input_value() == "1.5"
    page.click("#kz-chat a.kz-regen")
    # Still one question, now answered with an abstention (the evidence scores below 1.5).
    page.wait_for_function(
        "t => document.querySelector('#kz-chat').innerText.includes(t)",
        arg="Құжаттарда бұл сұраққа жауап жоқ",
    )
    assert page.locator("#kz-chat .message.user").count() == 1
    assert page.locator("details.kz-turn").count() == 1
    assert TEXT["kk"]["closest"] in page.inner_text("#kz-sources")


@pytest.mark.integration
@pytest.mark.parametrize("lang", ["kk", "ru", "en"])
def test_gradio_strings_follow_the_interface_language(page: Any, lang: str) -> None:
    label = next(k for k, v in LANGUAGES.items() if v == lang)
    page.click(f"#kz-lang label:has-text('{label}')")
    page.wait_for_function(
        "t => document.querySelector('#kz-send').innerText.trim() === t", arg=TEXT[lang]["send"]
    )
    # The upload drop zone draws the chat's text in place of Gradio's English one.
    page.click("#kz-docs-box button >> nth=0")
    zone = page.locator('#kz-upload [data-testid="upload-text"]')
    drawn = zone.evaluate("e => getComputedStyle(e, '::after').content")
    for key in ("drop", "or", "click_upload"):
        assert TEXT[lang][key] in drawn
    assert zone.evaluate("e => getComputedStyle(e).fontSize") == "0px"  # Gradio's text hidden
    # A refused question: the toast's title and its reason are in the interface language.
    page.fill("#kz-input textarea", "😀😀 ???")
    page.click("#kz-send")
    toast = page.locator(".toast-body").first
    toast.wait_for()
    title = toast.locator(".toast-title")
    assert TEXT[lang]["warning_title"] in title.evaluate(
        "e => getComputedStyle(e, '::before').content"
    )
    assert title.evaluate("e => getComputedStyle(e).fontSize") == "0px"  # "Warning" hidden
    message = toast.locator('[data-testid="toast-text"]').inner_text()
    assert message == f"{TEXT[lang]['bad_question']}: {TEXT[lang]['q_no_words']}"
    assert page.input_value("#kz-input textarea") == "😀😀 ???"  # the typed text is kept


@pytest.fixture(scope="module")
def served_with_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.helpers import running_server
    from ui.server import build_app

    engine = small_engine(tmp_path_factory.mktemp("ui-token"))
    with running_server(build_app(engine.settings, engine, token=TOKEN)) as url:
        yield url


@pytest.mark.integration
@pytest.mark.parametrize(("locale", "lang"), [("kk-KZ", "kk"), ("ru-RU", "ru"), ("en-US", "en")])
def test_login_page_asks_for_the_token_in_the_browser_language(
    browser: Any, served_with_token: str, locale: str, lang: str
) -> None:
    context = browser.new_context(locale=locale, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(served_with_token + "/")
        page.wait_for_selector("#kz-token")
        assert page.url.endswith("/login")
        body = page.inner_text("body")
        assert TEXT[lang]["login_hint"] in body and "KAZRAG_API_TOKEN" in body
        assert page.inner_text("label[for=kz-token]") == TEXT[lang]["login_token"]
        assert "username" not in page.content()
        page.fill("#kz-token", "wrong")
        page.click("button[type=submit]")
        page.wait_for_selector("p.error")
        assert page.inner_text("p.error") == TEXT[lang]["login_failed"]
        page.fill("#kz-token", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector("#kz-input textarea")  # in the chat
    finally:
        context.close()


# --- the README screenshot (not a test) ------------------------------------------------------


def take_screenshot(out: Path, index: Path | None, color_scheme: str = "light") -> None:
    """Serve the real model on the seed corpus, ask a Kazakh question, open [1], screenshot."""
    import tempfile

    from playwright.sync_api import sync_playwright

    from rag.pipeline import make_engine
    from rag.settings import from_env
    from tests.helpers import running_server
    from ui.server import build_app

    with tempfile.TemporaryDirectory() as tmp:
        settings = from_env(index=index, uploads=Path(tmp) / "uploads")
        engine = make_engine(settings)
        with running_server(build_app(settings, engine, token="")) as url, sync_playwright() as p:
            b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = b.new_page(
                viewport={"width": 1360, "height": 940},
                device_scale_factor=1,
                color_scheme=color_scheme,
                locale="kk-KZ",  # the interface follows the browser's language
            )
            page.set_default_timeout(120_000)
            page.goto(url + "/")
            page.wait_for_selector("#kz-input textarea:enabled")
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
    parser.add_argument("--color-scheme", choices=("light", "dark"), default="light")
    args = parser.parse_args()
    take_screenshot(args.screenshot, args.index, args.color_scheme)
    print(f"saved {args.screenshot}", file=sys.stderr)
