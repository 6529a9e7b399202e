"""How fast is the bot over HTTP? Latency and throughput of ``kazrag serve`` on loopback.

Starts ``kazrag serve`` as a child process on 127.0.0.1 (a free port), waits for
``/api/health``, then, with the questions of ``seeds/questions.jsonl`` in turn:

1. streams answers one at a time through ``POST /v1/chat/completions`` (``stream: true``) and
   records the time to the first content token and to the end of the stream;
2. asks one at a time through ``POST /api/ask`` (full answer latency, non-streamed);
3. runs 8 concurrent clients against ``POST /api/ask`` and reports requests per second.

Every phase has a fixed number of requests, and the server is stopped at the end (also on
errors). The figures are printed and written into BENCHMARKS.md between
``<!-- api:start -->`` and ``<!-- api:end -->``; the rest of the file is left alone.

    python -m evals.experiments.api_bench                      # default index (index/seeds)
    python -m evals.experiments.api_bench --index /tmp/idx --requests 20 --concurrent 64
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from evals.bench import write_section
from rag.settings import DEFAULT_CORPUS, PROJECT_ROOT, env_value


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def questions(path: Path) -> list[str]:
    """Stand-alone questions of the question set (follow-ups need their history)."""
    rows = [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    return [r["question"] for r in rows if not r.get("follows")]


@contextmanager
def server(
    port: int, index: Path | None, startup_timeout: float, env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """Run ``kazrag serve`` on 127.0.0.1:port until the block ends; yields (base URL, pid).

    The load test (evals/experiments/load_test.py) starts its server through this too.
    """
    cmd = [sys.executable, "-m", "kazrag.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if index is not None:
        cmd += ["--index", str(index)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with code {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer within {startup_timeout:.0f} s")
            try:
                if httpx.get(f"{url}/api/health", headers=_auth(), timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _auth() -> dict[str, str]:
    token = env_value("API_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def stream_once(client: httpx.Client, url: str, question: str) -> tuple[float, float]:
    """(seconds to the first content token, seconds to the end) of one streamed answer."""
    body = {"model": "kazrag", "messages": [{"role": "user", "content": question}], "stream": True}
    t0 = time.perf_counter()
    first: float | None = None
    with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=_auth()) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"]
            if first is None and delta.get("content"):
                first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return (first if first is not None else total), total


def ask_once(client: httpx.Client, url: str, question: str) -> float:
    """Seconds for one non-streamed ``/api/ask``."""
    t0 = time.perf_counter()
    r = client.post(f"{url}/api/ask", json={"question": question}, headers=_auth())
    r.raise_for_status()
    return time.perf_counter() - t0


def concurrent(url: str, qs: list[str], clients: int, total: int) -> tuple[float, list[float]]:
    """Requests per second and per-request latencies with ``clients`` threads sharing ``total``."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        with httpx.Client(timeout=300) as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                try:
                    dt = ask_once(client, url, qs[i % len(qs)])
                except Exception as exc:  # reported after the run
                    with lock:
                        errors.append(exc)
                    return
                with lock:
                    latencies.append(dt)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} concurrent requests failed: {errors[0]}")
    return len(latencies) / wall, latencies


def pct(values: list[float], q: float) -> float:
    """The q-th percentile in milliseconds."""
    return float(np.percentile(np.array(values) * 1000, q))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the three phases against a fresh server; returns the figures."""
    qs = questions(args.questions)
    port = args.port or free_port()
    load_before = os.getloadavg()[0]
    with (
        server(port, args.index, args.startup_timeout) as (url, _),
        httpx.Client(timeout=300) as c,
    ):
        health = c.get(f"{url}/api/health", headers=_auth()).json()
        for q in qs[:2]:  # warm-up: first-call costs (tokenizer caches, FAISS pages)
            ask_once(c, url, q)
        streamed = [stream_once(c, url, qs[i % len(qs)]) for i in range(args.requests)]
        asked = [ask_once(c, url, qs[i % len(qs)]) for i in range(args.requests)]
        rps, loaded = concurrent(url, qs, args.clients, args.concurrent)
    ttft = [a for a, _ in streamed]
    full = [b for _, b in streamed]
    return {
        "requests": args.requests,
        "clients": args.clients,
        "concurrent_requests": args.concurrent,
        "ttft_p50": pct(ttft, 50),
        "ttft_p95": pct(ttft, 95),
        "stream_p50": pct(full, 50),
        "stream_p95": pct(full, 95),
        "ask_p50": pct(asked, 50),
        "ask_p95": pct(asked, 95),
        "rps": rps,
        "loaded_p50": pct(loaded, 50),
        "loaded_p95": pct(loaded, 95),
        "model": health["model"],
        "generator": health["generator"],
        "documents": health["documents"],
        "chunks": health["chunks"],
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def section(f: dict[str, Any]) -> str:
    """The markdown section (with its markers) for BENCHMARKS.md."""
    n, c = f["requests"], f["clients"]
    rows = [
        (f"time to first streamed token, `/v1/chat/completions` ({n} sequential)", "ttft"),
        ("full streamed answer, same requests", "stream"),
        (f"full answer, `/api/ask` ({n} sequential)", "ask"),
        (f"`/api/ask` latency with {c} concurrent clients", "loaded"),
    ]
    table = "\n".join(
        f"| {label} | {f[key + '_p50']:.0f} ms | {f[key + '_p95']:.0f} ms |" for label, key in rows
    )
    return f"""## HTTP API

`python -m evals.experiments.api_bench` — `kazrag serve` on 127.0.0.1, seed corpus
({f["documents"]} documents, {f["chunks"]} chunks), model `{f["model"]}`, generator
`{f["generator"]}`, {f["cpus"]} CPU cores, Python {f["python"]}, {f["date"]}. Client and server
share the machine; its load average was {f["load_before"]:.1f} before the run and
{f["load_after"]:.1f} after it (other work on the machine inflates these figures). Questions:
the stand-alone questions of `seeds/questions.jsonl` in turn.

| measure | p50 | p95 |
|---|---:|---:|
{table}

Throughput with {c} concurrent clients on loopback: **{f["rps"]:.2f} requests/s**
({f["concurrent_requests"]} requests).

The extractive generator composes the whole answer after retrieval and sentence scoring, so its
first token arrives with the last one: time to first token is the answer latency. With a
language-model generator (`KAZRAG_GENERATOR=openai|llamacpp`) the answer streams sentence by
sentence, each as soon as the model has written it and it has passed the checks. The work is CPU-bound (query embedding and sentence scoring), and on a machine shared
with other jobs these figures move by up to 2× between runs: compare runs made at a similar
load average.
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point: measure, print, write BENCHMARKS.md."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--index", type=Path, help="index folder (default: the server's default)")
    p.add_argument("--questions", type=Path, default=DEFAULT_CORPUS / "questions.jsonl")
    p.add_argument("--requests", type=int, default=30, help="sequential requests per phase")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--concurrent", type=int, default=64, help="requests in the concurrent phase")
    p.add_argument("--port", type=int, default=0, help="default: a free port")
    p.add_argument("--startup-timeout", type=float, default=900.0)
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    figures = run(args)
    print(json.dumps(figures, indent=2))
    text = section(figures)
    print(text)
    if not args.no_write:
        write_section(args.out, text, "api")
        print(f"wrote the HTTP API section of {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
