"""The chat with a scanned PDF: the source card says which page, and its link opens the
original file at that page (Debian's chromium driven by Playwright, server on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag.schema import Answer, Citation
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, _playwright, ask
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
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    from evals.experiments.ocr_quality import scanned_pdf
    from rag.pipeline import make_engine
    from tests.fakes import HashEmbedder
    from tests.helpers import PAGE_1, PAGE_2, running_server
    from ui.server import build_app

    _playwright()  # skip before building anything
    root = tmp_path_factory.mktemp("pages-ui")
    corpus = _corpus(root, scanned_pdf([PAGE_1, PAGE_2], dpi=300))
    engine = make_engine(_settings(root, corpus), embedder=HashEmbedder())
    with running_server(build_app(engine.settings, engine, token="")) as url:
        yield url, engine


@pytest.mark.integration
def test_the_chat_shows_the_page_and_opens_the_pdf_there(served: tuple[str, Any]) -> None:
    sync_playwright = _playwright()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="kk-KZ")
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(served[0] + "/")
        page.wait_for_selector("#kz-input textarea")
        ask(page, QUESTION, 1)
        card = page.locator("#kz-src-0-1")
        assert "ақсу.pdf" in card.inner_text()
        link = card.locator("a.kz-page")
        assert link.inner_text() == "2-бет"
        href = link.get_attribute("href")
        assert href is not None and href.endswith("/file#page=2")
        with context.expect_page() as opened:
            link.click()
        tab = opened.value
        tab.wait_for_load_state()
        assert tab.url == served[0] + href  # the original file, at page 2
        response = page.request.get(served[0] + href.split("#")[0])
        assert response.status == 200
        assert response.headers["content-type"] == "application/pdf"
        assert response.body().startswith(b"%PDF-")
        browser.close()
