"""The chat's layout: which components there are, where, and which handler each event calls.

Texts are in ``ui/texts.py``, HTML in ``ui/render.py``, behaviour in ``ui/handlers.py``, style
and the page script in ``ui/style.py``; ``ui/server.py`` mounts this beside the HTTP API.
"""

from __future__ import annotations

import hashlib
from typing import Any

import gradio as gr

from rag import library
from rag.pipeline import Engine
from rag.settings import Settings
from ui.examples import EXAMPLES
from ui.handlers import LANGUAGE_OUTPUTS, ChatHandlers, threshold_info
from ui.render import render_header, render_sources
from ui.texts import DEFAULT_LANGUAGE, LANGUAGES, TEXT

# Where the conversation and the language are kept in the browser's localStorage.
TURNS_KEY = "kazrag-conversation"
LANGUAGE_KEY = "kazrag-language"


def _secret(settings: Settings) -> str:
    """The key Gradio encrypts the stored conversation with.

    Gradio sends it to the page, so it hides nothing from the browser's owner; it only has to
    stay the same across server restarts (a random one would lose every conversation) and
    differ between indexes, whose citations do not point into each other's documents.
    """
    return hashlib.sha256(f"kazrag:{settings.index.resolve()}".encode()).hexdigest()[:32]


def _generators(settings: Settings) -> list[str]:
    if settings.generator == "extractive":
        return ["extractive"]
    return [settings.generator, "extractive"]


def _chat_column(c: dict[str, Any], t: dict[str, str]) -> None:
    """The conversation, the question box with its buttons, and the examples."""
    c["chat"] = gr.Chatbot(
        label=t["chat"],
        elem_id="kz-chat",
        height=560,
        render_markdown=False,
        sanitize_html=True,
        feedback_options=["Like", "Dislike"],
        layout="bubble",
        buttons=[],  # copy and regenerate are links in each answer (ui/render.py)
    )
    with gr.Row():
        c["box"] = gr.Textbox(
            placeholder=t["placeholder"],
            show_label=False,
            lines=1,
            max_lines=6,
            scale=5,
            elem_id="kz-input",
            autofocus=True,
            submit_btn=False,
            interactive=False,  # until the page load has restored the conversation
        )
        c["send"] = gr.Button(
            t["send"], variant="primary", scale=1, elem_id="kz-send", interactive=False
        )
        c["new_chat"] = gr.Button(t["new_chat"], scale=0, min_width=160, elem_id="kz-new")
    # Pressed by the regenerate link of the last answer (the page script clicks it).
    c["regen"] = gr.Button("↻", elem_id="kz-regen-btn", elem_classes="kz-hidden")
    c["examples"] = gr.Examples(list(EXAMPLES), inputs=[c["box"]], label=t["examples"])


def _documents_box(c: dict[str, Any], t: dict[str, str]) -> None:
    """Upload, the document list, and removal with a confirmation."""
    with gr.Accordion(t["documents"], open=False, elem_id="kz-docs-box") as c["docs_box"]:
        c["upload"] = gr.File(
            label=t["upload"],
            file_types=list(library.ALLOWED_SUFFIXES),
            file_count="single",
            elem_id="kz-upload",
            height=150,
        )
        c["status"] = gr.Markdown("", elem_id="kz-status")
        c["doc_table"] = gr.HTML("", elem_id="kz-doc-list")
        with gr.Row():
            c["pick"] = gr.Dropdown([], label=t["remove_pick"], scale=3, elem_id="kz-remove-pick")
            c["remove"] = gr.Button(t["remove"], variant="stop", scale=1, elem_id="kz-remove")
        with gr.Row(visible=False, elem_id="kz-confirm") as c["confirm_row"]:
            c["confirm_text"] = gr.Markdown("", elem_id="kz-confirm-text")
            c["confirm_yes"] = gr.Button(t["confirm_yes"], variant="stop", elem_id="kz-confirm-yes")
            c["cancel"] = gr.Button(t["cancel"], elem_id="kz-confirm-no")


def _side_column(c: dict[str, Any], t: dict[str, str], h: ChatHandlers, lang: str) -> None:
    """Sources, documents and settings."""
    with gr.Accordion(t["sources"], open=True, elem_id="kz-sources-box") as c["src_box"]:
        c["sources"] = gr.HTML(render_sources(h.settings, [], lang), elem_id="kz-sources")
    _documents_box(c, t)
    with gr.Accordion(t["settings"], open=False, elem_id="kz-settings-box") as c["set_box"]:
        c["top_k"] = gr.Slider(
            1, 20, value=h.settings.top_k, step=1, label=t["top_k"], elem_id="kz-top-k"
        )
        # The support score sits between 0 and ~1.5 (cosine plus overlap and cue bonuses); a
        # threshold fixed in the settings outside that range widens it.
        c["threshold"] = gr.Slider(
            min(0.0, h.threshold),
            max(1.5, h.threshold),
            value=round(h.threshold, 2),
            step=0.01,
            label=t["threshold"],
            info=threshold_info(lang),
            elem_id="kz-threshold",
        )
        generators = _generators(h.settings)
        c["generator"] = gr.Dropdown(
            generators,
            value=generators[0],
            label=t["generator"],
            visible=len(generators) > 1,
            elem_id="kz-generator",
        )


