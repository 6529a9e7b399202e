"""The API docs page in Debian's chromium with every outside host blocked: ``/docs`` (Swagger
UI) must render the operations from files served by kazrag itself; ``/redoc`` leads there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from rag import api
from tests.helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TIMEOUT_MS,
    _playwright,
    running_server,
    small_engine,
)


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _playwright()  # skip before building anything
    engine = small_engine(tmp_path_factory.mktemp("docs"))
    with running_server(api.create_app(engine.settings, engine, token="")) as url:
        yield url


@pytest.fixture()
def offline_page(docs_url: str) -> Iterator[tuple[Any, list[str]]]:
    """A page whose requests to any host but 127.0.0.1 are aborted (and recorded)."""
    blocked: list[str] = []

    def only_loopback(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.route("**/*", only_loopback)
        yield page, blocked
        browser.close()


@pytest.mark.integration
def test_swagger_ui_renders_the_operations_offline(
    offline_page: tuple[Any, list[str]], docs_url: str
) -> None:
    page, blocked = offline_page
    page.goto(f"{docs_url}/docs")
    page.wait_for_selector(".opblock-summary-path")
    paths = {p.strip() for p in page.locator(".opblock-summary-path").all_inner_texts()}
    assert {"/api/ask", "/api/search", "/api/health", "/v1/chat/completions"} <= {
        p.replace("\u200b", "") for p in paths
    }
    assert blocked == []


@pytest.mark.integration
def test_redoc_leads_to_the_offline_docs(
    offline_page: tuple[Any, list[str]], docs_url: str
) -> None:
    page, blocked = offline_page
    page.goto(f"{docs_url}/redoc")
    page.wait_for_selector(".opblock-summary-path")
    assert page.url == f"{docs_url}/docs"
    assert blocked == []
