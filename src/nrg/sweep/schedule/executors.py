"""Run a sweep's cells on a Ray cluster: one Ray task per cell, the rows written here.

Why Ray and not a scheduler of our own: a grid of models x tasks x lengths x
clocks with repeats is days of GPU time on one device, and Ray already
schedules GPUs, retries tasks whose worker died and runs the same on a laptop
and on a cluster (``executor: ray``; install the extra from the repository with
``pip install -c constraints.txt -e '.[ray]'``: there is no ``nrg`` package on PyPI).

What stays exactly as with the local executor:

* Each cell runs exactly as a local isolated cell does: the Ray task calls
  :func:`nrg.sweep.schedule.cell.run_isolated` (an isolated one-shot ``python -I``
  process, :mod:`nrg.sweep.schedule.cell`), so a crash, a hang past ``cell_timeout_s``
  (SIGTERM, grace, SIGKILL) or an OOM kill becomes the same failed row with
  the same words, and clocks / power limits are restored as always.
* The cell process writes into a scratch store on the worker; the task sends
  the Parquet file's bytes (and the log) back, and the driver writes the
  columns the cell wrote with :meth:`RunStore.write_cell` -- atomically, into
  the one run folder. No shared filesystem is needed, and resume works as
  before: a ``kill -9`` of the driver loses at most the cells in flight, never
  duplicates one.

What Ray adds: a task whose worker or node died is retried
(:data:`MAX_RETRIES`); after that, the cell is a failed row, never an
exception. Resources come from the cell (:func:`cell_resources`): the GPUs
it needs (one for ``cuda``, each of a sharded model's), else one CPU; a cell
that locks clocks or sets a power limit holds its whole GPU, one that caps
CPU frequency holds a whole node. On the worker, the cell measures what the
driver would measure once (provenance, idle power, CPU bandwidth) on *its*
node (:func:`node_context`), and finds its GPU in NVML by UUID
(:mod:`nrg.dvfs.mapping`).

``ray`` is imported only here, only when ``executor: ray`` is used.
"""
from __future__ import annotations

import dataclasses
import io
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError
from nrg.sweep.config import Cell, SweepConfig
from nrg.sweep.runfolder.store import RunStore
from nrg.sweep.schedule.context import SweepContext, failed_frame

if TYPE_CHECKING:
    import pandas as pd

MAX_RETRIES = 3
INSTALL_HINT = ("from the nrg repository, pip install -c constraints.txt -e '.[ray]' (the ray extra; "
                "there is no nrg package on PyPI)")
RAY_CONNECT_TIMEOUT_S = 3.0   # a HOST:PORT that does not answer a TCP connect in this time is refused
ERROR_CHARS = 2000


def import_ray() -> ModuleType:
    """The ``ray`` module, or a ParameterError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ParameterError(f"executor='ray' needs Ray, which is not installed here: {INSTALL_HINT}") from exc
    return ray


# ------------------------------------------------------------------ resources


@dataclass(frozen=True)
class Resources:
    """What one cell's task asks Ray for."""

    num_cpus: int = 1
    num_gpus: int = 0

    def fits(self, node: Mapping[str, float]) -> bool:
        """True when one node (Ray's resource totals) can hold this cell."""
        return node.get("CPU", 0) >= self.num_cpus and node.get("GPU", 0) >= self.num_gpus


def cell_resources(cell: Cell, node_cpus: int = 1, node_gpus: int = 0) -> Resources:
    """The CPUs and whole GPUs a cell needs; ``node_*`` are the largest node's totals.

    GPUs are never fractional: energy counters, clocks and power limits
    belong to a whole GPU, so a cell must not share one. A cell that changes
    clocks or the power limit holds a GPU even when it computes on the CPU;
    one that caps CPU frequency (every core of the machine) holds a node.
    """
    from nrg.dvfs.mapping import changes_cpu_settings, changes_gpu_settings

    device = cell.settings.device
    if device == "cpu":
        gpus = 0
    elif device == "auto":
        gpus = len(cell.settings.devices) if cell.settings.devices is not None else max(node_gpus, 1)
    else:
        gpus = 1
    if changes_gpu_settings(cell.axes):
        gpus = max(gpus, 1)
    cpus = max(node_cpus, 1) if changes_cpu_settings(cell.axes) else 1
    return Resources(cpus, gpus)


