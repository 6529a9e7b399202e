"""Answer generators, chosen once per engine from the ``generator`` setting.

``extractive`` is the offline composer (:mod:`rag.generators.extractive`); ``openai`` and
``llamacpp`` are a language model behind an OpenAI-compatible endpoint (:mod:`rag.llm`), which
falls back to the composer when its answer cannot be checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rag.generators.base import AnswerGenerator, Generated, GenerationRequest
from rag.generators.extractive import ExtractiveGenerator

if TYPE_CHECKING:
    from rag.embedding import Embedder
    from rag.generation import GeneratorConfig
    from rag.settings import Settings


def make_generator(
    settings: Settings, embedder: Embedder, composer_config: GeneratorConfig | None = None
) -> AnswerGenerator:
    """The generator ``settings.generator`` names (the language-model one loads lazily).

    ``composer_config`` (default ``settings.composer``) configures the evidence-first composer,
    which is also the language model's fallback.
    """
    config = composer_config if composer_config is not None else settings.composer
    composer = ExtractiveGenerator(embedder, config)
    if settings.generator == "extractive":
        return composer
    from rag.llm import LLMGenerator  # langchain-openai only when a model is configured

    return LLMGenerator(settings, embedder, composer)


__all__ = [
    "AnswerGenerator",
    "ExtractiveGenerator",
    "Generated",
    "GenerationRequest",
    "make_generator",
]
