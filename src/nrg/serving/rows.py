"""The two rows of one served level: the steady-state window and the whole run.

Kept apart from :mod:`nrg.serving.workload` (engine and blocks) so the arithmetic
-- tokens inside a window, the allocated energy per request, latencies,
quality -- is tested without an engine.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nrg.serving.window import Window, latency, tokens_in

if TYPE_CHECKING:
    from nrg.meters.measurement import Measurement
    from nrg.serving.prom import Sampler
    from nrg.serving.trace import TraceRun
    from nrg.sweep.config import Cell


def window_tokens(ran: TraceRun, window: Window | None) -> int:
    """Output tokens inside ``window`` (all when None), scaled to the server's own counts.

    Each streamed chunk is one token for vLLM; where the server's usage count
    differs (chunks bundling tokens), the chunk count is scaled by that ratio.
    """
    ok = [r for r in ran.results if r.ok]
    chunks = sum(len(r.token_times_s) for r in ok)
    counted = sum(r.tokens for r in ok)
    if window is None:
        return counted
    inside = tokens_in(ok, window)
    return round(inside * counted / chunks) if chunks else 0


def quality(ran: TraceRun, prompts: Sequence[tuple[str, Any]], cell: Cell) -> dict[str, float]:
    """The task's scores over every answered request of the run (chapter 1's metrics)."""
    from nrg.tasks import get_task

    ok = [r for r in ran.results if r.ok]
    if not ok:
        return {}
    task = get_task(cell.task.name, cell.task.dataset)
    items = [prompts[r.index % len(prompts)][1] for r in ok]
    return dict(task.score([r.text for r in ok], items))


def level_rows(ran: TraceRun, steady: Measurement, whole: Measurement, ids: Mapping[str, Any],
               sampler: Sampler | None, prompts: Sequence[tuple[str, Any]], cell: Cell) -> list[dict[str, Any]]:
    """``steady`` then ``run`` rows of one level (see :mod:`nrg.serving.workload`)."""
    from nrg.workloads.cells import phase_row

    steady_window = Window(ran.saturated_s, ran.draining_s)
    ok = [r for r in ran.results if r.ok]
    per_request = sum(r.tokens for r in ok) / len(ok) if ok else math.nan
    scores = quality(ran, prompts, cell)
    shared = {**ids, "requests": len(ran.results), "requests_failed": len(ran.results) - len(ok),
              "steady_share": steady.elapsed_s / whole.elapsed_s if whole.elapsed_s > 0 else math.nan,
              "output_tokens_mean": per_request, **scores}
    rows = []
    for phase, measured, window in (("steady", steady, steady_window), ("run", whole, None)):
        tokens = window_tokens(ran, window)
        row = phase_row(measured, phase, int(ids["repeat"]), tokens, math.nan)
        row.update(latency(ran.results, window))
        row["energy_per_request_j"] = row["energy_per_token_j"] * per_request
        span = window or Window(ran.start_s, ran.end_s)
        row.update(sampler.means(span) if sampler is not None else {})
        rows.append({**shared, **row})
    return rows
