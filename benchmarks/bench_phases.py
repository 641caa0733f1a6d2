"""Prefill / decode split: the old two-runs difference against the one-pass hook, side by side.

Old (``two-runs-difference``, the runner's method until this benchmark's
commit): prefill is its own ``generate`` of 1 token, decode = generate -
prefill from two different runs. New (``one-pass-hook``, the runner's method
now): one ``generate`` whose window a streamer hook cuts at the first new
token (:mod:`nrg.workloads.phases`). Both run on the same loaded model and the same
inputs, interleaved repeat by repeat in ABBA order (old-new, new-old, ...) so
drift in machine load hits both alike. Reported per cell and over all cells:

* share of repeats whose decode time or energy is negative or NaN;
* coefficient of variation (sd / mean) of decode energy over the repeats;
* TTFT agreement: median of new / old TTFT over the repeats;
* overhead of the hook on tokens/s: ``generate`` in a monitor window with the
  hook against the same window without it, ABBA pairs; median and IQR of
  (with hook / without - 1) of tokens per wall second -- target: no worse
  than -1 % -- and per CPU second of this process (steadier on a shared machine).

Energy is whatever the machine offers (here: the CPU estimate, CPU time x W
per core). Run: ``PYTHONPATH=src python benchmarks/bench_phases.py
[--model smollm2-135m] [--cells 64x16,128x32] [--repeats 10] [--pairs 20]``.
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from typing import Any

from nrg.sweep.config import parse_config
from nrg.workloads.cells import open_monitor
from nrg.workloads.generation import GenerationInputs, load_model, make_inputs
from nrg.workloads.phases import measure_repeat

OLD, NEW = "two-runs-difference", "one-pass-hook"


def old_repeat(workload: GenerationInputs, monitor: Any) -> dict[str, float]:
    """The former method: a 1-token generate window, then a full generate window; decode = difference."""
    monitor.begin_window("prefill")
    workload.loaded.generate(workload.inputs, 1)
    prefill = monitor.end_window("prefill")
    monitor.begin_window("generate")
    workload.generate()
    generate = monitor.end_window("generate")
    decode = generate.minus(prefill, "decode")
    return {"ttft_s": prefill.elapsed_s, "decode_s": decode.elapsed_s, "decode_j": decode.total_j(),
            "other_cpu_frac": generate.other_cpu_frac}


def new_repeat(workload: GenerationInputs, monitor: Any) -> dict[str, float]:
    """The runner's method: one generate, cut at the first new token."""
    one = measure_repeat(workload, monitor)
    return {"ttft_s": one.prefill.elapsed_s, "decode_s": one.decode.elapsed_s,
            "decode_j": one.decode.total_j(), "other_cpu_frac": one.generate.other_cpu_frac}