def _layout(h: ChatHandlers) -> dict[str, Any]:
    """Every component, by name (the names :data:`LANGUAGE_OUTPUTS` uses)."""
    lang = DEFAULT_LANGUAGE
    t = TEXT[lang]
    c: dict[str, Any] = {
        "turns": gr.BrowserState([], storage_key=TURNS_KEY, secret=_secret(h.settings)),
        "saved_lang": gr.BrowserState(None, storage_key=LANGUAGE_KEY, secret="kazrag-language"),
    }
    with gr.Row(equal_height=False, elem_id="kz-top"):
        c["header"] = gr.HTML(render_header(lang), elem_classes="kz-header")
        c["lang"] = gr.Radio(
            list(LANGUAGES),
            value=next(iter(LANGUAGES)),
            show_label=False,
            container=False,
            elem_id="kz-lang",
            scale=0,
            min_width=400,
        )
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=340):
            _chat_column(c, t)
        with gr.Column(scale=2, min_width=340):
            _side_column(c, t, h, lang)
    return c


def _wire(c: dict[str, Any], h: ChatHandlers, demo: gr.Blocks) -> None:
    """Which handler each event calls."""
    settings_in = [c["top_k"], c["generator"], c["lang"], c["threshold"]]
    ask = dict(concurrency_limit=4, show_progress="minimal")
    asked = [c["box"], c["chat"], c["turns"], c["sources"]]
    for event in (c["box"].submit, c["send"].click):
        event(h.respond, [c["box"], c["chat"], c["turns"], *settings_in], asked, **ask)  # type: ignore[arg-type]
    c["regen"].click(
        h.regenerate,
        [c["chat"], c["turns"], *settings_in],
        asked[1:],
        **ask,  # type: ignore[arg-type]
    )
    # Loading an example re-applies the text box's construction-time properties, among them
    # interactive=False (it starts disabled until the page load has restored the conversation),
    # so the box stayed disabled after the example's answer: enable it again.
    c["examples"].load_input_event.then(
        lambda: gr.update(interactive=True), None, [c["box"]], queue=False, show_progress="hidden"
    )
    cleared = [c["chat"], c["turns"], c["sources"], c["box"]]
    c["new_chat"].click(h.on_clear, [c["lang"]], cleared, queue=False)
    # The chat's own trash icon clears the messages; the turns and the panel must follow.
    c["chat"].clear(h.on_clear, [c["lang"]], cleared, queue=False)
    c["chat"].like(h.on_like, [c["turns"], c["lang"]], None)  # queued: toasts need the queue
    docs = [c["doc_table"], c["pick"]]
    c["upload"].upload(
        h.on_upload,
        [c["upload"], c["lang"]],
        [c["upload"], c["status"], *docs],
        concurrency_limit=1,
        show_progress_on=[c["status"]],
    )
    confirm = [c["confirm_row"], c["confirm_text"]]
    c["remove"].click(h.ask_remove, [c["pick"], c["lang"]], confirm, queue=False)
    c["cancel"].click(lambda: gr.update(visible=False), None, [c["confirm_row"]], queue=False)
    c["confirm_yes"].click(lambda: gr.update(visible=False), None, [c["confirm_row"]], queue=False)
    c["confirm_yes"].click(
        h.on_remove,
        [c["pick"], c["lang"]],
        [c["status"], *docs],
        concurrency_limit=1,
        show_progress_on=[c["status"]],
    )
    outputs = [c[name].dataset if name == "examples" else c[name] for name in LANGUAGE_OUTPUTS]
    c["lang"].change(h.on_language, [c["lang"], c["turns"]], outputs, queue=False)
    demo.load(
        h.on_load,
        [c["turns"], c["saved_lang"]],
        [c["lang"], c["chat"], c["sources"], *docs, c["box"], c["send"]],
        queue=False,
    )


def build_ui(settings: Settings, engine: Engine | None = None) -> gr.Blocks:
    """The chat as a ``gr.Blocks`` (``ui.server.mount_chat`` mounts it; or ``.launch()`` it)."""
    handlers = ChatHandlers(settings, engine)
    with gr.Blocks(title="kazrag", analytics_enabled=False) as demo:
        components = _layout(handlers)
        _wire(components, handlers, demo)
    return demo
