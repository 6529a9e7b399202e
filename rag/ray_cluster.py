"""A Ray cluster of a few nodes on this machine that nothing off the machine can reach.

Ray's GCS and raylets listen on every interface (``*:port``) whatever ``--node-ip-address``
says, and some agents bind the machine's address: no option keeps them on 127.0.0.1. So the
cluster lives in a private network namespace (``unshare -n``, then ``ip link set lo up``; needs
root) whose only interface is loopback: a wildcard listener there is reachable from 127.0.0.1
only. Each node is a separate ``ray start --block`` process (entered into the namespace with
``nsenter``) in its own process group, with ``--node-ip-address 127.0.0.1``, an explicit free
port for every server Ray runs, no dashboard, a capped object store and a session folder of the
caller's choosing. A driver joins by running in the same namespace (:meth:`LoopbackCluster.
command`). :meth:`LoopbackCluster.stop` ends what it started by process id (each node's process
group, any descendant left, then the namespace's holder). :meth:`LoopbackCluster.listeners`
and :meth:`LoopbackCluster.interfaces` read ``ss -ltnp`` and ``ip addr`` inside the namespace,
so a test can check that nothing listens beyond loopback.

The ``ray`` command line is run as a program; this module does not import ``ray``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_range(width: int) -> tuple[int, int]:
    """``width`` consecutive ports that were free a moment ago (for Ray's worker processes)."""
    for _ in range(50):
        start = free_port()
        if start + width >= 65000:
            continue
        ok = True
        for p in range(start, start + width):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return start, start + width - 1
    raise RuntimeError("no range of free loopback ports for Ray's workers")


def _ray_program() -> str:
    beside = Path(sys.executable).with_name("ray")
    found = str(beside) if beside.is_file() else shutil.which("ray")
    if not found:
        raise RuntimeError("the `ray` program is not installed (pip install 'ray[data]')")
    return found


def _node_ports() -> list[str]:
    lo, hi = _free_range(24)
    ports = {
        "--node-manager-port": free_port(),
        "--object-manager-port": free_port(),
        "--dashboard-agent-listen-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--metrics-export-port": free_port(),
        "--runtime-env-agent-port": free_port(),
    }
    args = [x for k, v in ports.items() for x in (k, str(v))]
    return [*args, "--min-worker-port", str(lo), "--max-worker-port", str(hi)]


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids of every process (from /proc)."""
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def descendants(pids: Iterable[int]) -> set[int]:
    """These processes and all their descendants (alive now)."""
    tree = _children()
    seen: set[int] = set()
    stack = list(pids)
    while stack:
        pid = stack.pop()
        if pid in seen or not Path(f"/proc/{pid}").exists():
            continue
        seen.add(pid)
        stack.extend(tree.get(pid, []))
    return seen


_SS_PID = re.compile(r"pid=(\d+)")


def listeners(pids: Iterable[int], prefix: Sequence[str] = ()) -> list[tuple[str, int]]:
    """(local address, pid) of every listening TCP socket of these processes (``ss -ltnp``).

    ``prefix`` runs ``ss`` in another network namespace (``nsenter --net=…``).
    """
    wanted = set(pids)
    out = subprocess.run(
        [*prefix, "ss", "-ltnpH"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        local = parts[3]
        for pid in {int(p) for p in _SS_PID.findall(line)} & wanted:
            found.append((local, pid))
    return found


def on_loopback(address: str) -> bool:
    """Whether an ``ss`` local address (``127.0.0.1:80``, ``[::ffff:127.0.0.1]:80``, ``[::1]:80``)
    is a loopback one (a wildcard ``*:80`` is not)."""
    host = address.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
    return host.startswith("127.") or host == "::1"


@dataclass
class LoopbackCluster:
    """``nodes`` Ray nodes started as separate processes, all on 127.0.0.1.

    ``temp_dir`` is Ray's session folder (keep its path short: Ray puts Unix sockets in it).
    ``env`` is added to the nodes' environment (their workers inherit it, e.g. PYTHONPATH).
    """

    temp_dir: Path
    nodes: int = 2
    cpus_per_node: int = 1
    object_store_memory: int = 128 * 1024 * 1024
    env: Mapping[str, str] = field(default_factory=dict)
    start_timeout: float = 120.0
    port: int = 0
    _holder: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False)
    _logs: list[IO[bytes]] = field(default_factory=list, repr=False)
    _names: list[str] = field(default_factory=list, repr=False)

    @property
    def address(self) -> str:
        """The head's GCS address, what ``ray.init`` and ``kazrag index --ray`` take."""
        return f"127.0.0.1:{self.port}"

    @property
    def netns(self) -> str:
        """The cluster's network namespace (a path ``nsenter --net=`` takes)."""
        if self._holder is None:
            raise RuntimeError("the cluster is not started")
        return f"/proc/{self._holder.pid}/ns/net"

    def command(self, args: Sequence[str]) -> list[str]:
        """``args`` run inside the cluster's network namespace (how a driver reaches it)."""
        return ["nsenter", f"--net={self.netns}", *args]

    def _start_namespace(self) -> None:
        """A process holding a fresh network namespace with loopback up (and nothing else)."""
        self._holder = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", "ip link set lo up && exec sleep infinity"],
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        mine = os.readlink("/proc/self/ns/net")
        while time.monotonic() < deadline:
            if self._holder.poll() is not None:
                raise RuntimeError("could not make a network namespace (unshare -n needs root)")
            try:
                theirs = os.readlink(self.netns)
            except OSError:
                theirs = mine
            if theirs != mine and "UP" in self._run(["ip", "-o", "link", "show", "lo"]):
                return
            time.sleep(0.1)
        raise RuntimeError("the network namespace did not come up")

    def _run(self, args: Sequence[str]) -> str:
        return subprocess.run(self.command(args), capture_output=True, text=True, timeout=30).stdout

    def interfaces(self) -> list[str]:
        """Every address of the cluster's namespace (``ip -o addr``): loopback ones only."""
        return [line.split()[3] for line in self._run(["ip", "-o", "addr"]).splitlines() if line]

    def _start_node(self, args: list[str], name: str) -> None:
        # Ray turns token authentication on for a node when ~/.ray/auth_token exists (a local
        # `ray.init` writes one), and a driver joining by address then fails with
        # InvalidAuthToken. The cluster is reachable from its loopback-only namespace alone, so
        # its mode is set explicitly rather than left to whatever the home folder holds.
        env = {
            **os.environ,
            "RAY_AUTH_MODE": "disabled",
            **self.env,
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        log = (self.temp_dir / f"{name}.log").open("wb")
        self._names.append(name)
        self._logs.append(log)
        cmd = [
            _ray_program(),
            "start",
            "--block",
            "--node-ip-address",
            "127.0.0.1",
            "--num-cpus",
            str(self.cpus_per_node),
            "--object-store-memory",
            str(self.object_store_memory),
            "--disable-usage-stats",
            *_node_ports(),
            *args,
        ]
        logger.info("starting Ray %s: %s", name, " ".join(cmd))
        self._procs.append(
            subprocess.Popen(
                self.command(cmd),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        )

    def _wait_nodes(self) -> None:
        """Every node has joined: ``ray start`` says "Ray runtime started" once it has."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self._procs):
                raise RuntimeError(f"a Ray node exited at start; see {self.temp_dir}/*.log")
            logs = [(self.temp_dir / f"{n}.log") for n in self._names]
            if all("Ray runtime started" in p.read_text(errors="replace") for p in logs):
                return
            time.sleep(0.3)
        raise RuntimeError(f"{self.nodes} Ray nodes did not start; see {self.temp_dir}/*.log")

    def start(self) -> LoopbackCluster:
        """Start the head, then the other nodes; return once every node's raylet runs."""
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        try:
            self._start_namespace()
            self._start_node(
                [
                    "--head",
                    "--port",
                    str(self.port),
                    "--include-dashboard",
                    "false",
                    "--temp-dir",
                    str(self.temp_dir.resolve()),
                ],
                "head",
            )
            self._wait_nodes()
            for i in range(1, self.nodes):
                self._start_node(["--address", self.address], f"node{i}")
            self._wait_nodes()
        except BaseException:
            self.stop()
            raise
        return self

    def pids(self) -> set[int]:
        """Every process of the cluster: the nodes' ``ray start`` and all they started."""
        return descendants(p.pid for p in self._procs)

    def listeners(self, pids: Iterable[int] | None = None) -> list[tuple[str, int]]:
        """(address, pid) of every TCP socket the cluster's processes (or ``pids``) listen on.

        Read inside the namespace: a wildcard address there is loopback (see :meth:`interfaces`).
        """
        return listeners(self.pids() if pids is None else pids, ["nsenter", f"--net={self.netns}"])

    def stop(self, timeout: float = 30.0) -> None:
        """End every process the cluster started, by process id (graceful first)."""
        pids = self.pids()
        for p in reversed(self._procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.1, deadline - time.monotonic()))
        while time.monotonic() < deadline and any(Path(f"/proc/{q}").exists() for q in pids):
            time.sleep(0.2)
        for pid in pids | {p.pid for p in self._procs}:
            _kill(pid)
        for p in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
        for log in self._logs:
            log.close()
        self._procs.clear()
        self._logs.clear()
        self._names.clear()
        if self._holder is not None:
            _kill(self._holder.pid)
            self._holder.wait(10)
            self._holder = None

    def __enter__(self) -> LoopbackCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill(pid: int) -> None:
    """SIGKILL a process still alive (a zombie is only reaped by its parent)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return
    if state == "Z":
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
