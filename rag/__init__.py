"""kazrag: question answering over Kazakh documents with exact citations."""

__version__ = "0.1.0"
