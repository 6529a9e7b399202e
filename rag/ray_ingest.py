"""Distributed ingestion on Ray Data: files read, cleaned, chunked and embedded on the workers.

The run has two passes over the corpus because cleaning depends on the whole corpus (the
hyphenation vocabulary decides whether a line-end hyphen is kept):

1. ``map`` (Ray tasks): every file is read (PDFs, Word, HTML extracted, OCR included) on a
   worker, which returns the extracted text, its content hash and its words; the driver joins
   the words into the corpus vocabulary and asks the sink which documents it already holds
   (doc_id -> sha256; see :class:`rag.rows.RowSink`);
2. ``map_batches`` on a fixed pool of actors, each loading the encoder once: the documents not
   yet stored are cleaned with the corpus vocabulary, chunked and embedded
   (:func:`rag.ingest.document_rows`); the driver upserts the rows into the sink in batches,
   with a progress bar over the whole run (documents, chunks, rate, ETA).

Ids are content hashes and writes are upserts: a run killed (a worker, or the driver) and
started again writes exactly the rows of a clean run and embeds only what was not stored.
Ray retries the batch of a worker that died (actors are restarted, their tasks retried).

Only this module imports ``ray``.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.chunking import ChunkingConfig
from rag.ingest import (
    EmbedderFactory,
    document_rows,
    documents_from,
    extract_file,
    rows_from_record,
    rows_to_record,
)
from rag.readers import Extracted
from rag.rows import DocumentRows, RowSink
from rag.sources import SourceError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayOptions:
    """How to reach (or start) the Ray cluster and how wide to run.

    ``address`` is ``local`` (a one-node cluster started in this process, loopback only) or a
    running cluster's ``host:port`` (``ray start --head``); ``workers`` is the number of encoder
    actors (one CPU each), ``batch_size`` the documents per encoder batch.
    """

    address: str = "local"
    workers: int = 1
    batch_size: int = 8
    write_batch: int = 64
    verbose: bool = False
    temp_dir: Path | None = None
    object_store_memory: int = 256 * 1024 * 1024


@dataclass(frozen=True)
class IngestResult:
    """What a run did: documents in the corpus, skipped, found stored, and embedded now."""

    documents: dict[str, str]  # doc_id -> sha256, in corpus order
    skipped: tuple[str, ...]
    already_stored: int
    written: int
    chunks: int
    sentences: int
    seconds: float


def _row_of_file(row: dict[str, Any], cache: str | None) -> dict[str, Any]:
    """Stage 1, on a worker: read one file (errors are returned, not raised: a skip, not a crash)."""
    path = Path(row["path"])
    try:
        f = extract_file(path, Path(cache) if cache else None)
    except (SourceError, OSError) as exc:
        return {
            "doc_id": path.name,
            "error": str(exc),
            "extracted": "",
            "file_sha256": "",
            "sha256": "",
            "words": [],
        }
    import json

    return {
        "doc_id": f.doc_id,
        "error": "",
        "extracted": json.dumps(f.extracted.to_json(), ensure_ascii=False),
        "file_sha256": f.file_sha256,
        "sha256": f.sha256,
        "words": sorted(f.words),
    }


class _EmbedDocuments:
    """Stage 2, an actor: loads the encoder once, then chunks and embeds batches of documents."""

    def __init__(
        self, factory: EmbedderFactory, chunking: dict[str, int], vocabulary: list[Any]
    ) -> None:
        import ray

        self.embedder = factory()
        self.chunking = ChunkingConfig(**chunking)
        # The vocabulary travels once per actor as an object in the store (a list keeps Ray from
        # resolving the reference before it gets here).
        self.vocabulary: set[str] = ray.get(vocabulary[0])

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        import json

        from rag.ingest import ExtractedFile

        files = [
            ExtractedFile(
                doc_id=str(doc_id),
                extracted=Extracted.from_json(json.loads(str(text))),
                file_sha256=str(fsha),
                sha256=str(sha),
                words=frozenset(),
            )
            for doc_id, text, fsha, sha in zip(
                batch["doc_id"],
                batch["extracted"],
                batch["file_sha256"],
                batch["sha256"],
                strict=True,
            )
        ]
        rows = document_rows(documents_from(files, self.vocabulary), self.embedder, self.chunking)
        out: dict[str, list[Any]] = {}
        for r in rows:
            for key, value in rows_to_record(r).items():
                out.setdefault(key, []).append(value)
        return out


def _quiet_ray(verbose: bool) -> None:
    """Ray's and Ray Data's console output (progress bars, "Running Dataset…") only if asked."""
    level = logging.INFO if verbose else logging.ERROR
    for name in ("ray", "ray.data", "ray._private", "ray.util"):
        logging.getLogger(name).setLevel(level)
    if not verbose:
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        # Ray Data's advice to prefer expressions in filters (a Python predicate is needed
        # here) and its notice about `ray_remote_args`: developer notes, not the user's.
        warnings.filterwarnings("ignore", message="Use 'expr' instead of 'fn'")
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*")


class ClusterUnreachable(ConnectionError):
    """No Ray head node answers at the address given."""


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast with a clear message (``ray.init`` retries an unreachable head for minutes)."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ClusterUnreachable(
            f"--ray takes 'local' or the head node's host:port (e.g. 10.0.0.1:6379), not {address!r}"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterUnreachable(
            f"no Ray head node answers at {address} ({exc}); start one with `ray start --head` "
            "(docs/deploy.md)"
        ) from exc


def connect(options: RayOptions) -> None:
    """Join the cluster at ``options.address``, or start a one-node cluster on loopback."""
    import ray

    _quiet_ray(options.verbose)
    if ray.is_initialized():
        return
    common: dict[str, Any] = {
        "logging_level": logging.INFO if options.verbose else logging.ERROR,
        "log_to_driver": options.verbose,
        "configure_logging": True,
    }
    if options.address == "local":
        ray.init(
            address="local",
            num_cpus=max(1, options.workers),
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            object_store_memory=options.object_store_memory,
            _temp_dir=str(options.temp_dir) if options.temp_dir else None,
            **common,
        )
    else:
        _reachable(options.address)
        ray.init(address=options.address, _node_ip_address="127.0.0.1", **common)
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = options.verbose
    ctx.print_on_execution_start = options.verbose
    ctx.verbose_progress = options.verbose


def _batches(ds: Any, size: int) -> Iterator[list[dict[str, Any]]]:
    """The rows of a dataset in lists of about ``size`` (as they come off the workers)."""
    pending: list[dict[str, Any]] = []
    for row in ds.iter_rows():
        pending.append(row)
        if len(pending) >= size:
            yield pending
            pending = []
    if pending:
        yield pending


def ingest(
    files: Sequence[Path],
    sink: RowSink,
    factory: EmbedderFactory,
    dim: int,
    chunking: ChunkingConfig | None = None,
    options: RayOptions | None = None,
    cache: Path | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    show_progress: bool = False,
) -> IngestResult:
    """Read, chunk and embed ``files`` on a Ray cluster and upsert their rows into ``sink``.

    ``factory`` builds the encoder on each worker (``dim`` is its vector size); ``cache`` is
    the index's ``texts/`` folder (extracted PDF text is not read or OCR'd twice).
    ``progress(documents_done, documents_total, chunks_done)`` is called after each write.
    """
    import ray
    from ray.data import ActorPoolStrategy

    options = options or RayOptions()
    chunking = chunking or ChunkingConfig()
    t0 = time.perf_counter()
    connect(options)
    read_one = functools.partial(_row_of_file, cache=str(cache.resolve()) if cache else None)
    read = ray.data.from_items([{"path": str(p.resolve())} for p in files]).map(
        read_one,
        max_retries=-1,  # a task whose worker died runs again
    )
    read = read.materialize()
    heads = read.select_columns(["doc_id", "error", "sha256", "words"]).take_all()
    order = {str(p.name): i for i, p in enumerate(files)}
    heads.sort(key=lambda r: order.get(str(r["doc_id"]), len(order)))
    skipped = tuple(str(h["error"]) for h in heads if h["error"])
    documents = {str(h["doc_id"]): str(h["sha256"]) for h in heads if not h["error"]}
    vocabulary: set[str] = set()
    for h in heads:
        vocabulary.update(str(w) for w in h["words"])
    stored = sink.stored(documents)
    todo = {d for d in documents if d not in stored}
    logger.info(
        "%d documents, %d already stored, %d to embed", len(documents), len(stored), len(todo)
    )
    written = chunks = sentences = 0
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="doc", desc="Documents", file=sys.stderr)
    if todo:
        wanted = frozenset(todo)
        # Materialised before the actor pool starts: the pool takes every CPU it is given, and
        # a filter task waiting behind it for a CPU would never run.
        pending = (
            read.drop_columns(["words", "error"])
            .filter(lambda r: r["doc_id"] in wanted)
            .materialize()
        )
        rows = pending.map_batches(
            _EmbedDocuments,
            fn_constructor_kwargs={
                "factory": factory,
                "chunking": chunking.to_json(),
                "vocabulary": [ray.put(vocabulary)],
            },
            batch_size=options.batch_size,
            # Two batches in flight per actor: the next one is on its way while one is
            # encoded, and a quick first actor cannot queue up the whole corpus.
            compute=ActorPoolStrategy(
                size=max(1, options.workers), max_tasks_in_flight_per_actor=2
            ),
            num_cpus=1,
            max_restarts=-1,
            max_task_retries=-1,
        )
        for records in _batches(rows, options.write_batch):
            batch: list[DocumentRows] = [rows_from_record(r, dim) for r in records]
            sink.write(batch)
            written += len(batch)
            chunks += sum(len(b.chunks) for b in batch)
            sentences += sum(len(b.sentences) for b in batch)
            if bar is not None:
                bar.update(len(batch))
                rate = chunks / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix_str(f"{chunks} chunks, {rate:.1f} chunks/s", refresh=False)
            if progress is not None:
                progress(written, len(todo), chunks)
    if bar is not None:
        bar.close()
    return IngestResult(
        documents=documents,
        skipped=skipped,
        already_stored=len(stored),
        written=written,
        chunks=chunks,
        sentences=sentences,
        seconds=time.perf_counter() - t0,
    )
