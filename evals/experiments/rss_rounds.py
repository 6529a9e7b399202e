"""Server memory in rounds: does ``kazrag serve``'s RSS plateau or keep growing with requests?

Starts ``kazrag serve`` (as the load test does, on a copy of the seed index), then sends
``--rounds`` rounds of ``--requests`` requests from ``--clients`` threads, and prints the
server's RSS and CPU after each round. Extra ``--env NAME=VALUE`` pairs go to the server's
environment, to compare causes side by side, e.g.::

    python -m evals.experiments.rss_rounds --env KAZRAG_BATCH_QUERIES=0
    python -m evals.experiments.rss_rounds --env KAZRAG_BATCH_QUERIES=0 --env MALLOC_ARENA_MAX=2
    python -m evals.experiments.rss_rounds                       # as served (batching on)

Growth that stops is a bounded cache or an allocator reaching its working set; growth that goes
on round after round is a leak. Bounded: rounds x requests requests in all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from evals.experiments import api_bench
from evals.experiments.load_test import (
    cpu_seconds,
    free_port,
    questions,
    rss_mb,
    run_load,
)
from rag.settings import DEFAULT_CORPUS, DEFAULT_INDEX


def main(argv: list[str] | None = None) -> int:
    """Entry point: print one JSON line per round (requests so far, RSS MB, CPU ms/request)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    p.add_argument("--questions", type=Path, default=DEFAULT_CORPUS / "questions.jsonl")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--requests", type=int, default=200, help="requests per round")
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    args = p.parse_args(argv)
    env = dict(e.split("=", 1) for e in args.env)
    qs = questions(args.questions)
    with tempfile.TemporaryDirectory(prefix="kazrag-rss-") as tmp:
        index = Path(tmp) / "seeds"
        shutil.copytree(args.index, index)
        (Path(tmp) / "uploads").mkdir()
        env["KAZRAG_UPLOADS"] = str(Path(tmp) / "uploads")
        with api_bench.server(free_port(), index, 900.0, env) as (url, pid):
            print(json.dumps({"env": args.env, "round": 0, "rss_mb": round(rss_mb(pid), 1)}))
            done = 0
            for r in range(1, args.rounds + 1):
                cpu0 = cpu_seconds(pid)
                records, _ = run_load(url, qs, args.clients, 3600.0, args.requests)
                done += len(records)
                row = {
                    "round": r,
                    "requests": done,
                    "errors": sum(x.error is not None for x in records),
                    "rss_mb": round(rss_mb(pid), 1),
                    "cpu_ms_per_request": round(
                        (cpu_seconds(pid) - cpu0) * 1000 / max(1, len(records)), 1
                    ),
                    "load": round(os.getloadavg()[0], 1),
                }
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