def plan_resources(cells: Sequence[Cell], nodes: Sequence[Mapping[str, float]]) -> dict[str, Resources]:
    """Resources per cell id; ParameterError when a cell fits no node of the cluster."""
    node_cpus = int(max((n.get("CPU", 0) for n in nodes), default=0))
    node_gpus = int(max((n.get("GPU", 0) for n in nodes), default=0))
    out: dict[str, Resources] = {}
    for cell in cells:
        device = cell.settings.device
        if device.startswith("cuda:") and device != "cuda:0":
            raise ParameterError(f"device={device!r} is not valid with executor='ray': Ray picks each "
                                 "cell's GPU; use device='cuda'")
        needs = cell_resources(cell, node_cpus, node_gpus)
        if not any(needs.fits(n) for n in nodes):
            have = "; ".join(f"{int(n.get('CPU', 0))} CPU, {int(n.get('GPU', 0))} GPU" for n in nodes)
            raise ParameterError(
                f"cell {cell.cell_id} ({cell.model.name}, device={device!r}) needs {needs.num_cpus} CPU "
                f"and {needs.num_gpus} GPU on one node, but no node of the Ray cluster has them "
                f"(nodes: {have or 'none'}); add such a node or use device='cpu'")
        out[cell.cell_id] = needs
    return out


# ------------------------------------------------------------------ driver


def connect(address: str | None) -> ModuleType:
    """Ray, connected: the running session, the cluster at ``address``, or a new local instance.

    A local instance started here lives until this process exits (Ray
    registers its own shutdown), so a notebook's later sweeps reuse it.
    """
    ray = import_ray()
    if not ray.is_initialized():
        options: dict[str, Any] = {"log_to_driver": False}
        if address is None:
            options["include_dashboard"] = False
        elif address != "auto":
            check_explicit_address(address)
        try:
            ray.init(address=address, **options)
        except ConnectionError as exc:
            raise ParameterError(
                f"ray_address={address!r} is not valid: no Ray cluster answers there ({exc}); start one "
                "with `ray start --head`, or, if it runs with token authentication, copy its "
                "~/.ray/auth_token here and set RAY_AUTH_MODE=token") from exc
    return ray


