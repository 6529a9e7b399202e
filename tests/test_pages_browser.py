"""The chat with a scanned PDF: the source card says which page, and its link opens the
original file at that page (Debian's chromium driven by Playwright, server on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag.schema import Answer, Citation
from tests.helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PAGE_1,
    PAGE_2,
    TIMEOUT_MS,
    TOKEN,
    _playwright,
    ask,
    running_server,
)
from tests.helpers import PAGES_QUESTION as QUESTION
from tests.helpers import pages_corpus as _corpus
from tests.helpers import pages_settings as _settings
from ui import render as ui


def test_source_card_shows_the_page_and_links_the_file() -> None:
    cited = Citation(1, "ақсу есеп.pdf", "Ақсу", "c1", 5, 9, "мәтін", page=2, page_end=3)
    ans = Answer("q", "Жауап [1]", "kk", False, (cited,), ())
    html = ui.render_sources(
        _settings(Path("/nowhere"), Path("/nowhere")), [{"answer": ans.to_json()}], "en"
    )
    assert "p. 2–3</a>" in html
    assert (
        'href="/api/documents/%D0%B0%D2%9B%D1%81%D1%83%20%D0%B5%D1%81%D0%B5%D0%BF.pdf/file#page=2"'
        in html
    )
    unpaged = Answer(
        "q", "Жауап [1]", "kk", False, (Citation(1, "a.txt", "A", "c", 0, 1, "x"),), ()
    )
    assert "kz-page" not in ui.render_sources(
        _settings(Path("/nowhere"), Path("/nowhere")), [{"answer": unpaged.to_json()}], "en"
    )


def test_documents_list_flags_low_confidence_ocr_pages() -> None:
    from rag.library import DocumentInfo

    doc = DocumentInfo("s.pdf", "S", 10, 1, "upload", True, "pdf", 3, (1, 2, 3), (2,))
    out = ui.render_documents([doc], "en")
    assert "PDF, 3 pp., OCR 3" in out and "low OCR confidence: p. 2" in out
    assert "kz-ocr-low" not in ui.render_documents(
        [DocumentInfo("a.txt", "A", 1, 1, "seed", False)], "en"
    )


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An index of one seed text and the scanned two-page PDF (OCR'd once for the module)."""
    from evals.experiments.ocr_quality import scanned_pdf
    from rag.pipeline import make_engine
    from tests.fakes import HashEmbedder

    _playwright()  # skip before building anything
    root = tmp_path_factory.mktemp("pages-ui")
    corpus = _corpus(root, scanned_pdf([PAGE_1, PAGE_2], dpi=300))
    return make_engine(_settings(root, corpus), embedder=HashEmbedder())


@pytest.fixture(scope="module")
def served(engine: Any) -> Iterator[str]:
    from ui.server import build_app

    with running_server(build_app(engine.settings, engine, token="")) as url:
        yield url


@pytest.fixture(scope="module")
def served_with_token(engine: Any) -> Iterator[str]:
    from ui.server import build_app

    with running_server(build_app(engine.settings, engine, token=TOKEN)) as url:
        yield url


def _open_page_link(context: Any, url: str) -> str:
    """Ask the page-2 question in the chat, click the source's page link; the link's path."""
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url + "/")
    page.wait_for_selector("#kz-input textarea")
    ask(page, QUESTION, 1)
    card = page.locator("#kz-src-0-1")
    assert "ақсу.pdf" in card.inner_text()
    link = card.locator("a.kz-page")
    assert link.inner_text() == "2-бет"
    href = link.get_attribute("href")
    assert href is not None and href.endswith("/file#page=2")
    with (
        context.expect_event("response", predicate=lambda r: "/file" in r.url) as got,
        context.expect_page() as opened,
    ):
        link.click()
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.url == url + href  # the original file, at page 2
    # What the browser itself got for the click (with whatever cookie the context holds).
    assert got.value.status == 200
    assert got.value.headers["content-type"] == "application/pdf"
    return str(href)


def _is_the_pdf(response: Any) -> None:
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.body().startswith(b"%PDF-")


@pytest.mark.integration
def test_the_chat_shows_the_page_and_opens_the_pdf_there(served: str) -> None:
    sync_playwright = _playwright()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="kk-KZ")
        href = _open_page_link(context, served)
        _is_the_pdf(context.request.get(served + href.split("#")[0]))
        browser.close()


@pytest.mark.integration
def test_with_a_token_the_logged_in_chat_opens_the_pdf_and_nobody_else_does(
    served_with_token: str,
) -> None:
    url = served_with_token
    sync_playwright = _playwright()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="kk-KZ")
        login = context.new_page()
        login.set_default_timeout(TIMEOUT_MS)
        login.goto(url + "/")  # sent to the login page
        login.fill("#kz-token", TOKEN)
        login.click("button[type=submit]")
        login.wait_for_selector("#kz-input textarea")
        login.close()
        href = _open_page_link(context, url)
        file_url = url + href.split("#")[0]
        # The opened tab's request carried the login cookie and no Authorization header.
        _is_the_pdf(context.request.get(file_url))
        stranger = browser.new_context()  # no cookie
        assert stranger.request.get(file_url).status == 401
        _is_the_pdf(stranger.request.get(file_url, headers={"Authorization": f"Bearer {TOKEN}"}))
        browser.close()
