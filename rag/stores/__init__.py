"""Vector stores: one file per backend, chosen once from the ``store`` setting.

A new backend is one new file here implementing :class:`rag.stores.base.VectorStore` plus one
line in :data:`STORES`. Backends are imported only when chosen, so an unused backend's library
need not be installed.
"""

from __future__ import annotations

import importlib

from rag.stores.base import VectorStore

# name (the ``store`` setting and the manifest's ``store``) -> "module:class"
STORES: dict[str, str] = {
    "faiss": "rag.stores.faiss:FaissStore",
    "milvus": "rag.stores.milvus:MilvusDense",
}


def store_kind(store: str) -> str:
    """The backend a ``store`` setting names: a registered name (``faiss``) as is, ``milvus``
    for a Milvus URI (a path ending in ``.db`` for Milvus Lite, or ``http(s)://host:port``)."""
    if store.endswith(".db") or store.startswith(("http://", "https://", "tcp://")):
        return "milvus"
    return store


def store_class(name: str) -> type[VectorStore]:
    """The store class registered under ``name`` (or the backend of a store URI); a clear
    error for an unknown name."""
    name = store_kind(name)
    if name not in STORES:
        raise ValueError(
            f"unknown vector store {name!r}; choose faiss, a Milvus Lite file (path ending in "
            ".db) or a Milvus server URI (http://host:port)"
        )
    module, _, cls = STORES[name].partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


__all__ = ["STORES", "VectorStore", "store_class", "store_kind"]
