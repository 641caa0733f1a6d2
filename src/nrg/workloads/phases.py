"""Prefill and decode from ONE ``generate`` call: a streamer hook cuts the window at the first token.

transformers' ``generate`` hands every step's new tokens to a streamer; the hook
(:class:`FirstTokenSplit`) reads every meter when the first new token exists on
the host and stamps each later token. From that one run come TTFT, prefill
energy, decode energy (first token .. end, never negative: the meters are
cumulative and the two parts share their cut reading) and the inter-token
latency percentiles. See :mod:`nrg.workloads.generation` for the rows.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nrg.meters import Measurement
    from nrg.workloads.generation import GenerationInputs

PHASE_METHOD = "one-pass-hook"


class FirstTokenSplit:
    """A ``generate`` streamer: cuts the open ``generate`` window at the first new token.

    transformers calls ``put`` once with the prompt (2-D: batch x prompt; for
    encoder-decoder models the decoder's start ids) before any forward pass,
    then once per step with that step's tokens (1-D: one per sequence of the
    batch), after copying them to the host -- so the step's device work is
    done when ``put`` runs, and the monitor's own sync makes sure of it. The
    first 1-D ``put`` is the first new token: one reading of every meter there
    closes ``prefill`` and opens ``decode``. Every ``put`` is time-stamped.
    """

    def __init__(self, monitor: Any, window: str = "generate") -> None:
        self._monitor = monitor
        self._window = window
        self.token_times_s: list[float] = []
        self.prefill: Measurement | None = None

    def put(self, value: Any) -> None:
        """A step's new tokens (or, first, the prompt, which is ignored)."""
        if getattr(value, "ndim", 1) > 1:
            return
        self.token_times_s.append(time.perf_counter())
        if self.prefill is None:
            self.prefill = self._monitor.split_window(self._window, "prefill", "decode")

    def end(self) -> None:
        """Called by ``generate`` after the last token; the window is ended by the caller."""


@dataclass(frozen=True)
class OnePass:
    """The three windows of one repeat and the host time of each new token."""

    prefill: Measurement
    decode: Measurement
    generate: Measurement
    token_times_s: tuple[float, ...]

    def with_idle(self, idle_power_w: Mapping[str, float]) -> OnePass:
        """All three windows with the sweep's idle baseline attached."""
        return dataclasses.replace(self, prefill=self.prefill.with_idle(idle_power_w),
                                   decode=self.decode.with_idle(idle_power_w),
                                   generate=self.generate.with_idle(idle_power_w))


def measure_repeat(workload: GenerationInputs, monitor: Any) -> OnePass:
    """One repeat: one ``generate`` window, cut at the first new token by the streamer hook."""
    hook = FirstTokenSplit(monitor)
    monitor.begin_window("generate")
    workload.generate(streamer=hook)
    if hook.prefill is None:
        monitor.end_window("generate")
        raise RuntimeError("generate() never passed a new token to the streamer hook, so prefill "
                           "and decode cannot be split (a generation mode without streaming?)")
    generate, decode = monitor.end_windows("generate", "decode")
    if len(hook.token_times_s) != workload.output_tokens:
        raise RuntimeError(f"the streamer hook saw {len(hook.token_times_s)} generation steps, "
                           f"expected exactly {workload.output_tokens}")
    return OnePass(hook.prefill, decode, generate, tuple(hook.token_times_s))


def itl_percentiles(token_times_s: Sequence[float]) -> dict[str, float]:
    """Inter-token latency (time between consecutive new tokens) at p50, p90, p99; NaN if < 2 tokens."""
    import numpy as np

    gaps = np.diff(np.asarray(token_times_s, dtype=float))
    if gaps.size == 0:
        return {"itl_p50_s": math.nan, "itl_p90_s": math.nan, "itl_p99_s": math.nan}
    p50, p90, p99 = np.percentile(gaps, [50, 90, 99])
    return {"itl_p50_s": float(p50), "itl_p90_s": float(p90), "itl_p99_s": float(p99)}
