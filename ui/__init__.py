"""The Gradio chat, above the library: ``texts`` (every string, kk/ru/en), ``render`` (HTML),
``handlers`` (events), ``app`` (layout), ``style`` (CSS and the page script), ``login`` (the
token's login page), ``examples`` (the example questions) and ``server`` (``kazrag serve``: the
HTTP API with the chat mounted beside it)."""
