"""The Gradio chat (``ui/app.py``), mounted by ``kazrag serve`` beside the HTTP API."""
