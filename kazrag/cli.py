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
        top_k=getattr(args, "top_k", None),
        generator=getattr(args, "generator", None),
    )


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def cmd_index(args: argparse.Namespace) -> int:
    """Build or update the index of a corpus folder."""
    from rag.embedding import SentenceTransformerEmbedder
    from rag.index import build, corpus_documents

    s = _settings(args)
    spec = s.index_spec.replace(kind=args.kind)
    docs = corpus_documents(spec)
    print(f"indexing {len(docs)} documents from {s.corpus} into {s.index}", file=sys.stderr)
    index = build(spec, SentenceTransformerEmbedder(s.model), docs, show_progress=not args.quiet)
    m = index.manifest
    print(
        f"{m['n_chunks']} chunks ({m['embedded']['chunks']} newly embedded), "
        f"{m['n_sentences']} sentences, {m['store_kind']} {m['store']} index, {m['build_seconds']} s "
        f"-> {s.index}"
    )
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """Print the ranked chunks for a query."""
    from rag.pipeline import clean_question, get_engine

    s = _settings(args)
    query = clean_question(args.query, s.max_question_chars)
    hits = get_engine(s).retriever.search(query, args.k, args.mode)
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
    print(ans.answer)
    if ans.note:
        print(f"\n({ans.note})")
    if ans.citations:
        print("\nSources:")
        for c in ans.citations:
            print(f"  [{c.marker}] {c.title[:70]} — {c.doc_id} [{c.start}:{c.end}]")
            print(f"      «{c.quote[:240]}{'…' if len(c.quote) > 240 else ''}»")
    elif ans.abstained and ans.retrieved:
        print("\nClosest passages:")
        for h in ans.retrieved[:3]:
            print(
                f"  {h.rank}. {h.chunk.doc_id} [{h.chunk.start}:{h.chunk.end}] {h.chunk.text[:200]}…"
            )


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer one question."""
    from rag.pipeline import answer

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


def cmd_batch(args: argparse.Namespace) -> int:
    """Answer every question of a JSONL file into another JSONL file."""
    from evals.evaluation import load_questions
    from rag.conversation import Turn
    from rag.pipeline import QuestionError, answer, get_engine

    rows = load_questions(Path(args.inp), strict=False)
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
    from rag.api import serve

    return serve(_settings(args), host=args.host, port=args.port)


def _common(p: argparse.ArgumentParser, k: bool = False) -> None:
    p.add_argument("--corpus", type=Path, help="corpus folder (default: seeds/)")
    p.add_argument("--index", type=Path, help="index folder (default: index/seeds/)")
    p.add_argument("--model", help="sentence-transformers model id or path")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``kazrag``."""
    p = argparse.ArgumentParser(prog="kazrag", description="Kazakh document QA with citations")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("index", help="build or update an index")
    _common(sp)
    sp.add_argument("--kind", default="auto", choices=["auto", "flat", "hnsw"])
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_index)

    sp = sub.add_parser("search", help="ranked passages for a query")
    _common(sp)
    sp.add_argument("query")
    sp.add_argument("-k", type=int, default=5)
    sp.add_argument("--mode", default="hybrid", choices=["hybrid", "dense", "lexical"])
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_search)

    for name, func, help_ in (("ask", cmd_ask, "answer a question"), ("chat", cmd_chat, "chat")):
        sp = sub.add_parser(name, help=help_)
        _common(sp)
        if name == "ask":
            sp.add_argument("question")
            sp.add_argument("--json", action="store_true")
        sp.add_argument("--top-k", type=int, dest="top_k")
        sp.add_argument("--generator", choices=["extractive", "openai", "llamacpp"])
        sp.set_defaults(func=func)

    sp = sub.add_parser("batch", help="answer a JSONL file of questions")
    _common(sp)
    sp.add_argument("--in", dest="inp", required=True)
    sp.add_argument("--out", required=True)
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
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from rag.index import IndexUnavailable
    from rag.pipeline import QuestionError
    from rag.sources import SourceError

    try:
        return int(args.func(args))
    except (QuestionError, SourceError, IndexUnavailable, ValueError) as exc:
        print(f"kazrag {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kazrag {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