def check_explicit_address(address: str, environ: Mapping[str, str] | None = None) -> None:
    """Fail fast on ``HOST:PORT``, before Ray's 30 s of connection retries.

    Ray >= 2.60 clusters use token authentication. With ``address='auto'`` Ray
    finds the token by itself; with an explicit ``HOST:PORT`` the driver must
    have ``RAY_AUTH_MODE=token`` or Ray retries for about 30 s and then fails
    with a message that does not say why. So: nothing listening there is
    refused at once; with the head's token on this machine (``~/.ray/auth_token``,
    ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``) and ``RAY_AUTH_MODE`` unset,
    nrg sets ``RAY_AUTH_MODE=token`` for this process; without a token and
    without ``RAY_AUTH_MODE`` (a cluster without authentication works so) it
    says, before Ray starts retrying, what to copy or set if Ray then fails.
    """
    import socket
    from pathlib import Path

    env = os.environ if environ is None else environ
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ParameterError(f"ray_address={address!r} is not valid; give 'auto' or HOST:PORT (e.g. head:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ParameterError(f"ray_address={address!r} is not valid: nothing answers there ({exc}); start the "
                             "head with `ray start --head --port PORT`, or use --address auto on a node "
                             "of the cluster") from None
    if env.get("RAY_AUTH_MODE"):
        return
    token_file = Path(env.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if env.get("RAY_AUTH_TOKEN") or token_file.is_file():
        os.environ["RAY_AUTH_MODE"] = "token"   # what Ray does by itself for 'auto' only
        return
    print(f"nrg: connecting to Ray at {address} without a token and without RAY_AUTH_MODE: a Ray >= 2.60 "
          "cluster uses token authentication, and then Ray retries for about 30 s and fails; if so, copy "
          f"the head's ~/.ray/auth_token to {token_file} (nrg then sets RAY_AUTH_MODE=token), or set "
          "RAY_AUTH_MODE=disabled to say the cluster runs without authentication", file=sys.stderr)


def alive_nodes(ray: Any) -> list[dict[str, float]]:
    """Resource totals of every alive node of the cluster."""
    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def check_cluster(cfg: SweepConfig, cells: Sequence[Cell]) -> dict[str, Resources]:
    """Connect and check every cell against the cluster, before any file is written."""
    if not cfg.isolate:
        raise ParameterError("isolate=False is not valid with executor='ray': each cell runs in its own "
                             "process inside its Ray task")
    ray = connect(cfg.ray_address)
    return plan_resources(cells, alive_nodes(ray))


def with_executor(cfg: SweepConfig, executor: str | None, ray_address: str | None) -> SweepConfig:
    """``cfg`` with the executor / address given on the command line (None keeps the config's)."""
    from nrg.errors import check_choice
    from nrg.sweep.config import EXECUTORS

    if executor is not None:
        check_choice("executor", executor, EXECUTORS)
        cfg = dataclasses.replace(cfg, executor=executor)
    if ray_address is not None:
        cfg = dataclasses.replace(cfg, ray_address=ray_address)
    return cfg


def run_cells_ray(cells: Sequence[Cell], context: SweepContext, run_store: RunStore,
                  timeout_s: float | None, address: str | None, progress: bool = True,
                  name: str = "sweep", skipped: int = 0, offline: bool = True,
                  claim: Callable[[Cell, ExitStack], bool] | None = None) -> None:
    """Measure ``cells`` as Ray tasks; write each result into ``run_store`` as it arrives.

    ``offline``: cells may not reach the Hugging Face hub, as with the local executor.
    ``claim(cell, stack)`` (the local executor's, :func:`nrg.sweep.run._claimer`)
    claims a cell on the driver for the whole sweep, as two sweeps may share a
    folder; a cell it refuses (another live sweep holds it, or finished it) is not sent.
    """
    from nrg.progress import bar as progress_bar  # one summary line stays in a page

    ray = connect(address)
    with ExitStack() as claims:
        if claim is not None:
            cells = [c for c in cells if claim(c, claims)]
        refs = _submit(ray, cells, context, timeout_s, offline)
        pending = list(refs)
        try:
            with progress_bar(range(len(cells)), desc=f"{name} [ray]", unit="cell", enabled=progress,
                              done_before=skipped) as bar:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    for ref in done:
                        cell = refs[ref]
                        frame, log = _result(ray, ref, cell, context)
                        run_store.write_cell(cell.cell_id, frame)
                        if log:
                            (run_store.logs_dir / f"{cell.cell_id}.log").write_bytes(log)
                        bar.update(1)
        except BaseException:  # KeyboardInterrupt: stop the cells still queued or running
            for ref in pending:
                ray.cancel(ref, force=True)
            raise


def _submit(ray: Any, cells: Sequence[Cell], context: SweepContext, timeout_s: float | None,
            offline: bool) -> dict[Any, Cell]:
    """One Ray task per cell, with the cell's resources; the task's reference -> its cell."""
    needs = plan_resources(cells, alive_nodes(ray))
    task = ray.remote(cell_task)
    refs: dict[Any, Cell] = {}
    for cell in cells:
        r = needs[cell.cell_id]
        options = task.options(num_cpus=r.num_cpus, num_gpus=r.num_gpus, max_retries=MAX_RETRIES,
                               name=f"nrg-cell-{cell.cell_id}")
        refs[options.remote(cell.to_dict(), context.to_dict(), timeout_s, r.num_gpus, offline)] = cell
    return refs


def _result(ray: Any, ref: Any, cell: Cell, context: SweepContext) -> tuple[pd.DataFrame, bytes]:
    """The cell's rows and log; a task that Ray gave up on becomes the cell's failed row.

    Only the columns the cell process wrote come back (the file holds every
    schema column, conformed), so the store reads the row as it would a local cell's.
    """
    import pyarrow.parquet as pq

    from nrg.sweep.runfolder.schema import written_columns

    try:
        data, log = ray.get(ref)
    except ray.exceptions.RayError as exc:
        error = f"Ray task failed (retried up to {MAX_RETRIES} times): {type(exc).__name__}: {exc}"
        return failed_frame(cell, context, error[:ERROR_CHARS]), b""
    table = pq.read_table(io.BytesIO(data))
    return table.select(written_columns(table)).to_pandas(), log


# ------------------------------------------------------------------ worker


def cell_task(cell_dict: Mapping[str, Any], context_dict: Mapping[str, Any],
              timeout_s: float | None, num_gpus: int = 0, offline: bool = True) -> tuple[bytes, bytes]:
    """Body of a cell's Ray task: the local isolated cell, in a scratch store; the Parquet bytes and log back.

    The cell measures this node (``node_context``) and sees only the GPUs Ray
    gave the task (:func:`child_env`); everything else -- the process, its
    timeout and exit reasons, the failed row -- is :func:`nrg.sweep.schedule.cell.run_isolated`'s.
    """
    from nrg.sweep.schedule.cell import run_isolated

    cell = Cell.from_dict(cell_dict)
    context = SweepContext.from_dict(context_dict)
    with tempfile.TemporaryDirectory(prefix="nrg-cell-") as tmp:
        store = RunStore.at(tmp)
        store.create()
        run_isolated(cell, context, store, timeout_s, offline=offline, node_context=True,
                     env=child_env(num_gpus, os.environ))
        log_path = store.logs_dir / f"{cell.cell_id}.log"
        return store.cell_path(cell.cell_id).read_bytes(), log_path.read_bytes() if log_path.exists() else b""


def child_env(num_gpus: int, environ: Mapping[str, str]) -> dict[str, str]:
    """The cell process' environment: a cell given no GPU may see none.

    Ray sets ``CUDA_VISIBLE_DEVICES`` to the GPUs of a GPU task; a task
    without GPUs may still see every GPU of its node, whose energy and clocks
    belong to other cells -- so the cell process gets an empty list.
    """
    env = dict(environ)
    if num_gpus == 0:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env
