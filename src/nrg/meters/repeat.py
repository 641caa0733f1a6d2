"""Short workloads: repeat until the window is long enough, then divide.

A window shorter than a counter's update period can read 0 J (Zeus's warning).
Rather than return that silently, run the workload until both a minimum
duration and a minimum count are reached, and report the per-iteration average
together with the iteration count.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from nrg.errors import ParameterError, check_positive
from nrg.meters.measurement import Measurement
from nrg.meters.protocols import Monitor

#: A default long enough for every source here: NVML's ~0.1 s period x 10.
DEFAULT_MIN_DURATION_S = 1.0


def _check_count(parameter: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(f"{parameter}={value!r} is not valid; it must be an int >= 1")
    return value


def repeat_until(monitor: Monitor, workload: Callable[[], object], name: str = "repeat",
                 min_duration_s: float = DEFAULT_MIN_DURATION_S, min_iterations: int = 1,
                 max_iterations: int | None = None) -> Measurement:
    """Run ``workload`` in one window until ``min_duration_s`` and ``min_iterations`` are both reached.

    Stops early at ``max_iterations``; returns the per-iteration Measurement, so a workload shorter
    than a meter's update period is still measured.
    """
    check_positive("min_duration_s", min_duration_s)
    _check_count("min_iterations", min_iterations)
    if max_iterations is not None and _check_count("max_iterations", max_iterations) < min_iterations:
        raise ParameterError(f"max_iterations={max_iterations!r} is not valid; it must be >= "
                             f"min_iterations={min_iterations}")
    count = 0
    with monitor.window(name) as result:
        start_s = time.perf_counter()
        while count < min_iterations or time.perf_counter() - start_s < min_duration_s:
            workload()
            count += 1
            if max_iterations is not None and count >= max_iterations:
                break
    assert result.measurement is not None
    return result.measurement.per_iteration(count)
