"""Two ``kazrag serve`` replicas sharing one ``milvus-lite server`` on loopback.

A document uploaded through one replica is answered by the other and deleted through the other
is gone from both; the Milvus server killed and restarted: the replicas answer 503 meanwhile
(no crash) and reconnect. Every process is started on 127.0.0.1, on a free port, and stopped
by its pid; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.settings import PROJECT_ROOT
from tests.helpers import free_port

pytest.importorskip("pymilvus")

BIN = Path(sys.executable).parent
CORPUS_DOC = (
    "Шабдан ауылының мектебі\n\n"
    "Шабдан ауылындағы мектеп 1958 жылы салынған. Мектепте үш жүз оқушы оқиды.\n"
    "Мектептің бірінші директоры Әбілқасым Нұрғалиев болған.\n"
)
UPLOAD = (
    "Көкжиек көлі туралы\n\n"
    "Көкжиек көлі Алатау етегінде орналасқан. Көлдің ұзындығы он екі шақырым.\n"
    "Көкжиек көліне жыл сайын аққулар ұшып келеді.\n"
)
QUESTION = "Көкжиек көлінің ұзындығы қанша?"
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("KAZRAG_")},
    "HF_HUB_OFFLINE": "1",
}


def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {timeout:.0f} s ({last})")


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def _milvus(data: Path, port: int) -> subprocess.Popen[Any]:
    return subprocess.Popen(
        [
            str(BIN / "milvus-lite"),
            "server",
            "--data-dir",
            str(data),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )


def _listening(pid: int) -> list[str]:
    """The local addresses process ``pid`` listens on (TCP), from ``ss -ltnp``."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=10).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("replicas")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "shabdan.txt").write_text(CORPUS_DOC, encoding="utf-8")
    mport = free_port()
    uri = f"http://127.0.0.1:{mport}"
    procs: dict[str, subprocess.Popen[Any]] = {}
    try:
        procs["milvus"] = _milvus(root / "milvus", mport)
        _wait(lambda: _listening(procs["milvus"].pid), 60, "milvus-lite server listening")
        common = ["--store", uri, "--corpus", str(corpus)]
        subprocess.run(
            [str(BIN / "kazrag"), "index", *common, "--quiet"],
            cwd=PROJECT_ROOT,
            env=ENV,
            check=True,
            timeout=600,
            capture_output=True,
        )
        urls = {}
        for name in ("a", "b"):
            port = free_port()
            procs[name] = subprocess.Popen(
                [
                    str(BIN / "kazrag"),
                    "serve",
                    *common,
                    "--port",
                    str(port),
                    "--index",
                    str(root / f"index-{name}"),
                ],
                cwd=PROJECT_ROOT,
                env={**ENV, "KAZRAG_UPLOADS": str(root / f"uploads-{name}")},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            urls[name] = f"http://127.0.0.1:{port}"
        for name, url in urls.items():
            _wait(
                lambda url=url: httpx.get(f"{url}/api/health", timeout=5).json()["ready"],
                300,
                f"replica {name} ready",
            )
        yield {"root": root, "uri": uri, "mport": mport, "procs": procs, **urls}
    finally:
        for proc in procs.values():
            _stop(proc)


def _search(url: str, query: str = QUESTION) -> httpx.Response:
    return httpx.post(f"{url}/api/search", json={"query": query, "top_k": 5}, timeout=60)


def _doc_ids(url: str) -> set[str]:
    r = httpx.get(f"{url}/api/documents", timeout=30)
    assert r.status_code == 200, r.text
    return {d["doc_id"] for d in r.json()["documents"]}


@pytest.mark.model
@pytest.mark.integration
def test_every_listener_is_on_loopback(cluster: dict[str, Any]) -> None:
    for name in ("milvus", "a", "b"):
        addresses = _listening(cluster["procs"][name].pid)
        assert addresses, name
        # gRPC binds 127.0.0.1 as the IPv4-mapped [::ffff:127.0.0.1]: loopback as well
        hosts = {a.rsplit(":", 1)[0] for a in addresses}
        assert hosts <= {"127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"}, (name, addresses)


@pytest.mark.model
@pytest.mark.integration
def test_an_upload_through_one_replica_is_answered_by_the_other_and_deleted_from_both(
    cluster: dict[str, Any],
) -> None:
    a, b = cluster["a"], cluster["b"]
    assert _doc_ids(a) == _doc_ids(b) == {"shabdan.txt"}
    r = httpx.post(
        f"{a}/api/documents",
        files={"file": ("kokzhiek.txt", UPLOAD.encode(), "text/plain")},
        timeout=300,
    )
    assert r.status_code == 201, r.text
    assert _doc_ids(b) == {"shabdan.txt", "kokzhiek.txt"}
    hits = _search(b).json()["results"]
    assert hits[0]["doc_id"] == "kokzhiek.txt"
    ans = httpx.post(f"{b}/api/ask", json={"question": QUESTION}, timeout=120).json()
    assert "он екі шақырым" in ans["answer"]
    assert {c["doc_id"] for c in ans["citations"]} == {"kokzhiek.txt"}
    # the replica that did not receive the file deletes it; both stop finding it
    r = httpx.delete(f"{b}/api/documents/kokzhiek.txt", timeout=120)
    assert r.status_code == 200, r.text
    for url in (a, b):
        assert _doc_ids(url) == {"shabdan.txt"}
        assert all(h["doc_id"] != "kokzhiek.txt" for h in _search(url).json()["results"])
    # a seed (corpus) document cannot be removed through the API
    assert httpx.delete(f"{a}/api/documents/shabdan.txt", timeout=30).status_code == 409


@pytest.mark.model
@pytest.mark.integration
def test_the_replicas_answer_503_while_milvus_is_down_and_reconnect(
    cluster: dict[str, Any],
) -> None:
    procs = cluster["procs"]
    a, b = cluster["a"], cluster["b"]
    before = _search(a, "Мектептің бірінші директоры кім болған?").json()["results"]
    assert before and before[0]["doc_id"] == "shabdan.txt"
    os.kill(procs["milvus"].pid, signal.SIGKILL)
    procs["milvus"].wait(timeout=30)
    for url in (a, b):
        r = _search(url, "Мектептің бірінші директоры кім болған?")
        assert r.status_code == 503, r.text
        assert "Milvus store" in r.json()["error"]
        assert r.json()["code"] == "store_unavailable"
        assert r.headers.get("retry-after")
        assert (
            httpx.post(f"{url}/api/ask", json={"question": QUESTION}, timeout=60).status_code == 503
        )
        assert httpx.get(f"{url}/api/health", timeout=10).status_code == 200  # still alive
    assert procs["a"].poll() is None and procs["b"].poll() is None
    procs["milvus"] = _milvus(cluster["root"] / "milvus", cluster["mport"])
    for url in (a, b):
        r = _wait(
            lambda url=url: (
                (resp := _search(url, "Мектептің бірінші директоры кім болған?"))
                and resp.status_code == 200
                and resp
            ),
            90,
            "the replica answering again",
        )
        assert r.json()["results"] == before
