"""Overhead of the runner's measured path against a bare ``model.generate``.

SmolLM2-135M (real weights, fp32, CPU), batch 1, 128 prompt tokens, 64 new
tokens. Interleaved in one process, alternating which goes first (ABBA), so
drift in machine load hits both sides alike:

* bare   -- ``model.generate(min_new_tokens = max_new_tokens = 64)`` timed with perf_counter;
* runner -- :func:`nrg.workloads.phases.measure_repeat`'s generate window exactly as a sweep
  runs it (energy monitor open, begin/end window with meter reads), timed with
  perf_counter around begin_window .. end_window; the runner's own reported
  tokens/s (the window's elapsed time) is printed too.

Target: runner tokens/s >= 0.98 x bare. Run: ``python benchmarks/bench_runner.py [--pairs N]``.
"""
from __future__ import annotations

import argparse
import statistics
import time

from nrg.sweep.config import parse_config
from nrg.workloads.cells import open_monitor
from nrg.workloads.generation import load_model, make_inputs

OUTPUT_TOKENS = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--model", default="smollm2-135m")
    ns = parser.parse_args()
    cfg = parse_config({"models": [{"name": ns.model, "weights": "real"}], "input_tokens": [128],
                        "output_tokens": [OUTPUT_TOKENS], "batch_sizes": [1], "dtypes": ["float32"],
                        "isolate": False})
    cell = cfg.cells()[0]
    loaded = load_model(cell)
    workload = make_inputs(loaded, cell, task=None)
    import torch

    def bare() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            out = loaded.model.generate(**workload.inputs, max_new_tokens=OUTPUT_TOKENS,
                                        min_new_tokens=OUTPUT_TOKENS, do_sample=False,
                                        pad_token_id=loaded.pad_token_id())
        elapsed = time.perf_counter() - start
        assert out.shape[1] - workload.inputs["input_ids"].shape[1] == OUTPUT_TOKENS
        return OUTPUT_TOKENS / elapsed

    bare_tps: list[float] = []
    runner_tps: list[float] = []
    reported_tps: list[float] = []
    with open_monitor(cell) as monitor:
        def runner() -> float:
            start = time.perf_counter()
            monitor.begin_window("generate")
            workload.generate()
            m = monitor.end_window("generate")
            elapsed = time.perf_counter() - start
            reported_tps.append(OUTPUT_TOKENS / m.elapsed_s)
            return OUTPUT_TOKENS / elapsed

        bare(), runner()                                   # warm-up, not counted
        for i in range(ns.pairs):
            first, second = (bare, runner) if i % 2 == 0 else (runner, bare)
            for fn in (first, second):
                (bare_tps if fn is bare else runner_tps).append(fn())
    report(bare_tps, runner_tps, reported_tps)


def report(bare_tps: list[float], runner_tps: list[float], reported_tps: list[float]) -> None:
    def line(name: str, xs: list[float]) -> str:
        q = statistics.quantiles(xs, n=4)
        return (f"{name:<18} median {statistics.median(xs):7.2f} tok/s   IQR {q[0]:7.2f}..{q[2]:7.2f}"
                f"   min {min(xs):7.2f}  max {max(xs):7.2f}  (n={len(xs)})")

    print(line("bare generate", bare_tps))
    print(line("runner (wall)", runner_tps))
    print(line("runner (reported)", reported_tps))
    ratios = [r / b for r, b in zip(runner_tps, bare_tps, strict=True)]
    q = statistics.quantiles(ratios, n=4)
    ratio = statistics.median(runner_tps) / statistics.median(bare_tps)
    print(f"ratio of medians runner/bare = {ratio:.3f} (target >= 0.98); "
          f"per-pair ratio median {statistics.median(ratios):.3f}, IQR {q[0]:.3f}..{q[2]:.3f}")


if __name__ == "__main__":
    main()
