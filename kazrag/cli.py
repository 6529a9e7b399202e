"""The ``kazrag`` command line: index, search, ask, chat, batch, eval, bench, serve.

Every command builds its settings from flags and ``KAZRAG_*`` variables and answers through the
same pipeline function as the API and the chat. Errors a user can fix print one line and exit
with a non-zero code; no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

logger = logging.getLogger("kazrag")


def _settings(args: argparse.Namespace) -> Any:
    from rag.settings import from_env

    return from_env(
        corpus=getattr(args, "corpus", None),
        index=getattr(args, "index", None),
        model=getattr(args, "model", None),
        backend=getattr(args, "backend", None),
        top_k=getattr(args, "top_k", None),
        generator=getattr(args, "generator", None),
        store=getattr(args, "store", None),
    )


def _existing_index(args: argparse.Namespace) -> None:
    """An index named with ``--index`` must exist: a typo must not build a new index silently.

    Only the default index (what ``make run`` uses) is built when it is missing.
    """
    folder: Path | None = getattr(args, "index", None)
    store = getattr(args, "store", None)
    if store is not None and store != "faiss":
        return  # a shared store: it says itself if it is empty (rag/store_index.py)
    if folder is None or (folder / "manifest.json").is_file():
        return
    corpus = f" --corpus {args.corpus}" if getattr(args, "corpus", None) else ""
    raise ValueError(f"no index at {folder}; build it with: kazrag index --index {folder}{corpus}")


def _quiet_libraries() -> None:
    """Keep stderr for kazrag's messages: no progress bars or notices from the model libraries.

    Set before transformers and sentence-transformers are imported (they read these once);
    ``--verbose`` leaves them as they are.
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for name in ("transformers", "sentence_transformers", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def cmd_index(args: argparse.Namespace) -> int:
    """Build or update the index of a corpus folder."""
    from rag.embedding import make_embedder
    from rag.index import build, read_documents

    s = _settings(args)
    spec = s.index_spec.replace(kind=args.kind)
    if args.ray:
        return _index_on_ray(args, s, spec)

    def progress(name: str, message: str) -> None:
        if not args.quiet and message != "reading":
            print(f"  {name}: {message}", file=sys.stderr)

    before = _indexed_files(s.index)
    docs, skipped = read_documents(spec, progress)
    if not docs:
        why = "; ".join(item.reason for item in skipped) or "the folder holds none"
        print(f"kazrag index: error: no readable documents in {s.corpus}: {why}", file=sys.stderr)
        return 2
    for item in skipped:  # the rest of the corpus is still indexed
        print(f"skipped {item.reason}", file=sys.stderr)
    from rag.stores import store_kind

    if store_kind(s.store) == "milvus":
        return _index_into_store(args, s, spec, docs)
    if args.replace or args.from_index is not None:
        raise ValueError("--replace and --from-index are for a Milvus store (--store URI)")
    print(f"indexing {len(docs)} documents from {s.corpus} into {s.index}", file=sys.stderr)
    if before is not None:
        now = {d.doc_id: _raw_sha(d.raw) for d in docs}
        added = sorted(now.keys() - before.keys())
        removed = sorted(before.keys() - now.keys())
        changed = sorted(k for k in now.keys() & before.keys() if now[k] != before[k])
        print(
            f"since the last build: {len(added)} added, {len(changed)} changed, "
            f"{len(removed)} removed, {len(now) - len(added) - len(changed)} unchanged",
            file=sys.stderr,
        )
    embedder = make_embedder(s.model, s.backend)
    index = build(spec, embedder, docs, show_progress=not args.quiet)
    m = index.manifest
    print(
        f"{m['n_chunks']} chunks ({m['embedded']['chunks']} newly embedded), "
        f"{m['n_sentences']} sentences, {m['store_kind']} {m['store']} index, {m['build_seconds']} s "
        f"-> {s.index}"
    )
    return 0


def _index_on_ray(args: argparse.Namespace, s: Any, spec: Any) -> int:
    """``kazrag index --ray ADDRESS``: read, chunk and embed on a Ray cluster (docs/deploy.md).

    Rows are staged beside the index folder as documents finish, so a run that is stopped
    and started again embeds only what it had not finished; the index folder is written at
    the end from the staged rows and the unchanged documents of the current index.
    """
    import functools
    import time

    from rag.embedding import make_embedder
    from rag.index import TEXTS
    from rag.ingest import IndexMeta, corpus_paths
    from rag.ray_ingest import ClusterUnreachable, RayOptions, ingest
    from rag.sinks.index_folder import IndexFolderSink
    from rag.stores import store_kind

    if args.workers < 1:
        raise ValueError("--workers must be at least 1")
    t0 = time.perf_counter()
    files = corpus_paths(s.corpus, spec.uploads)
    if not files:
        print(f"kazrag index: error: no readable documents in {s.corpus}", file=sys.stderr)
        return 2
    embedder = make_embedder(s.model, s.backend)
    meta = IndexMeta(
        model=s.model,
        backend=str(getattr(embedder, "backend", "torch")),
        dimension=embedder.dim,
        chunking=spec.chunking,
        lexical=spec.lexical,
        store=spec.store,
        kind=spec.kind,
        corpus=spec.corpus,
    )
    milvus = store_kind(s.store) == "milvus"
    if milvus:
        from rag.store_index import stale_documents, store_sink

        sink: Any = store_sink(spec, embedder, replace=args.replace)
    else:
        sink = IndexFolderSink(s.index, meta)
    options = RayOptions(
        address=args.ray,
        workers=args.workers,
        batch_size=args.batch_size,
        verbose=args.verbose,
        temp_dir=args.ray_temp_dir,
    )
    print(
        f"indexing {len(files)} files from {s.corpus} into {s.index} on Ray ({args.ray}, "
        f"{args.workers} encoder workers)",
        file=sys.stderr,
    )

    try:
        result = ingest(
            files,
            sink,
            functools.partial(make_embedder, s.model, s.backend),
            meta.dimension,
            spec.chunking,
            options,
            cache=spec.folder / TEXTS,
            show_progress=not args.quiet,
        )
    except ClusterUnreachable as exc:
        print(f"kazrag index: error: {exc}", file=sys.stderr)
        return 2
    finally:
        import ray

        ray.shutdown()
    for reason in result.skipped:  # the rest of the corpus is still indexed
        print(f"skipped {reason}", file=sys.stderr)
    if not result.documents:
        print(f"kazrag index: error: no readable documents in {s.corpus}", file=sys.stderr)
        return 2
    print(
        f"{len(result.documents)} documents: {result.already_stored} already stored, "
        f"{result.written} embedded now ({result.chunks} chunks, {result.sentences} sentences) "
        f"in {result.seconds:.1f} s",
        file=sys.stderr,
    )
    if milvus:
        gone = stale_documents(sink, dict(result.documents))
        sink.remove(gone)
        counts = sink.counts()
        print(
            f"{counts['chunks']} chunks, {counts['sentences']} sentences of "
            f"{counts['documents']} documents ({len(gone)} removed) -> {s.store}"
        )
        return 0
    index = sink.finish(
        result.documents, {"chunks": result.chunks, "sentences": result.sentences}, t0
    )
    m = index.manifest
    print(
        f"{m['n_chunks']} chunks ({m['embedded']['chunks']} newly embedded), "
        f"{m['n_sentences']} sentences, {m['store_kind']} {m['store']} index, {m['build_seconds']} s "
        f"-> {s.index}"
    )
    return 0


def _index_into_store(args: argparse.Namespace, s: Any, spec: Any, docs: list[Any]) -> int:
    """``kazrag index --store URI``: write new and changed documents to a Milvus store."""
    from rag.embedding import make_embedder
    from rag.store_index import index_into_store

    print(f"indexing {len(docs)} documents from {s.corpus} into {s.store}", file=sys.stderr)

    def report(message: str) -> None:
        if not args.quiet:
            print(f"  {message}", file=sys.stderr)

    if args.from_index is not None:
        from rag.index import load_index
        from rag.store_index import migrate

        print(f"copying the index {args.from_index} into {s.store}", file=sys.stderr)
        done = migrate(load_index(args.from_index), spec, replace=args.replace)
        print(
            f"{done['chunks']} chunks, {done['sentences']} sentences of {done['documents']} "
            f"documents copied, {done['seconds']} s -> {s.store}"
        )
        return 0
    embedder = make_embedder(s.model, s.backend)
    done = index_into_store(
        spec, embedder, docs, replace=args.replace, show_progress=not args.quiet, report=report
    )
    print(
        f"{done['chunks']} chunks, {done['sentences']} sentences of {done['documents']} documents "
        f"({done['written']} written, {done['unchanged']} unchanged, {done['removed']} removed), "
        f"{done['seconds']} s -> {s.store}"
    )
    return 0


def _raw_sha(raw: str) -> str:
    import hashlib

    return hashlib.sha256(raw.encode()).hexdigest()


def _indexed_files(folder: Path) -> dict[str, str] | None:
    """The documents of an existing index (id -> sha256 of its text), or None if there is none."""
    from rag.index import IndexUnavailable, read_manifest

    try:
        docs = read_manifest(folder).get("documents", [])
    except IndexUnavailable:
        return None
    return {str(d["doc_id"]): str(d.get("sha256")) for d in docs if isinstance(d, dict)}


def cmd_search(args: argparse.Namespace) -> int:
    """Print the ranked chunks for a query."""
    from rag.pipeline import clean_question, get_engine, prepare_question

    _existing_index(args)
    s = _settings(args)
    query = clean_question(args.query, s.max_question_chars)
    engine = get_engine(s)
    prep = prepare_question(engine, query)  # Latin-typed Kazakh is respelled, as in ask
    hits = engine.retriever.search(prep.query, args.k, args.mode, lexical_query=prep.lexical)
    if args.json:
        _print_json([h.to_json() for h in hits])
        return 0
    if not hits:
        print("no results")
    for h in hits:
        c = h.chunk
        print(f"{h.rank:>2}. {h.score:.4f}  {c.doc_id} [{c.start}:{c.end}]  {c.title[:60]}")
        print(f"    {c.text[:300]}{'…' if len(c.text) > 300 else ''}")
    return 0


def _print_answer(ans: Any) -> None:
    from rag.generation import PASSAGES_LABEL, SOURCES_LABEL

    print(ans.answer)
    if ans.note:
        print(f"\n({ans.note})")
    if ans.citations:
        print(f"\n{SOURCES_LABEL.get(ans.language, SOURCES_LABEL['en'])}:")
        for c in ans.citations:
            page = f" p. {c.page}" if c.page else ""
            print(f"  [{c.marker}] {c.title[:70]} — {c.doc_id}{page} [{c.start}:{c.end}]")
            print(f"      «{c.quote[:240]}{'…' if len(c.quote) > 240 else ''}»")
    elif ans.abstained and ans.retrieved:
        print(f"\n{PASSAGES_LABEL.get(ans.language, PASSAGES_LABEL['en'])}:")
        for h in ans.retrieved[:3]:
            print(
                f"  {h.rank}. {h.chunk.doc_id} [{h.chunk.start}:{h.chunk.end}] {h.chunk.text[:200]}…"
            )


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer one question."""
    from rag.pipeline import answer

    _existing_index(args)
    ans = answer(args.question, settings=_settings(args), top_k=args.top_k)
    if args.json:
        _print_json(ans.to_json())
    else:
        _print_answer(ans)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    """An interactive session with history (follow-up questions work)."""
    from rag.conversation import Turn
    from rag.pipeline import QuestionError, answer, get_engine

    _existing_index(args)
    s = _settings(args)
    get_engine(s)
    history: list[Turn] = []
    print("kazrag chat — сұрағыңызды жазыңыз (exit / Ctrl-D to quit)")
    while True:
        try:
            q = input("> ")
        except EOFError:
            print()
            return 0
        if q.strip().lower() in {"exit", "quit", "шығу"}:
            return 0
        if not q.strip():
            continue
        try:
            ans = answer(q, history, s)
        except QuestionError as exc:
            print(f"error: {exc}")
            continue
        _print_answer(ans)
        print()
        history.append(Turn(ans.question, ans.answer))


def _batch_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a batch file: JSON objects with ``question``; ``id`` defaults to the line."""
    if not path.is_file():
        raise ValueError(f"questions file not found: {path}")
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict) or "question" not in row:
                raise ValueError(f"{path}:{n}: each line needs a 'question' field")
            row["id"] = str(row.get("id", n))
            rows.append(row)
    seen: set[str] = set()
    for row in rows:
        if row["id"] in seen:
            raise ValueError(f"{path}: duplicate question id {row['id']}")
        seen.add(row["id"])
    if not rows:
        raise ValueError(f"{path}: no questions")
    return rows


