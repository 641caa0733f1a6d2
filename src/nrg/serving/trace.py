"""A request trace and its run: fixed concurrency (closed loop) or Poisson arrivals.

Closed loop (ML.ENERGY's setting): ``concurrency`` clients each send their
next request when the previous one ends, so the engine holds ``concurrency``
requests from the moment the last client started until the queue runs dry.
Poisson: requests arrive at ``rate_rps`` (exponential gaps from a seeded RNG),
at most ``concurrency`` in flight, a queue otherwise.

The runner calls ``hooks.saturated()`` when the load reaches its steady level
(closed loop: ``concurrency`` requests have their first token, ML.ENERGY's
start; Poisson: a tenth of the requests sent) and ``hooks.draining()`` when it
starts to fall (the first end after the last request was sent), each once and
in that order, from whichever thread sees it (the energy monitor is
thread-safe): that is where its steady-state window opens and closes.
"""
from __future__ import annotations

import math
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
    """Called once each, in this order, from the trace's threads (see the module docstring)."""

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


class _Steady:
    """Opens and closes the steady-state window exactly once each, in order, whichever thread sees it."""

    def __init__(self, trace: Trace, hooks: Hooks) -> None:
        self.trace, self.hooks = trace, hooks
        self.lock = threading.Lock()
        self.first_tokens = 0
        self.saturated_s = self.draining_s = float("nan")

    def _saturate(self) -> None:
        if math.isnan(self.saturated_s):
            self.saturated_s = time.perf_counter()
            self.hooks.saturated()

    def sent(self, count: int) -> None:
        """Poisson: the load is steady once a tenth of the requests were sent."""
        if self.trace.arrival == POISSON and count == self.trace.saturation_index:
            with self.lock:
                if math.isnan(self.draining_s):
                    self._saturate()

    def first_token(self) -> None:
        """Closed loop: steady once ``concurrency`` requests have their first token (ML.ENERGY's start)."""
        if self.trace.arrival != CLOSED:
            return
        with self.lock:
            self.first_tokens += 1
            if self.first_tokens == self.trace.saturation_index and math.isnan(self.draining_s):
                self._saturate()

    def drain(self) -> None:
        """The first end after the last send; a window never opened opens here (it is then empty)."""
        with self.lock:
            self._saturate()
            self.draining_s = time.perf_counter()
            self.hooks.draining()


def run(client: Client, trace: Trace, hooks: Hooks | None = None,
        path: str = "/v1/completions") -> TraceRun:
    """Send every request of ``trace``, streaming each response, with ``concurrency`` client threads."""
    steady = _Steady(trace, hooks or Hooks())
    todo: queue.Queue[int | None] = queue.Queue()
    ended: queue.Queue[int] = queue.Queue()
    results: list[RequestResult | None] = [None] * len(trace.bodies)

    def worker() -> None:
        conn = client.connection()
        try:
            while (i := todo.get()) is not None:
                results[i] = client.stream(conn, i, trace.bodies[i], path, on_first_token=steady.first_token)
                ended.put(i)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, name=f"nrg-client-{k}", daemon=True)
               for k in range(min(trace.concurrency, len(trace.bodies)))]
    for t in threads:
        t.start()
    start_s = time.perf_counter()
    consumed = _send_all(trace, todo, ended, steady, start_s)
    _wait_drain(ended, len(trace.bodies) - consumed, steady)
    for _ in threads:
        todo.put(None)
    for t in threads:
        t.join()
    done = tuple(r for r in results if r is not None)
    return TraceRun(done, start_s, steady.saturated_s, steady.draining_s, time.perf_counter())


def _send_all(trace: Trace, todo: queue.Queue[int | None], ended: queue.Queue[int], steady: _Steady,
              start_s: float) -> int:
    """Queue the requests (closed loop: one per free client; Poisson: at their offsets).

    Returns how many ends were taken from ``ended``.
    """
    consumed = 0
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
        steady.sent(i + 1)
    while trace.offsets_s is not None:   # Poisson: ends before the last send are not the drain
        try:
            ended.get_nowait()
        except queue.Empty:
            break
        consumed += 1
    return consumed


def _wait_drain(ended: queue.Queue[int], in_flight: int, steady: _Steady) -> None:
    """Wait for the first end after the last request was sent (the drain begins), then for all."""
    if in_flight == 0:   # everything ended already (a tiny trace): the drain began at once
        steady.drain()
        return
    ended.get()
    steady.drain()
    for _ in range(in_flight - 1):
        ended.get()
