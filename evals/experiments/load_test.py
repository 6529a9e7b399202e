"""Load test: concurrent clients against ``kazrag serve`` on 127.0.0.1 for a fixed time.

Starts ``kazrag serve`` as a child process on a free loopback port, on a temporary copy of the
seed index (so the run never touches ``index/seeds``) and an empty temporary uploads folder,
waits for ``/api/health``, warms every route up (the model loads on the first question, and a
short concurrent phase lets the server grow its worker threads and their allocator arenas),
then runs ``--clients`` threads for ``--seconds`` (and at most ``--max-requests`` requests).
Requests alternate: half ``POST /api/ask``, a quarter ``POST /v1/chat/completions`` and a quarter
the same streamed, with the stand-alone questions of ``seeds/questions.jsonl`` in turn.

Every response is checked, not just its status: the answer object's markers must match its
citations, a completion must carry text, a stream must end with ``[DONE]`` and no error event.
Anything else counts as an error. The server's resident memory (``/proc/<pid>/status``) is read
after the warm-up and after the run, and sampled during it; the run passes when there were no
errors and RSS grew by at most ``--rss-bound-mb`` over the measured run. The server's own CPU
time (``/proc/<pid>/stat``, all its threads) over the measured run is reported per request: unlike
requests/s it barely depends on what else the machine runs, and cores / CPU per request is the
throughput the server could reach with the cores to itself. The figures are printed and written
into BENCHMARKS.md between ``<!-- load:start -->`` and ``<!-- load:end -->``; other sections are
left alone. Bounded: ``--seconds`` and ``--max-requests``, loopback only.

The server runs as ``kazrag serve`` does, query micro-batching on (rag/batching.py); set
``KAZRAG_BATCH_QUERIES=0`` in the environment to measure it off. For the figures of record, run
it on a quiet machine (load average near 0; the section states the load before and after):

    python -m evals.experiments.load_test                       # 16 clients, 60 s, writes BENCHMARKS.md
    KAZRAG_BATCH_QUERIES=0 python -m evals.experiments.load_test --no-write   # batching off
    python -m evals.experiments.load_test --clients 4 --seconds 10 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from evals.bench import write_section
from evals.experiments import api_bench
from rag.schema import MARKER_RE
from rag.settings import DEFAULT_CORPUS, DEFAULT_INDEX, PROJECT_ROOT, env_value

ENDPOINTS = ("/api/ask", "/v1/chat/completions", "/v1/chat/completions (stream)")
# Once warmed up under the same concurrency, memory must not grow with the number of requests:
# 150 MB (~12% of a warmed-up server) leaves room for allocator noise, not for a leak.
RSS_BOUND_MB = 150.0
_MARKER = MARKER_RE


@dataclass(frozen=True)
class Record:
    """One request: which route, how long it took, and what went wrong (``None`` if nothing)."""

    endpoint: str
    seconds: float
    error: str | None = None


def percentile(seconds: list[float], q: float) -> float | None:
    """The q-th percentile of latencies given in seconds, in milliseconds (``None`` if empty)."""
    return float(np.percentile(np.array(seconds) * 1000, q)) if seconds else None


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def questions(path: Path) -> list[str]:
    """Stand-alone questions of the question set (follow-ups need their history)."""
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [r["question"] for r in rows if not r.get("follows")]


def _status_kb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB."""
    return _status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far in MB (VmHWM)."""
    return _status_kb(pid, "VmHWM") / 1024


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _auth() -> dict[str, str]:
    token = env_value("API_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def server(
    index: Path, uploads: Path, startup_timeout: float
) -> AbstractContextManager[tuple[str, int]]:
    """``kazrag serve`` on 127.0.0.1 until the block ends; yields (base URL, server pid)."""
    return api_bench.server(free_port(), index, startup_timeout, {"KAZRAG_UPLOADS": str(uploads)})


def _check_markers(text: str, citations: list[dict[str, Any]]) -> None:
    markers = {int(m) for m in _MARKER.findall(text)}
    cited = {int(c["marker"]) for c in citations}
    if markers != cited:
        raise ValueError(f"markers {sorted(markers)} do not match citations {sorted(cited)}")


def request_once(client: httpx.Client, url: str, endpoint: str, question: str) -> None:
    """One request, its response checked; raises on anything but a well-formed answer."""
    if endpoint == "/api/ask":
        r = client.post(f"{url}/api/ask", json={"question": question}, headers=_auth())
        r.raise_for_status()
        body = r.json()
        if not body["answer"]:
            raise ValueError("empty answer")
        _check_markers(body["answer"], body["citations"])
        return
    messages = [{"role": "user", "content": question}]
    if endpoint == "/v1/chat/completions":
        r = client.post(f"{url}/v1/chat/completions", json={"messages": messages}, headers=_auth())
        r.raise_for_status()
        body = r.json()
        content = body["choices"][0]["message"]["content"]
        if not content or body["choices"][0]["finish_reason"] != "stop":
            raise ValueError("empty or unfinished completion")
        _check_markers(body["kazrag"]["answer"], body["citations"])
        return
    payload = {"messages": messages, "stream": True}
    events: list[Any] = []
    with client.stream("POST", f"{url}/v1/chat/completions", json=payload, headers=_auth()) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("data: "):
                data = line[6:]
                events.append(data if data == "[DONE]" else json.loads(data))
    if not events or events[-1] != "[DONE]":
        raise ValueError("the stream did not end with [DONE]")
    chunks = [e for e in events[:-1] if isinstance(e, dict)]
    if any("error" in e for e in chunks):
        raise ValueError(f"error event: {next(e for e in chunks if 'error' in e)}")
    content = "".join(e["choices"][0]["delta"].get("content") or "" for e in chunks)
    if not content.strip() or "citations" not in chunks[-1]:
        raise ValueError("the stream carried no answer or no citations")


def run_load(
    url: str,
    qs: list[str],
    clients: int,
    seconds: float,
    max_requests: int,
    pid: int | None = None,
    samples: list[tuple[float, float]] | None = None,
) -> tuple[list[Record], float]:
    """``clients`` threads send requests until ``seconds`` pass or ``max_requests`` are sent.

    With ``pid`` and ``samples``, the server's RSS is appended to ``samples`` every 5 s as
    (seconds since the start, MB).
    """
    records: list[Record] = []
    lock = threading.Lock()
    counter = iter(range(max_requests))
    deadline = time.monotonic() + seconds

    def worker() -> None:
        with httpx.Client(timeout=120) as client:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                # Half /api/ask, a quarter /v1 plain, a quarter /v1 streamed.
                endpoint = ENDPOINTS[(0, 0, 1, 2)[i % 4]]
                t0 = time.perf_counter()
                error = None
                try:
                    request_once(client, url, endpoint, qs[i % len(qs)])
                except Exception as exc:  # counted and reported, the run goes on
                    error = f"{type(exc).__name__}: {exc}"[:300]
                with lock:
                    records.append(Record(endpoint, time.perf_counter() - t0, error))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    done = threading.Event()

    def join_all() -> None:
        end = time.monotonic() + seconds + 180  # a request in flight at the deadline may finish
        for t in threads:
            t.join(timeout=max(0.0, end - time.monotonic()))
        done.set()

    t0 = time.perf_counter()
    for t in threads:
        t.start()
    threading.Thread(target=join_all, daemon=True).start()
    while True:
        if pid is not None and samples is not None:
            samples.append((time.perf_counter() - t0, rss_mb(pid)))
        if done.wait(5.0):
            break
    return records, time.perf_counter() - t0


def summarize(records: list[Record], wall: float) -> dict[str, Any]:
    """Requests, errors, throughput and latency percentiles, per route and in all."""
    out: dict[str, Any] = {}
    groups = {"all": records, **{e: [r for r in records if r.endpoint == e] for e in ENDPOINTS}}
    for name, rows in groups.items():
        ok = [r.seconds for r in rows if r.error is None]
        out[name] = {
            "requests": len(rows),
            "errors": sum(r.error is not None for r in rows),
            "rps": len(rows) / wall if wall > 0 else 0.0,
            "p50": percentile(ok, 50),
            "p95": percentile(ok, 95),
            "p99": percentile(ok, 99),
        }
    out["first_errors"] = [r.error for r in records if r.error][:5]
    return out


def _warm_up(url: str, qs: list[str]) -> None:
    with httpx.Client(timeout=600) as client:
        for i, endpoint in enumerate(ENDPOINTS * 2):
            request_once(client, url, endpoint, qs[i % len(qs)])


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server on a copy of the index, warm it up, load it, measure; the figures."""
    qs = questions(args.questions)
    with tempfile.TemporaryDirectory(prefix="kazrag-load-") as tmp:
        index = Path(tmp) / "seeds"
        if args.index.is_dir():
            shutil.copytree(args.index, index)  # the server may update it: never the original
        uploads = Path(tmp) / "uploads"
        uploads.mkdir()
        load_before = os.getloadavg()[0]
        with server(index, uploads, args.startup_timeout) as (url, pid):
            health = httpx.get(f"{url}/api/health", headers=_auth(), timeout=10).json()
            rss_started = rss_mb(pid)
            _warm_up(url, qs)
            rss_warm = rss_mb(pid)
            warm, _ = run_load(url, qs, args.clients, args.warmup_seconds, args.max_requests)
            rss_before = rss_mb(pid)
            samples: list[tuple[float, float]] = []
            cpu_before = cpu_seconds(pid)
            records, wall = run_load(
                url, qs, args.clients, args.seconds, args.max_requests, pid, samples
            )
            cpu_used = cpu_seconds(pid) - cpu_before
            rss_after = rss_mb(pid)
            peak = peak_rss_mb(pid)
            alive = httpx.get(f"{url}/api/health", headers=_auth(), timeout=30).status_code
        load_after = os.getloadavg()[0]
    stats = summarize(records, wall)
    growth = rss_after - rss_before
    cpus = os.cpu_count() or 1
    raw = env_value("BATCH_QUERIES")  # the server inherits it; unset: kazrag serve's default, on
    batching = raw is None or raw.strip().lower() in ("1", "true", "yes", "on")
    cpu_ms = cpu_used * 1000 / max(1, len(records))
    return {
        "clients": args.clients,
        "seconds": args.seconds,
        "max_requests": args.max_requests,
        "wall_seconds": wall,
        "stats": stats,
        "warmup_seconds": args.warmup_seconds,
        "warmup_requests": len(warm),
        "warmup_errors": sum(r.error is not None for r in warm),
        "rss_started_mb": rss_started,
        "rss_warm_mb": rss_warm,
        "rss_before_mb": rss_before,
        "rss_samples": samples,
        "rss_after_mb": rss_after,
        "rss_peak_mb": peak,
        "rss_growth_mb": growth,
        "rss_bound_mb": args.rss_bound_mb,
        "rss_held": growth <= args.rss_bound_mb,
        "healthy_after": alive == 200,
        "passed": stats["all"]["errors"] == 0
        and sum(r.error is not None for r in warm) == 0
        and growth <= args.rss_bound_mb
        and alive == 200,
        "model": health["model"],
        "generator": health["generator"],
        "documents": health["documents"],
        "chunks": health["chunks"],
        "cpus": cpus,
        "batch_queries": batching,
        # The server's own CPU per request: robust to other load on the machine, unlike
        # requests/s; cores / CPU per request is what the server could do with the cores alone.
        "server_cpu_ms_per_request": cpu_ms,
        "capacity_rps": cpus * 1000 / cpu_ms if cpu_ms > 0 else None,
        "load_before": load_before,
        "load_after": load_after,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def section(f: dict[str, Any]) -> str:
    """The markdown section (with its markers) for BENCHMARKS.md."""
    s = f["stats"]
    rows = "\n".join(
        f"| {name if name != 'all' else '**all**'} | {s[name]['requests']} | {s[name]['errors']} | "
        f"{s[name]['rps']:.2f} | {_ms(s[name]['p50'])} | {_ms(s[name]['p95'])} | "
        f"{_ms(s[name]['p99'])} |"
        for name in (*ENDPOINTS, "all")
    )
    errors = ""
    if f["stats"]["first_errors"]:
        errors = "\nFirst errors:\n" + "\n".join(f"- `{e}`" for e in f["stats"]["first_errors"])
    held = "held" if f["rss_held"] else "**broken**"
    samples = ", ".join(f"{t:.0f}: {mb:,.0f}" for t, mb in f.get("rss_samples", [])[::2]) or "–"
    return f"""## Load: {f["clients"]} concurrent clients for {f["seconds"]:.0f} s

`python -m evals.experiments.load_test` — `kazrag serve` on 127.0.0.1 over a copy of the seed index
({f["documents"]} documents, {f["chunks"]} chunks), model `{f["model"]}`, generator
`{f["generator"]}`, query micro-batching {"on" if f.get("batch_queries", True) else "off"};
{f["clients"]} client threads on the same machine ({f["cpus"]} CPU cores),
{f["date"]}, Python {f["python"]}. Half the requests are `/api/ask`, a quarter
`/v1/chat/completions`, a quarter the same streamed; the stand-alone questions of
`seeds/questions.jsonl` in turn. A request counts as an error unless its response is a
well-formed answer (markers match citations, streams end with `[DONE]`). Load average
{f["load_before"]:.1f} before and {f["load_after"]:.1f} after the run (the machine is shared with
other work, which inflates latencies).

| route | requests | errors | requests/s | p50 ms | p95 ms | p99 ms |
|---|---:|---:|---:|---:|---:|---:|
{rows}
{errors}
Server memory (RSS): {f["rss_started_mb"]:,.0f} MB after start-up,
{f["rss_warm_mb"]:,.0f} MB after one request of each kind (model loaded),
{f["rss_before_mb"]:,.0f} MB after a {f["warmup_seconds"]:.0f} s concurrent warm-up
({f["warmup_requests"]} requests, {f["warmup_errors"]} errors; the server grows its worker
threads and their allocator arenas once), {f["rss_after_mb"]:,.0f} MB after the
{s["all"]["requests"]} measured requests: growth over the measured run
{f["rss_growth_mb"]:+,.0f} MB, bound {f["rss_bound_mb"]:.0f} MB: {held}. Peak
{f["rss_peak_mb"]:,.0f} MB. RSS during the run (s: MB): {samples}. The server answered
`/api/health` after the run: {"yes" if f["healthy_after"] else "**no**"}.

Server CPU (user + system, all its threads) over the measured run:
{f["server_cpu_ms_per_request"]:.1f} ms per request, so {f["cpus"]} cores could serve
{f["capacity_rps"] or 0:.1f} requests/s if the server had them to itself (the client threads run on
the same cores, so the measured requests/s stays below that figure). CPU per request does not
depend on what else the machine runs; requests/s and latencies do.

Latency is mostly queueing: the work is CPU-bound (query embedding and sentence scoring, one
encoder call at a time), so {f["clients"]} clients on {f["cpus"]} cores wait in turn; throughput,
not latency, is the figure to compare with the single-client numbers of the HTTP API section.
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point: run, print, write BENCHMARKS.md; exit 1 on errors or memory growth."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--index", type=Path, default=DEFAULT_INDEX, help="index to copy and serve")
    p.add_argument("--questions", type=Path, default=DEFAULT_CORPUS / "questions.jsonl")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--warmup-seconds", type=float, default=20.0, help="concurrent warm-up")
    p.add_argument("--max-requests", type=int, default=5000, help="a bound whatever the speed")
    p.add_argument("--rss-bound-mb", type=float, default=RSS_BOUND_MB)
    p.add_argument("--startup-timeout", type=float, default=900.0)
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "BENCHMARKS.md")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    figures = run(args)
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    text = section(figures)
    print(text)
    if not args.no_write:
        write_section(args.out, text, "load")
        print(f"wrote the load section of {args.out}", file=sys.stderr)
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