def cmd_batch(args: argparse.Namespace) -> int:
    """Answer every question of a JSONL file into another JSONL file."""
    from rag.conversation import Turn
    from rag.pipeline import QuestionError, answer, get_engine

    rows = _batch_rows(Path(args.inp))
    _existing_index(args)
    s = _settings(args)
    engine = get_engine(s)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    answered: dict[str, Any] = {}
    failures = 0
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            history = []
            prev = answered.get(str(row.get("follows"))) if row.get("follows") else None
            if prev is not None:
                history = [Turn(prev.question, prev.answer)]
            try:
                ans = answer(row["question"], history, engine=engine, qid=str(row["id"]))
                answered[str(row["id"])] = ans
                f.write(json.dumps(ans.to_json(), ensure_ascii=False) + "\n")
            except QuestionError as exc:
                failures += 1
                f.write(json.dumps({"id": row["id"], "error": str(exc)}, ensure_ascii=False) + "\n")
    tmp.replace(out)
    print(f"{len(rows) - failures} answered, {failures} rejected -> {out}", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Score the system on a question set or on KazQAD (see evals/evaluation.py)."""
    from evals.evaluation import main as eval_main

    return eval_main(args, _settings(args))


def cmd_bench(args: argparse.Namespace) -> int:
    """Speed and memory benchmark into BENCHMARKS.md (see evals/bench.py)."""
    from evals.bench import main as bench_main

    return bench_main(args, _settings(args))


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the chat and the HTTP API."""
    from ui.server import serve  # the chat sits above the library

    return serve(_settings(args), host=args.host, port=args.port)


def _common(p: argparse.ArgumentParser, k: bool = False) -> None:
    p.add_argument("--corpus", type=Path, help="corpus folder (default: seeds/)")
    p.add_argument("--index", type=Path, help="index folder (default: index/seeds/)")
    p.add_argument("--model", help="sentence-transformers model id or path")
    p.add_argument(
        "--store",
        metavar="URI",
        help="where the index lives: faiss (the --index folder; default), a Milvus Lite file "
        "(PATH.db, one process) or a Milvus server (http://host:port); or KAZRAG_STORE",
    )
    p.add_argument(
        "--backend",
        choices=["torch", "onnx", "onnx-int8"],
        help="encoder backend (default: KAZRAG_BACKEND or onnx)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``kazrag``."""
    p = argparse.ArgumentParser(prog="kazrag", description="Kazakh document QA with citations")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("index", help="build or update an index")
    _common(sp)
    sp.add_argument("--kind", default="auto", choices=["auto", "flat", "hnsw"])
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="ingest on a Ray cluster: host:port of a running head node (ray start --head), or "
        "'local' for a one-node cluster in this process (docs/deploy.md)",
    )
    sp.add_argument(
        "--workers", type=int, default=1, help="with --ray: encoder actors (one CPU each)"
    )
    sp.add_argument(
        "--batch-size", type=int, default=8, help="with --ray: documents per encoder batch"
    )
    sp.add_argument(
        "--ray-temp-dir",
        type=Path,
        help="with --ray local: Ray's session folder (default /tmp/ray)",
    )
    sp.add_argument(
        "--replace",
        action="store_true",
        help="drop the Milvus store's collections first (another model, or a clean rebuild)",
    )
    sp.add_argument(
        "--from-index",
        type=Path,
        metavar="FOLDER",
        help="with --store: copy this folder index (its vectors too) into the store "
        "instead of reading and embedding the corpus (FAISS -> Milvus migration)",
    )
    sp.set_defaults(func=cmd_index)

    sp = sub.add_parser("search", help="ranked passages for a query")
    _common(sp)
    sp.add_argument("query")
    sp.add_argument("-k", "--top-k", dest="k", type=int, default=5, help="passages to show")
    sp.add_argument("--mode", default="hybrid", choices=["hybrid", "dense", "lexical"])
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_search)

    commands = (
        (
            "ask",
            cmd_ask,
            "answer a question",
            "Answer one question from the documents, with "
            "citations (the answer's sources are printed below it).",
        ),
        (
            "chat",
            cmd_chat,
            "ask questions one after another in the terminal",
            "An interactive question-and-answer session in the terminal: type a question, get "
            'the answer with its sources, then ask a follow-up ("and why?") that uses the '
            "earlier questions. Type exit or press Ctrl-D to quit.",
        ),
    )
    for name, func, help_, description in commands:
        sp = sub.add_parser(name, help=help_, description=description)
        _common(sp)
        if name == "ask":
            sp.add_argument("question")
            sp.add_argument("--json", action="store_true")
        sp.add_argument("--top-k", type=int, dest="top_k")
        sp.add_argument("--generator", choices=["extractive", "openai", "llamacpp"])
        sp.set_defaults(func=func)

    sp = sub.add_parser(
        "batch",
        help="answer a JSONL file of questions",
        description="Answer every line of a JSONL file. Each line is a JSON object with "
        "'question' (required), 'id' (optional; the line number by default) and 'follows' "
        "(optional: the id of an earlier line whose question and answer this one follows up, "
        "as in a conversation). Each answer object (or {id, error}) is written as one line "
        "of --out.",
    )
    _common(sp)
    sp.add_argument(
        "--in", dest="inp", required=True, metavar="QUESTIONS.jsonl", help="the questions"
    )
    sp.add_argument("--out", required=True, metavar="ANSWERS.jsonl", help="the answers")
    sp.add_argument("--generator", choices=["extractive", "openai", "llamacpp"])
    sp.set_defaults(func=cmd_batch)

    sp = sub.add_parser("eval", help="evaluate on a question set or KazQAD")
    _common(sp)
    sp.add_argument(
        "--questions", type=Path, help="question set JSONL (default seeds/questions.jsonl)"
    )
    sp.add_argument("--split", choices=["dev", "test", "all"], default="test")
    sp.add_argument("--kazqad", type=Path, help="KazQAD validation JSONL (open-book benchmark)")
    sp.add_argument("--out", type=Path, default=Path("reports/eval"))
    sp.add_argument("--compare", type=Path, help="a previous run's figures JSON")
    sp.add_argument("--min", action="append", default=[], metavar="METRIC=VALUE")
    sp.add_argument("--generator", choices=["extractive", "openai", "llamacpp"])
    sp.add_argument("--limit", type=int, help="only the first N questions")
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("bench", help="speed and memory figures into BENCHMARKS.md")
    _common(sp)
    sp.add_argument("--kazqad", type=Path, help="KazQAD validation JSONL")
    sp.add_argument("--scale", default="1000,10000,100000,1000000")
    sp.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    sp.add_argument(
        "--no-backends", action="store_true", help="skip the torch / ONNX / int8 comparison"
    )
    sp.set_defaults(func=cmd_bench)

    sp = sub.add_parser("serve", help="serve the chat and the HTTP API")
    _common(sp)
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=7860)
    sp.add_argument("--generator", choices=["extractive", "openai", "llamacpp"])
    sp.set_defaults(func=cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kazrag`` console script."""
    args = build_parser().parse_args(argv)
    if not args.verbose:
        _quiet_libraries()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from rag.index import IndexUnavailable
    from rag.pipeline import QuestionError
    from rag.sources import SourceError
    from rag.stores.base import StoreUnreachable

    try:
        return int(args.func(args))
    except (QuestionError, SourceError, IndexUnavailable, StoreUnreachable, ValueError) as exc:
        print(f"kazrag {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kazrag {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
