"""The Milvus store: chunks, their vectors and sentence vectors in Milvus, shared by replicas.

The only module of the project that imports ``pymilvus``. One store is four collections named
``<prefix>_meta``, ``<prefix>_documents``, ``<prefix>_chunks`` and ``<prefix>_sentences``
(prefix ``kazrag`` by default):

- ``meta``: the index metadata (format version, model, encoder backend, dimension, chunking,
  analyzer) that every replica checks before it serves, and the store's *generation*, a token
  that changes with every write or removal, so a replica knows when to refresh what it caches.
- ``documents``: one row per document, its manifest record (title, sha256, pages…). It is
  written *after* the document's chunks and sentences, so a document whose write was cut off
  has no record and :meth:`MilvusStore.stored` says it is not stored.
- ``chunks``: primary key ``Chunk.chunk_id`` (a content hash), the chunk's text, document id,
  title, raw offsets and page as scalar fields, its sentences (JSON), its dense vector
  (``FLOAT_VECTOR``, inner product on unit vectors = cosine, exact ``FLAT`` index: the same
  top-k as the FAISS flat index) and its Kazakh BM25 term frequencies from kazrag's own analyzer
  (``SPARSE_FLOAT_VECTOR``: term hash -> count; per-chunk term statistics, see
  :func:`term_counts`).
- ``sentences``: one row per chunk sentence (doc id, raw offsets, unit vector), read by the
  evidence-first composer for the documents it quotes.

Writes are upserts keyed by content hashes (:class:`rag.rows.RowSink`): writing the same
:class:`~rag.rows.DocumentRows` twice leaves the same rows.

The URI chooses the deployment: a path ending in ``.db`` is Milvus Lite embedded in this process
(one process only), ``http://host:port`` a Milvus server or cluster (or ``milvus-lite server``).
Every failure to reach it is raised as :class:`StoreUnreachable` (the API answers 503); the
client is made again on the next call, so a replica reconnects once the server is back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from rag.rows import DocumentRows
from rag.schema import Chunk, Sentence
from rag.stores.base import StoreUnreachable

__all__ = ["MilvusDense", "MilvusStore", "StoreMismatch", "StoreUnreachable", "is_milvus_uri"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PREFIX = "kazrag"
# Bumped when the collections' layout changes; a replica refuses a store of another version.
STORE_FORMAT = 1
# Recorded in the store's metadata but not required to match: when it was made, and the
# encoder backend that wrote it (ONNX and torch vectors agree to float rounding).
INFORMATIONAL = ("created", "backend")
# Milvus needs a vector field in every collection; the meta and documents collections hold one
# of this size that is never searched.
_STUB_DIM = 2
_STUB = [0.0, 1.0]
_VARCHAR = 65_535
# Seconds a call to a server may take before the store counts as unreachable.
TIMEOUT = 10.0
# Rows per upsert call and per query-iterator page (gRPC messages stay well under 64 MB).
BATCH = 256


class StoreMismatch(ValueError):
    """The store holds an index built with other settings (another model, analyzer…)."""


def is_milvus_uri(uri: str) -> bool:
    """Whether ``uri`` names a Milvus store: a ``.db`` file (Lite) or an http(s)/tcp URI."""
    from rag.stores import store_kind

    return store_kind(uri) == "milvus"


def term_hash(term: str) -> int:
    """A stable non-negative 31-bit id for an analysed term (the sparse vector's dimension)."""
    return zlib.crc32(term.encode("utf-8")) & 0x7FFFFFFF


def term_counts(terms: Sequence[str]) -> dict[int, float]:
    """The sparse vector of a chunk: term hash -> count (the BM25 term statistics of the chunk).

    Counts, not BM25 weights: a weight depends on the IDF and the average length of the whole
    collection, which change with every document added through any replica; the counts do not.
    A chunk without terms gets one entry at id 0 (Milvus rejects empty sparse rows).
    """
    counts = Counter(term_hash(t) for t in terms)
    return {k: float(v) for k, v in counts.items()} or {0: 1.0}


def sentence_key(doc_id: str, start: int, end: int) -> str:
    """The primary key of a sentence row."""
    return hashlib.sha1(f"{doc_id}\0{start}\0{end}".encode()).hexdigest()


class MilvusStore:
    """A kazrag index held in Milvus (see the module doc); also a :class:`rag.rows.RowSink`."""

    def __init__(self, uri: str, prefix: str = DEFAULT_PREFIX, timeout: float = TIMEOUT) -> None:
        if not is_milvus_uri(uri):
            raise ValueError(f"{uri!r} is not a Milvus URI (a path ending in .db, or http://…)")
        self.uri = str(Path(uri).expanduser()) if uri.endswith(".db") else uri
        self.prefix = prefix
        self.timeout = timeout
        self._client: Any = None
        # Milvus Lite runs in this process and is not safe to call from several threads at
        # once (the API answers in a thread pool); a server is, but one lock costs little.
        self._lock = threading.RLock()

    # -- plumbing ----------------------------------------------------------------------------
    def name(self, what: str) -> str:
        """The collection name of ``what`` (meta, documents, chunks, sentences)."""
        return f"{self.prefix}_{what}"

    def _connect(self) -> Any:
        # gRPC's C core prints to stderr when a server closes an idle channel ("too many
        # pings"); the next call reconnects (see _call), so that is noise, not news.
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
        try:
            from pymilvus import MilvusClient
        except ImportError as exc:  # not a connection problem: say what to install
            raise ValueError(
                f"the Milvus store needs pymilvus and milvus-lite ({exc}); "
                "install them with `make setup` or `pip install pymilvus milvus-lite`"
            ) from exc

        # pymilvus logs every failed call at ERROR with a traceback; kazrag raises and logs
        # StoreUnreachable with the reason instead, once.
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
        if self.uri.endswith(".db"):
            # Milvus Lite serves gRPC inside this process and logs a traceback for each call it
            # does not implement (the query iterator asks for a timestamp, then does without).
            logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
            # It logs a locked file with a traceback too; StoreUnreachable says it in one line.
            logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)
            Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
            client = MilvusClient(self.uri)
        else:
            client = MilvusClient(uri=self.uri, timeout=self.timeout)
        for what in ("meta", "documents", "chunks", "sentences"):
            self._load(client, what)
        return client

    def _load(self, c: Any, what: str) -> None:
        """Load a collection into memory: a reopened store (or a restarted server) starts
        with its collections released, and released collections refuse queries."""
        name = self.name(what)
        if c.has_collection(name) and "NotLoad" in str(c.get_load_state(name).get("state")):
            c.load_collection(name)

    def _call(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(client)``; a failure drops the client and tries once more on a new one,
        then becomes :class:`StoreUnreachable` (the next call connects again: that is how a
        replica reconnects after a restart).

        The one retry is for a channel the server closed while it was idle (a restarted
        server, or gRPC's "too many pings" GOAWAY): every call here is an idempotent read or
        upsert, so running it again is safe.
        """
        with self._lock:
            try:
                return self._attempt(fn)
            except (StoreMismatch, ValueError, TypeError):
                raise
            except Exception:  # pymilvus and gRPC raise many kinds: all mean "not now"
                self._drop_client()
            return self._attempt(fn, last=True)

    def _attempt(self, fn: Callable[[Any], T], last: bool = False) -> T:
        connecting = self._client is None
        try:
            if self._client is None:
                self._client = self._connect()
            return fn(self._client)
        except (StoreMismatch, ValueError, TypeError):
            raise
        except Exception as exc:
            if not last:
                raise
            self._drop_client()
            hint = ""
            if connecting and self.uri.endswith(".db"):
                hint = (
                    "; only one process may open a Milvus Lite file: is another kazrag "
                    "using it? To share a store, run `milvus-lite server --data-dir DIR "
                    "--host 127.0.0.1 --port 19530` and use --store http://127.0.0.1:19530"
                )
            raise StoreUnreachable(
                f"the Milvus store at {self.uri} is unavailable "
                f"({type(exc).__name__}: {str(exc)[:200]}){hint}"
            ) from exc

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a broken channel may fail too; it is dropped anyway
                logger.debug("closing the Milvus client failed", exc_info=True)

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        with self._lock:
            self._drop_client()

    # -- metadata and generation -------------------------------------------------------------
    def _meta_value(self, key: str) -> str | None:
        def get(c: Any) -> str | None:
            if not c.has_collection(self.name("meta")):
                return None
            rows = c.get(self.name("meta"), ids=[key], output_fields=["value"])
            return str(rows[0]["value"]) if rows else None

        return self._call(get)

    def metadata(self) -> dict[str, Any] | None:
        """The index metadata, or ``None`` for an empty store (never initialised)."""
        raw = self._meta_value("index")
        return None if raw is None else dict(json.loads(raw))

    def generation(self) -> str:
        """A token that changes whenever a document is written or removed through any replica."""
        return self._meta_value("generation") or ""

    def _set_meta(self, c: Any, key: str, value: str) -> None:
        c.upsert(self.name("meta"), [{"key": key, "value": value, "stub": _STUB}])
        c.flush(self.name("meta"))

    def _bump(self, c: Any) -> None:
        self._set_meta(c, "generation", uuid.uuid4().hex)

    def check(self, expected: Mapping[str, Any]) -> dict[str, Any] | None:
        """Raise :class:`StoreMismatch` naming each setting of ``expected`` the store differs in.

        Returns the store's metadata (``None`` for an empty store).
        """
        meta = self.metadata()
        if meta is None:
            return None
        problems = [
            f"{key}: the store has {meta.get(key)!r}, this replica uses {value!r}"
            for key, value in expected.items()
            if meta.get(key) != value
        ]
        if problems:
            raise StoreMismatch(
                f"the Milvus store at {self.uri} (collections {self.prefix}_*) was built with "
                "other settings (" + "; ".join(problems) + "). Serve it with the settings it "
                "was built with, or rebuild it: kazrag index --store URI --replace"
            )
        return meta

    def create(self, meta: Mapping[str, Any]) -> None:
        """Create the collections (if missing) and record ``meta``; checks an existing store.

        ``meta`` must hold ``dimension``; ``store_format`` is added.
        """
        meta = {**meta, "store_format": STORE_FORMAT}
        held = self.check({k: v for k, v in meta.items() if k not in INFORMATIONAL})
        if held is not None and "created" in held:  # a store keeps the day it was made
            meta["created"] = held["created"]
        dim = int(meta["dimension"])

        def make(c: Any) -> None:
            from pymilvus import DataType, MilvusClient

            def collection(what: str, fields: list[tuple[str, Any, dict[str, Any]]]) -> None:
                if c.has_collection(self.name(what)):
                    return
                schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
                for field, kind, extra in fields:
                    schema.add_field(field, kind, **extra)
                params = c.prepare_index_params()
                for field, kind, _ in fields:
                    if kind == DataType.FLOAT_VECTOR:
                        # Exact search: the same top-k as the FAISS flat index. A large
                        # collection would take HNSW (docs/deploy.md, sizing).
                        params.add_index(field, index_type="FLAT", metric_type="IP")
                    elif kind == DataType.SPARSE_FLOAT_VECTOR:
                        # Nested params, or Milvus drops them; the default drop ratio is refused.
                        params.add_index(
                            field,
                            index_type="SPARSE_INVERTED_INDEX",
                            metric_type="IP",
                            params={"params": {"drop_ratio_build": 0.0}},
                        )
                c.create_collection(self.name(what), schema=schema, index_params=params)

            text = {"max_length": _VARCHAR}
            key = {"max_length": 512}
            stub = {"dim": _STUB_DIM}
            collection(
                "meta",
                [
                    ("key", DataType.VARCHAR, {"is_primary": True, "max_length": 64}),
                    ("value", DataType.VARCHAR, text),
                    ("stub", DataType.FLOAT_VECTOR, stub),
                ],
            )
            collection(
                "documents",
                [
                    ("doc_id", DataType.VARCHAR, {"is_primary": True, **key}),
                    ("sha256", DataType.VARCHAR, {"max_length": 64}),
                    ("record", DataType.VARCHAR, text),
                    ("stub", DataType.FLOAT_VECTOR, stub),
                ],
            )
            collection(
                "chunks",
                [
                    ("chunk_id", DataType.VARCHAR, {"is_primary": True, "max_length": 128}),
                    ("doc_id", DataType.VARCHAR, key),
                    ("ordinal", DataType.INT64, {}),
                    ("title", DataType.VARCHAR, {"max_length": 2048}),
                    ("text", DataType.VARCHAR, text),
                    ("start", DataType.INT64, {}),
                    ("end", DataType.INT64, {}),
                    ("page", DataType.INT64, {"nullable": True}),
                    ("page_end", DataType.INT64, {"nullable": True}),
                    ("sentences", DataType.VARCHAR, text),
                    ("vector", DataType.FLOAT_VECTOR, {"dim": dim}),
                    ("terms", DataType.SPARSE_FLOAT_VECTOR, {}),
                ],
            )
            collection(
                "sentences",
                [
                    ("key", DataType.VARCHAR, {"is_primary": True, "max_length": 64}),
                    ("doc_id", DataType.VARCHAR, key),
                    ("start", DataType.INT64, {}),
                    ("end", DataType.INT64, {}),
                    ("vector", DataType.FLOAT_VECTOR, {"dim": dim}),
                ],
            )
            self._set_meta(c, "index", json.dumps(dict(meta), ensure_ascii=False))
            if not c.get(self.name("meta"), ids=["generation"], output_fields=["key"]):
                self._bump(c)

        self._call(make)

    def drop(self) -> None:
        """Delete the store's collections (``kazrag index --replace``)."""

        def drop(c: Any) -> None:
            for what in ("chunks", "sentences", "documents", "meta"):
                if c.has_collection(self.name(what)):
                    c.drop_collection(self.name(what))

        self._call(drop)

    # -- RowSink -----------------------------------------------------------------------------
    def stored(self, documents: Mapping[str, str]) -> set[str]:
        """Which documents (doc_id -> sha256) the store holds complete and unchanged."""
        if not documents:
            return set()
        ids = list(documents)

        def get(c: Any) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for i in range(0, len(ids), BATCH):
                out += c.get(
                    self.name("documents"), ids=ids[i : i + BATCH], output_fields=["sha256"]
                )
            return out

        return {
            str(r["doc_id"]) for r in self._call(get) if documents.get(r["doc_id"]) == r["sha256"]
        }

    def write(self, rows: Sequence[DocumentRows]) -> None:
        """Upsert whole documents: the record goes last, after its chunks and sentences.

        Earlier rows of the same documents are deleted first (a changed document has other
        chunk ids), then the record is removed too, so a write cut off halfway leaves a
        document that :meth:`stored` reports as not stored.
        """
        if not rows:
            return
        from rag.index import search_text
        from rag.lexical import LexicalConfig, analyze

        meta = self.metadata() or {}
        lexical = LexicalConfig.from_json(meta.get("lexical", {}))
        doc_ids = [r.doc_id for r in rows]
        chunk_rows: list[dict[str, Any]] = []
        sentence_rows: list[dict[str, Any]] = []
        for doc in rows:
            for i, (chunk, vec) in enumerate(zip(doc.chunks, doc.chunk_vectors, strict=True)):
                chunk_rows.append(_chunk_row(chunk, i, vec, analyze(search_text(chunk), lexical)))
            for s, vec in zip(doc.sentences, doc.sentence_vectors, strict=True):
                sentence_rows.append(
                    {
                        "key": sentence_key(doc.doc_id, s.start, s.end),
                        "doc_id": doc.doc_id,
                        "start": s.start,
                        "end": s.end,
                        "vector": np.asarray(vec, dtype=np.float32).tolist(),
                    }
                )
        records = [
            {
                "doc_id": r.doc_id,
                "sha256": r.sha256,
                "record": json.dumps(dict(r.record), ensure_ascii=False),
                "stub": _STUB,
            }
            for r in rows
        ]

        def write(c: Any) -> None:
            self._delete_docs(c, doc_ids, records_too=True)
            for name, batch in (("chunks", chunk_rows), ("sentences", sentence_rows)):
                for i in range(0, len(batch), BATCH):
                    c.upsert(self.name(name), batch[i : i + BATCH])
                c.flush(self.name(name))
            c.upsert(self.name("documents"), records)
            c.flush(self.name("documents"))
            self._bump(c)

        self._call(write)
        logger.info("wrote %d documents (%d chunks) to %s", len(rows), len(chunk_rows), self.uri)

    def remove(self, doc_ids: Sequence[str]) -> None:
        """Delete every row of these documents (unknown ids are ignored)."""
        if not doc_ids:
            return

        def remove(c: Any) -> None:
            self._delete_docs(c, list(doc_ids), records_too=True)
            self._bump(c)

        self._call(remove)

    def _delete_docs(self, c: Any, doc_ids: list[str], records_too: bool) -> None:
        if records_too:
            # The record first: from here on the document no longer counts as stored.
            c.delete(self.name("documents"), ids=doc_ids)
            c.flush(self.name("documents"))
        for what in ("chunks", "sentences"):
            c.delete(self.name(what), filter=_doc_filter(doc_ids))
            c.flush(self.name(what))

    # -- reading -----------------------------------------------------------------------------
    def documents(self) -> list[dict[str, Any]]:
        """Every document record, ordered by doc id."""
        rows = self._call(lambda c: list(self._scan(c, "documents", ["record"])))
        return sorted((json.loads(r["record"]) for r in rows), key=lambda r: str(r["doc_id"]))

    def chunks(self) -> list[Chunk]:
        """Every chunk (text and offsets, no vectors), ordered by doc id and position."""
        fields = ["doc_id", "ordinal", "title", "text", "start", "end", "page", "page_end"]
        rows = self._call(lambda c: list(self._scan(c, "chunks", [*fields, "sentences"])))
        rows.sort(key=lambda r: (str(r["doc_id"]), int(r["ordinal"])))
        return [_chunk_of(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Rows per collection."""

        def count(c: Any) -> dict[str, int]:
            out = {}
            for what in ("documents", "chunks", "sentences"):
                res = c.query(self.name(what), filter="", output_fields=["count(*)"])
                out[what] = int(res[0]["count(*)"])
            return out

        return self._call(count)

    def _scan(self, c: Any, what: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        it = c.query_iterator(self.name(what), batch_size=BATCH, filter="", output_fields=fields)
        try:
            while batch := it.next():
                yield from batch
        finally:
            it.close()

    def search(self, vectors: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Per query vector, up to ``k`` (chunk_id, cosine) pairs, best first."""
        if k <= 0 or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        data = np.asarray(vectors, dtype=np.float32).tolist()

        def search(c: Any) -> Any:
            return c.search(
                self.name("chunks"),
                data=data,
                anns_field="vector",
                limit=k,
                output_fields=[],
                search_params={"metric_type": "IP"},
            )

        res = self._call(search)
        return [[(str(h["chunk_id"]), float(h["distance"])) for h in hits] for hits in res]

    def sentence_vectors(self, doc_ids: Sequence[str]) -> dict[tuple[str, int, int], np.ndarray]:
        """The stored sentence vectors of these documents, by (doc_id, start, end)."""
        ids = list(doc_ids)

        def get(c: Any) -> list[dict[str, Any]]:
            return list(
                c.query(
                    self.name("sentences"),
                    filter=_doc_filter(ids),
                    output_fields=["doc_id", "start", "end", "vector"],
                )
            )

        rows = self._call(get) if ids else []
        return {
            (str(r["doc_id"]), int(r["start"]), int(r["end"])): np.asarray(
                r["vector"], dtype=np.float32
            )
            for r in rows
        }


def _doc_filter(doc_ids: Sequence[str]) -> str:
    """A Milvus filter for these documents (Milvus Lite has no filter templates: the ids are
    quoted as JSON strings, which escapes quotes and backslashes)."""
    return f"doc_id in [{', '.join(json.dumps(d, ensure_ascii=False) for d in doc_ids)}]"


def _chunk_row(chunk: Chunk, ordinal: int, vector: np.ndarray, terms: list[str]) -> dict[str, Any]:
    return {
        "chunk_id": chunk.chunk_id,
        "doc_id": chunk.doc_id,
        "ordinal": ordinal,
        "title": chunk.title,
        "text": chunk.text,
        "start": chunk.start,
        "end": chunk.end,
        "page": chunk.page,
        "page_end": chunk.page_end,
        "sentences": json.dumps(
            [[s.text, s.start, s.end] for s in chunk.sentences], ensure_ascii=False
        ),
        "vector": np.asarray(vector, dtype=np.float32).tolist(),
        "terms": term_counts(terms),
    }


def _chunk_of(row: Mapping[str, Any]) -> Chunk:
    return Chunk(
        chunk_id=str(row["chunk_id"]),
        doc_id=str(row["doc_id"]),
        title=str(row["title"]),
        text=str(row["text"]),
        start=int(row["start"]),
        end=int(row["end"]),
        sentences=tuple(Sentence(t, int(s), int(e)) for t, s, e in json.loads(row["sentences"])),
        page=None if row.get("page") is None else int(row["page"]),
        page_end=None if row.get("page_end") is None else int(row["page_end"]),
    )


class MilvusDense:
    """The :class:`rag.stores.base.VectorStore` view of a Milvus store for one loaded index.

    Search runs in Milvus; hits are mapped to the rows of the chunk list the replica loaded
    (``chunk_ids[i]`` is row ``i``). A chunk written after that list was loaded is skipped
    until the replica refreshes. Vectors are written through :meth:`MilvusStore.write`, never
    through this view, so the build/add/delete/save verbs of the folder stores refuse.
    """

    name = "milvus"

    def __init__(self, store: MilvusStore, chunk_ids: Sequence[str]) -> None:
        self.store = store
        self.rows = {cid: i for i, cid in enumerate(chunk_ids)}

    @property
    def kind(self) -> str:
        """Milvus's index type (exact)."""
        return "flat"

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str = "auto") -> MilvusDense:
        """Not a folder store: build with ``kazrag index --store URI``."""
        raise ValueError("a Milvus store is written with `kazrag index --store URI`, not built")

    def add(self, vectors: np.ndarray) -> None:
        """Refused (see :meth:`build`)."""
        raise ValueError("write documents to a Milvus store through MilvusStore.write")

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """Top-k (row, cosine) per query, searched in Milvus."""
        return [
            [(self.rows[cid], s) for cid, s in hits if cid in self.rows]
            for hits in self.store.search(queries, k)
        ]

    def delete(self, ids: Sequence[int]) -> None:
        """Refused (see :meth:`build`)."""
        raise ValueError("remove documents from a Milvus store through MilvusStore.remove")

    def count(self) -> int:
        """Rows of the loaded chunk list."""
        return len(self.rows)

    def save(self, folder: Path) -> None:
        """Nothing to save: the vectors live in Milvus."""
        return None

    @classmethod
    def load(cls, folder: Path) -> MilvusDense:
        """Refused: open a Milvus store with ``--store URI``."""
        raise ValueError("a Milvus store is opened with --store URI, not from an index folder")

    @classmethod
    def set_threads(cls, threads: int) -> None:
        """A client of a server: nothing to cap."""
        return None
