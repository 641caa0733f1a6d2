"""A request trace and its run: fixed concurrency (closed loop) or Poisson arrivals.

Closed loop (ML.ENERGY's setting): ``concurrency`` clients each send their
next request when the previous one ends, so the engine holds ``concurrency``
requests from the moment the last client started until the queue runs dry.
Poisson: requests arrive at ``rate_rps`` (exponential gaps from a seeded RNG),
at most ``concurrency`` in flight, a queue otherwise.

The runner calls ``hooks.saturated()`` when the load reaches its steady level
(closed loop: the ``concurrency``-th request sent; Poisson: a tenth of the
requests sent) and ``hooks.draining()`` when it starts to fall (the first end
after the last request was sent), both from the calling thread: that is where
the energy monitor's steady-state window opens and closes.
"""
from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nrg.serving.client import Client, RequestResult

CLOSED, POISSON = "closed", "poisson"
ARRIVALS = (CLOSED, POISSON)


@dataclass(frozen=True)
class Trace:
    """Request bodies in send order and, for Poisson arrivals, each one's offset from the start (s)."""

    bodies: tuple[Mapping[str, Any], ...]
    concurrency: int
    arrival: str = CLOSED
    offsets_s: tuple[float, ...] | None = None

    @property
    def saturation_index(self) -> int:
        """Requests sent when the load is at its steady level (1-based count)."""
        if self.arrival == CLOSED:
            return min(self.concurrency, len(self.bodies))
        return max(1, len(self.bodies) // 10)


def build(prompts: Sequence[str], n_requests: int, body: Mapping[str, Any], concurrency: int,
          arrival: str = CLOSED, rate_rps: float | None = None, seed: int = 0) -> Trace:
    """``n_requests`` bodies cycling through ``prompts``; Poisson offsets drawn from ``seed``."""
    if not prompts:
        raise ValueError("a trace needs at least one prompt")
    bodies = tuple({**body, "prompt": prompts[i % len(prompts)]} for i in range(n_requests))
    if arrival == CLOSED:
        return Trace(bodies, concurrency)
    if rate_rps is None or rate_rps <= 0:
        raise ValueError(f"rate_rps={rate_rps!r}: Poisson arrivals need a positive rate")
    rng = random.Random(seed)
    t, offsets = 0.0, []
    for _ in range(n_requests):
        offsets.append(t)
        t += rng.expovariate(rate_rps)
    return Trace(bodies, concurrency, POISSON, tuple(offsets))


@dataclass
class Hooks:
    """Called from the thread running the trace (see the module docstring)."""

    saturated: Callable[[], None] = lambda: None
    draining: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class TraceRun:
    """What a run of a trace gives: the requests (send order) and the hooks' times (perf_counter s)."""

    results: tuple[RequestResult, ...]
    start_s: float
    saturated_s: float
    draining_s: float
    end_s: float


def run(client: Client, trace: Trace, hooks: Hooks | None = None,
        path: str = "/v1/completions") -> TraceRun:
    """Send every request of ``trace``, streaming each response, with ``concurrency`` client threads."""
    hooks = hooks or Hooks()
    todo: queue.Queue[int | None] = queue.Queue()
    ended: queue.Queue[int] = queue.Queue()
    results: list[RequestResult | None] = [None] * len(trace.bodies)

    def worker() -> None:
        conn = client.connection()
        try:
            while (i := todo.get()) is not None:
                results[i] = client.stream(conn, i, trace.bodies[i], path)
                ended.put(i)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, name=f"nrg-client-{k}", daemon=True)
               for k in range(min(trace.concurrency, len(trace.bodies)))]
    for t in threads:
        t.start()
    start_s = time.perf_counter()
    saturated_s, consumed = _send_all(trace, todo, ended, hooks, start_s)
    draining_s = _wait_drain(ended, len(trace.bodies) - consumed, hooks)
    for _ in threads:
        todo.put(None)
    for t in threads:
        t.join()
    done = tuple(r for r in results if r is not None)
    return TraceRun(done, start_s, saturated_s, draining_s, time.perf_counter())


def _send_all(trace: Trace, todo: queue.Queue[int | None], ended: queue.Queue[int], hooks: Hooks,
              start_s: float) -> tuple[float, int]:
    """Queue the requests (closed loop: one per free client; Poisson: at their offsets).

    Returns when the load saturated and how many ends were taken from ``ended``.
    """
    consumed, saturated_s = 0, float("nan")
    for i in range(len(trace.bodies)):
        if trace.offsets_s is None:
            if i - consumed >= trace.concurrency:
                ended.get()
                consumed += 1
        else:
            delay_s = start_s + trace.offsets_s[i] - time.perf_counter()
            if delay_s > 0:
                time.sleep(delay_s)
        todo.put(i)
        if i + 1 == trace.saturation_index:
            saturated_s = time.perf_counter()
            hooks.saturated()
    while trace.offsets_s is not None:   # Poisson: ends before the last send are not the drain
        try:
            ended.get_nowait()
        except queue.Empty:
            break
        consumed += 1
    return saturated_s, consumed


def _wait_drain(ended: queue.Queue[int], in_flight: int, hooks: Hooks) -> float:
    """Wait for the first end after the last request was sent (the drain begins), then for all."""
    if in_flight == 0:   # everything ended already (a tiny trace): the drain began at once
        hooks.draining()
        return time.perf_counter()
    ended.get()
    draining_s = time.perf_counter()
    hooks.draining()
    for _ in range(in_flight - 1):
        ended.get()
    return draining_s
