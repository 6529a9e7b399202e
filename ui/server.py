"""``kazrag serve``: the HTTP API (``rag.api.create_app``) with the chat mounted at ``/``.

This lives with the chat, above the library: ``rag`` never imports ``ui``. One process holds
one engine (model and index) that the API and the chat share.
"""

from __future__ import annotations

import logging

import gradio as gr
from fastapi import FastAPI

from rag import library
from rag.api import TOKEN_ENV, create_app
from rag.pipeline import Engine, get_engine
from rag.settings import Settings
from ui.app import build_ui
from ui.login import add_login
from ui.style import CSS, HEAD, THEME

logger = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def mount_chat(app: FastAPI, settings: Settings, engine: Engine | None = None) -> FastAPI:
    """Mount the chat at ``/`` of a FastAPI app that already has the API routes.

    When the API has a token (``app.state.token``), the chat wants it too, through its own
    login page (``ui/login.py``): its routes under ``/gradio_api`` can ask, upload and remove
    documents, so leaving them open would bypass the token.
    """
    demo = build_ui(settings, engine)
    demo.queue(default_concurrency_limit=4)
    token: str | None = getattr(app.state, "token", None)
    user = add_login(app, token) if token else None
    return gr.mount_gradio_app(
        app,
        demo,
        path="/",
        auth_dependency=user,
        max_file_size=library.MAX_PDF_UPLOAD_BYTES,  # the handler checks each type's own
        css=CSS,
        head=HEAD,
        theme=THEME,
        footer_links=["gradio"],
    )


def build_app(
    settings: Settings, engine: Engine | None = None, token: str | None = None
) -> FastAPI:
    """The API with the chat mounted at ``/``: what ``kazrag serve`` runs.

    ``token`` defaults to ``$KAZRAG_API_TOKEN`` (an empty string: none).
    """
    return mount_chat(create_app(settings, engine, token), settings, engine)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860) -> int:
    """Load the engine, then serve the chat at ``/`` and the API beside it until interrupted."""
    import uvicorn

    if settings.batch_queries is None:  # many questions at once: encode them together
        settings = settings.replace(batch_queries=True)
    engine = get_engine(settings)  # load the model and index before the first request
    app = build_app(settings, engine)
    if host not in LOOPBACK and not app.state.token:
        logger.warning(
            "serving on %s without %s: anyone on the network can use it", host, TOKEN_ENV
        )
    print(f"kazrag: chat at http://{host}:{port}/  API docs at http://{host}:{port}/docs")
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