def tokens_per_s(workload: GenerationInputs, monitor: Any, hook: bool) -> tuple[float, float]:
    """Tokens per wall second and per CPU second of one generate in a monitor window, hook or not.

    Why CPU seconds too: on a machine shared with other jobs the wall time of
    a run swings by tens of percent, while this process' CPU time does not wait
    for the others.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    if hook:
        measure_repeat(workload, monitor)
    else:
        monitor.begin_window("generate")
        workload.generate()
        monitor.end_window("generate")
    n = workload.output_tokens
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def bad(x: float) -> bool:
    return not math.isfinite(x) or x < 0


def cv(xs: list[float]) -> float:
    good = [x for x in xs if math.isfinite(x)]
    if len(good) < 2 or statistics.mean(good) == 0:
        return math.nan
    return statistics.stdev(good) / abs(statistics.mean(good))


def iqr(xs: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return q[0], q[2]


def run_cell(model: str, weights: str, input_tokens: int, output_tokens: int, repeats: int,
             pairs: int) -> dict[str, Any]:
    cfg = parse_config({"models": [{"name": model, "weights": weights}], "input_tokens": [input_tokens],
                        "output_tokens": [output_tokens], "isolate": False})
    cell = cfg.cells()[0]
    workload = make_inputs(load_model(cell), cell, task=None)
    out: dict[str, Any] = {OLD: [], NEW: [], "overhead": [], "overhead_cpu": []}
    with open_monitor(cell) as monitor:
        workload.generate()                                       # warm-up, not counted
        for i in range(repeats):
            order = (old_repeat, new_repeat) if i % 4 in (0, 3) else (new_repeat, old_repeat)
            for fn in order:
                out[OLD if fn is old_repeat else NEW].append(fn(workload, monitor))
        for i in range(pairs):
            order = (True, False) if i % 4 in (0, 3) else (False, True)
            tps = {hook: tokens_per_s(workload, monitor, hook) for hook in order}
            out["overhead"].append(tps[True][0] / tps[False][0] - 1)
            out["overhead_cpu"].append(tps[True][1] / tps[False][1] - 1)
    return out


def report(cells: dict[str, dict[str, Any]]) -> None:
    print(f"{'cell':<12}{'method':<22}{'neg/NaN decode':>15}{'CV decode J':>13}{'TTFT med s':>12}"
          f"{'other CPU':>11}")
    for name, out in cells.items():
        for method in (OLD, NEW):
            rows = out[method]
            share = sum(bad(r["decode_s"]) or bad(r["decode_j"]) for r in rows) / len(rows)
            print(f"{name:<12}{method:<22}{share:>14.0%} {cv([r['decode_j'] for r in rows]):>12.3f}"
                  f"{statistics.median(r['ttft_s'] for r in rows):>12.4f}"
                  f"{statistics.median(r['other_cpu_frac'] for r in rows):>10.0%}")
        ratios = [n["ttft_s"] / o["ttft_s"] for n, o in zip(out[NEW], out[OLD], strict=True)]
        lo, hi = iqr(ratios)
        print(f"{name:<12}TTFT new/old median {statistics.median(ratios):.3f} (IQR {lo:.3f}..{hi:.3f})")
        for key, unit in (("overhead", "wall"), ("overhead_cpu", "CPU")):
            lo, hi = iqr(out[key])
            print(f"{name:<12}hook effect on tokens per {unit} s: median {statistics.median(out[key]):+.2%} "
                  f"(IQR {lo:+.2%}..{hi:+.2%}, n={len(out[key])} ABBA pairs; target >= -1%)")
    every = {m: [r for out in cells.values() for r in out[m]] for m in (OLD, NEW)}
    for method, rows in every.items():
        share = sum(bad(r["decode_s"]) or bad(r["decode_j"]) for r in rows) / len(rows)
        cvs = [cv([r["decode_j"] for r in out[method]]) for out in cells.values()]
        print(f"all cells   {method:<22} negative/NaN decode {share:.0%} of {len(rows)} repeats; "
              f"median CV of decode energy {statistics.median(cvs):.3f}")
    for key, unit in (("overhead", "wall"), ("overhead_cpu", "CPU")):
        xs = [x for out in cells.values() for x in out[key]]
        lo, hi = iqr(xs)
        print(f"all cells   hook effect on tokens per {unit} s: median {statistics.median(xs):+.2%} "
              f"(IQR {lo:+.2%}..{hi:+.2%}, n={len(xs)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--weights", default="auto", choices=["auto", "real", "random"])
    parser.add_argument("--cells", default="64x16,128x32", help="INPUTxOUTPUT tokens, comma-separated")
    parser.add_argument("--repeats", type=int, default=10, help="repeats per method per cell")
    parser.add_argument("--pairs", type=int, default=20, help="ABBA pairs for the hook overhead")
    ns = parser.parse_args()
    cells = {}
    for spec in ns.cells.split(","):
        i, o = (int(x) for x in spec.split("x"))
        cells[spec] = run_cell(ns.model, ns.weights, i, o, ns.repeats, ns.pairs)
    report(cells)


if __name__ == "__main__":
    main()
