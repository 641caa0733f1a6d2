"""Does the run order let background load pose as an effect? Sequential vs blocked random order.

Two cells that are the same model with the same settings under two labels
(``A`` and ``B``: the true effect is zero) are measured ``--repeats`` times
each, in two designs:

* ``sequential`` -- every repeat of A, then every repeat of B (how cells ran
  before blocks existed), analysed with a one-way ANOVA on the label;
* ``blocked`` -- one repeat of each cell per block, in a seeded random order
  per block, analysed with the label plus the block as an additive factor.

A deterministic background load (``--load-procs`` processes spinning on the
CPU, shipped here) switches on when half of the sweep's repeats are done and
stays on to the end, the way a neighbour's job starts mid-sweep. Over
``--seeds`` seeds the script reports how often each design declares the
label significant at alpha = 0.05 (the true rate is 0.05 at most). The
measure is the decode-inclusive generate time per token and its (estimated)
energy per token.

Run: ``python benchmarks/bench_order.py [--seeds 20] [--repeats 6]``.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nrg.errors import ParameterError
from nrg.sweep import axes


def _spin(stop_at: float) -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)   # forked inside the sweep: not its handler
    x = 0
    while time.monotonic() < stop_at:
        x += 1


class Load:
    """``procs`` busy processes, started on demand, stopped at ``stop()``."""

    def __init__(self, procs: int) -> None:
        self.procs = procs
        self.running: list[multiprocessing.Process] = []

    def start(self) -> None:
        if self.running:
            return
        for _ in range(self.procs):
            p = multiprocessing.Process(target=_spin, args=(time.monotonic() + 3600,), daemon=True)
            p.start()
            self.running.append(p)

    def stop(self) -> None:
        for p in self.running:
            p.terminate()
            p.join()
        self.running = []


def _label_axis() -> None:
    def validate(values: object) -> None:
        for v in values:  # type: ignore[attr-defined]
            if v not in ("A", "B"):
                raise ParameterError(f"label={v!r} is not valid; choose one of: 'A', 'B'")

    axes.register(axes.Axis("label", None, validate, doc="benchmark label (no effect)"))


def _config(seed: int, repeats: int, order: str) -> dict[str, object]:
    return {
        "name": f"bench-order-{order}-{seed}", "models": [{"name": "gpt2", "weights": "random", "tiny": True}],
        "input_tokens": [32], "output_tokens": [16], "repeats": repeats, "warmup": 1, "idle_s": 0,
        "isolate": False, "seed": seed, "roofline": False, "order": order, "axes": {"label": ["A", "B"]},
        # flag busy windows but do not redo them: the comparison is of the run order alone
        "interference": {"max_retries": 0}, "quality": {"items": 0},
    }


def one_run(seed: int, repeats: int, order: str, load: Load, out: Path) -> object:
    """Rows of one sweep; the load switches on halfway through its repeats."""
    from nrg.sweep.run import run_sweep

    total = 2 * repeats
    done = {"n": 0}

    def on_repeat(_cell_id: str) -> None:
        done["n"] += 1
        if done["n"] == total // 2:
            load.start()

    try:
        return run_sweep(_config(seed, repeats, order), out / f"{order}-{seed}", progress=False,
                         on_repeat=on_repeat)
    finally:
        load.stop()


def significant(rows: object, measure: str, alpha: float = 0.05) -> bool:
    """Is the label significant in the book's own ANOVA (:func:`nrg.stats.anova`)?

    ``block="auto"``: rows of the blocked run (they carry ``run_order``) get the
    block as an additive factor; the sequential run's rows do not.
    """
    from nrg import stats

    data = rows[rows["phase"] == "generate"].copy()  # type: ignore[index]
    data["y"] = data[measure] / data["tokens"]
    result = stats.anova(data, "y", ["label"], robust="never", tukey=False, alpha=alpha)
    return "label" in result.significant()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--load-procs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/nrg-bench-order"))
    ns = parser.parse_args()
    _label_axis()
    load = Load(ns.load_procs)
    hits = {(o, m): 0 for o in ("sequential", "blocked") for m in ("time_s", "energy_j")}
    started = time.monotonic()
    for seed in range(ns.seeds):
        for order in ("sequential", "blocked"):
            rows = one_run(seed, ns.repeats, order, load, ns.out)
            for measure in ("time_s", "energy_j"):
                hits[(order, measure)] += significant(rows, measure)
        print(f"seed {seed}: " + ", ".join(f"{o}/{m}={n}" for (o, m), n in hits.items()), flush=True)
    print(f"\n{ns.seeds} seeds x 2 designs, {ns.repeats} repeats per cell, background load of "
          f"{ns.load_procs} spinning processes from the sweep's midpoint; {time.monotonic() - started:.0f} s")
    print("share of seeds declaring the (null) label effect significant at alpha = 0.05:")
    for (order, measure), n in hits.items():
        print(f"  {order:10s} {measure:9s} {n}/{ns.seeds} = {n / ns.seeds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
