"""Per-cell overhead of the Ray executor against the local one, on tiny cells.

Both executors run every cell the same way, in its own isolated process
(:func:`nrg.sweep.schedule.cell.run_isolated`: ``python -I``, :mod:`nrg.sweep.schedule.cell`),
so the difference per cell is what Ray adds: scheduling a task, a worker,
sending the rows back as Parquet bytes, the cell measuring its node's
provenance. No repeat is redone for interference (``max_retries: 0``): every
cell does the same work whatever the machine's load. The local Ray instance gets one CPU, so its cells run one after
another like the local executor's and the comparison is per cell, not a
speed-up from running two at once. Ray runs a one-CPU task with
``OMP_NUM_THREADS=1``; the local cells get the same here, else the thread
count, not the executor, would make the difference (on a loaded 2-core
machine one thread is faster than two). Runs alternate (local, ray, local, ray...)
so drift on a shared machine does not line up with one executor. Starting Ray
is reported apart: it is paid once per session, not per cell.

The overhead is the median over trials of ray - local per cell (a pair runs
back to back, so slow drift of the machine's load cancels). Also shown: the
round trip of an empty Ray task (the floor of the overhead).
Target: overhead <= 0.5 s per cell. Usage:
``python benchmarks/bench_executor.py [--cells 4] [--trials 2]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 0.5


def config(cells: int, trial: int) -> dict:
    """``cells`` tiny cells; the seed differs per trial so nothing is reused between runs."""
    return {"name": f"bench-{trial}", "models": [{"name": "gpt2", "weights": "random", "tiny": True}],
            "input_tokens": [8 + 4 * i for i in range(cells)], "output_tokens": [2], "repeats": 1,
            "warmup": 0, "idle_s": 0, "roofline": False, "quality": 0, "seed": trial,
            "interference": {"max_retries": 0}}


def timed_sweep(cfg: dict, out: Path, executor: str) -> float:
    from nrg.sweep.run import run_sweep

    t0 = time.perf_counter()
    frame = run_sweep(cfg, out, progress=False, executor=executor)
    elapsed = time.perf_counter() - t0
    if not (frame["status"] == "ok").all():
        raise RuntimeError(f"{executor}: a cell failed:\n{frame['error'].dropna().iloc[0]}")
    return elapsed


def empty_task_s(ray, n: int = 20) -> float:
    @ray.remote(num_cpus=1)
    def nothing() -> None:
        return None

    ray.get(nothing.remote())
    t0 = time.perf_counter()
    for _ in range(n):
        ray.get(nothing.remote())
    return (time.perf_counter() - t0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--trials", type=int, default=2)
    ns = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)
    os.environ["OMP_NUM_THREADS"] = "1"   # what Ray gives a one-CPU task: same threads for both executors
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    start_s = time.perf_counter() - t0
    per_cell: dict[str, list[float]] = {"local": [], "ray": []}
    try:
        floor_s = empty_task_s(ray)
        with tempfile.TemporaryDirectory(prefix="nrg-bench-executor-") as tmp:
            for trial in range(ns.trials):
                order = ("local", "ray") if trial % 2 == 0 else ("ray", "local")
                for executor in order:
                    cfg = config(ns.cells, trial)
                    elapsed = timed_sweep(cfg, Path(tmp) / f"{executor}-{trial}", executor)
                    per_cell[executor].append(elapsed / ns.cells)
                    print(f"trial {trial} {executor:5s}: {elapsed:6.2f} s for {ns.cells} cells "
                          f"({elapsed / ns.cells:.2f} s per cell)", flush=True)
    finally:
        ray.shutdown()
    local_s = statistics.median(per_cell["local"])
    ray_s = statistics.median(per_cell["ray"])
    pairs = sorted(r - lo for r, lo in zip(per_cell["ray"], per_cell["local"], strict=True))
    overhead_s = statistics.median(pairs)
    print(f"\nRay start (once per session): {start_s:.1f} s; empty task round trip: {floor_s * 1e3:.1f} ms")
    print(f"seconds per cell (median of {ns.trials}): local {local_s:.2f}, ray {ray_s:.2f}; "
          f"ratio ray/local {ray_s / local_s:.2f}")
    verdict = "within" if overhead_s <= TARGET_S else "ABOVE"
    print(f"Ray overhead per cell, median of the paired trials: {overhead_s:+.2f} s "
          f"(pairs: {', '.join(f'{d:+.2f}' for d in pairs)}; {verdict} the {TARGET_S} s target)")


if __name__ == "__main__":
    main()
