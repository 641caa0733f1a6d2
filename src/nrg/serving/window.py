"""The steady-state window of a trace run, and the latency and token counts inside a window.

Why a window: a served model's energy per token depends on how many requests
share each step. While clients ramp up and while the last requests drain,
the batch is smaller than the load being measured, so ML.ENERGY (v3) reports
the *steady state*: from saturation to the start of the drain. nrg records
both that window and the whole run; :func:`steady_window` recomputes the
window from the requests' own times, which is how a test checks the monitor's
window against what the clients saw.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from nrg.serving.client import RequestResult


@dataclass(frozen=True)
class Window:
    """A time interval (perf_counter s)."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        """Length of the window (0 when empty)."""
        return max(self.end_s - self.start_s, 0.0)

    def __contains__(self, t: float) -> bool:
        return self.start_s <= t <= self.end_s


def in_flight(results: Sequence[RequestResult], t: float) -> int:
    """Requests sent and not yet ended at time ``t``."""
    return sum(r.sent_s <= t < r.end_s for r in results)


def steady_window(results: Sequence[RequestResult], concurrency: int) -> Window:
    """From the moment ``concurrency`` requests have had their first token to the first end after the last send.

    ML.ENERGY's window: the batch is full from the first to the drain. Closed-loop
    traces hold exactly ``concurrency`` requests in between (up to the
    microseconds between one request's end and the next one's send).
    """
    if not results:
        return Window(math.nan, math.nan)
    target = min(concurrency, len(results))
    firsts = sorted(r.token_times_s[0] for r in results if r.token_times_s)
    start = firsts[target - 1] if len(firsts) >= target else math.nan
    last_send = max(r.sent_s for r in results)
    ends_after = [r.end_s for r in results if r.end_s > last_send]   # not the end that freed its slot
    end = min(ends_after) if ends_after else last_send
    return Window(start, max(end, start))


def tokens_in(results: Sequence[RequestResult], window: Window) -> int:
    """Tokens that arrived inside ``window`` (each chunk with text is one token)."""
    return sum(1 for r in results for t in r.token_times_s if t in window)


def percentiles(values: Sequence[float], prefix: str) -> dict[str, float]:
    """``{prefix}_p50_s``, ``_p90_s``, ``_p99_s`` of ``values`` (NaN when empty)."""
    import numpy as np

    keys = (f"{prefix}_p50_s", f"{prefix}_p90_s", f"{prefix}_p99_s")
    if len(values) == 0:
        return dict.fromkeys(keys, math.nan)
    return dict(zip(keys, (float(v) for v in np.percentile(np.asarray(values, float), [50, 90, 99])), strict=True))


def latency(results: Sequence[RequestResult], window: Window | None = None) -> dict[str, float]:
    """TTFT of requests sent inside ``window`` and inter-token gaps ending inside it (all when None)."""
    import numpy as np

    ok = [r for r in results if r.ok]
    ttfts = [r.ttft_s for r in ok if window is None or r.sent_s in window]
    gaps = [b - a for r in ok for a, b in zip(r.token_times_s, r.token_times_s[1:], strict=False)
            if window is None or b in window]
    out = {**percentiles(ttfts, "ttft"), **percentiles(gaps, "itl")}
    out["ttft_s"] = float(np.mean(ttfts)) if ttfts else math.nan
    out["tpot_s"] = float(np.mean(gaps)) if gaps else math.nan
    return out
