"""The engine's Prometheus ``/metrics``: achieved batch and KV-cache use, sampled during a run.

Why sample: the batch an engine really runs (``vllm:num_requests_running``)
and its KV-cache use (``vllm:kv_cache_usage_perc``; ``gpu_cache_usage_perc``
in older vLLM) are gauges, so their mean over a window is what a reader of the
energy per token needs to know ("was the batch full?"). Engines without them
give null columns, not zeros.
"""
from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nrg.serving.client import Client
from nrg.serving.window import Window

#: column -> metric names that hold it, first found wins (vLLM's names across versions)
GAUGES: dict[str, tuple[str, ...]] = {
    "batch_mean": ("vllm:num_requests_running", "sglang:num_running_reqs"),
    "queue_mean": ("vllm:num_requests_waiting", "sglang:num_queue_reqs"),
    "kv_cache_usage_mean": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage"),
}
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse(text: str) -> dict[str, float]:
    """Metric name -> value summed over its label sets (comments and bad lines skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        if math.isfinite(value):
            out[m.group(1)] = out.get(m.group(1), 0.0) + value
    return out


def gauges(metrics: Mapping[str, float]) -> dict[str, float]:
    """The :data:`GAUGES` columns found in one scrape."""
    out = {}
    for column, names in GAUGES.items():
        found = next((metrics[n] for n in names if n in metrics), None)
        if found is not None:
            out[column] = found
    return out


@dataclass
class Sampler:
    """Scrapes ``/metrics`` every ``interval_s`` in a thread; :meth:`means` over a window."""

    client: Client
    interval_s: float = 0.5
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    available: bool = True
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, name="nrg-metrics", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = self.client.get("/metrics", timeout_s=2.0)
            except OSError:
                status, body = 0, b""
            if status == 200:
                found = gauges(parse(body.decode("utf-8", errors="replace")))
                if found:
                    self.samples.append((time.perf_counter(), found))
            elif status == 404:
                self.available = False
                return
            self._stop.wait(self.interval_s)

    def means(self, window: Window) -> dict[str, float]:
        """Mean of each gauge over the samples inside ``window`` (columns missing: NaN)."""
        return mean_in(self.samples, window)


def mean_in(samples: Iterable[tuple[float, Mapping[str, float]]], window: Window) -> dict[str, float]:
    """Mean of each :data:`GAUGES` column over the samples taken inside ``window``."""
    inside = [s for t, s in samples if t in window]
    out = {}
    for column in GAUGES:
        values = [s[column] for s in inside if column in s]
        out[column] = sum(values) / len(values) if values else math.nan
    return out
