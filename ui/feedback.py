"""Likes and dislikes of answers, kept as JSON Lines beside the uploads folder."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from rag.settings import PROJECT_ROOT, Settings

# Handlers run in Gradio's worker threads: two ratings at once must not interleave their lines.
_FEEDBACK_LOCK = threading.Lock()


def feedback_path(settings: Settings) -> Path:
    """``feedback.jsonl`` beside the uploads folder (``data/`` by default, out of git)."""
    base = settings.uploads.parent if settings.uploads is not None else PROJECT_ROOT / "data"
    return base / "feedback.jsonl"


def record_feedback(settings: Settings, turn: dict[str, Any], rating: str) -> Path:
    """Append one rating with its question, answer and citations to the feedback file."""
    ans = turn["answer"]
    row = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rating": rating,
        "question": ans["question"],
        "answer": ans["answer"],
        "language": ans["language"],
        "abstained": ans["abstained"],
        "citations": ans["citations"],
        "generator": turn.get("generator"),
    }
    path = feedback_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _FEEDBACK_LOCK, path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
