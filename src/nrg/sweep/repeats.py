"""When to stop repeating a cell: the adaptive rule, as a pure function.

Energy readings on a shared machine are noisy, and a fixed repeat count either
wastes time on quiet cells or under-samples noisy ones. The runner therefore
repeats a cell until the 95% confidence interval of the mean energy per token
(Student's t, because the number of repeats is small) is narrow enough -- its
half-width at most ``ci_rel`` of the mean -- or until ``max_n`` repeats, and
never fewer than ``min_n``. A fixed count is the policy with ``min_n == max_n``.

:meth:`RepeatPolicy.done` is the one stop rule every loop uses (the sweep's
cells, fine-tuning's inference windows, serving's concurrency levels): the
rule on the finite samples, capped at ``max_n`` attempts -- a repeat that gave
no sample (every try flagged, no meter) still counts against the cap, so no
loop can run forever.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nrg.errors import ParameterError

CONFIDENCE = 0.95


@dataclass(frozen=True)
class RepeatPolicy:
    """How many repeats a cell gets; ``ci_rel=None`` means exactly ``min_n``."""

    min_n: int = 3
    max_n: int = 10
    ci_rel: float | None = 0.05

    def __post_init__(self) -> None:
        for name, value in (("repeats.min", self.min_n), ("repeats.max", self.max_n)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name}={value!r} is not valid; it must be an integer >= 1")
        if self.max_n < self.min_n:
            raise ParameterError(
                f"repeats.max={self.max_n!r} is not valid; it must be >= repeats.min={self.min_n}"
            )
        if self.ci_rel is not None and (
            isinstance(self.ci_rel, bool)
            or not isinstance(self.ci_rel, (int, float))
            or not 0 < self.ci_rel < 1
        ):
            raise ParameterError(
                f"repeats.ci_rel={self.ci_rel!r} is not valid; it must be a number in (0, 1) or null"
            )

    def done(self, samples: Sequence[float], attempts: int) -> bool:
        """True once the finite ``samples`` satisfy the policy or ``attempts`` reached ``max_n``."""
        finite = [float(x) for x in samples if math.isfinite(float(x))]
        return should_stop(finite, self) or attempts >= self.max_n

    @property
    def fixed(self) -> bool:
        """True when the count does not depend on the samples."""
        return self.ci_rel is None or self.min_n == self.max_n

    @property
    def ci_target(self) -> float:
        """The CI half-width the adaptive rule aims at (the rows' ``ci_rel_target``); NaN for a fixed count."""
        return math.nan if self.fixed or self.ci_rel is None else float(self.ci_rel)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the config file and the cell id hash."""
        return {"min": self.min_n, "max": self.max_n, "ci_rel": self.ci_rel}

    @classmethod
    def parse(cls, value: Any) -> RepeatPolicy:
        """From a config value: an int (fixed count) or ``{min, max, ci_rel}``."""
        if value is None:
            return cls()
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(min_n=value, max_n=value, ci_rel=None)
        if isinstance(value, Mapping):
            valid = ("min", "max", "ci_rel")
            unknown = [k for k in value if k not in valid]
            if unknown:
                raise ParameterError(
                    f"repeats.{unknown[0]} is not a valid key; valid keys: {', '.join(valid)}"
                )
            default = cls()
            min_n = value.get("min", default.min_n)
            max_n = value.get("max", max(default.max_n, min_n if isinstance(min_n, int) else 0))
            return cls(min_n=min_n, max_n=max_n, ci_rel=value.get("ci_rel", default.ci_rel))
        raise ParameterError(
            f"repeats={value!r} is not valid; give an integer (fixed count) "
            "or a mapping with keys min, max, ci_rel"
        )


def ci_rel_halfwidth(samples: Sequence[float], confidence: float = CONFIDENCE) -> float:
    """Half-width of the t confidence interval of the mean, relative to the mean.

    ``inf`` with fewer than two finite samples or a mean of zero: the interval
    is then unknown, which must never count as narrow enough.
    """
    values = [float(x) for x in samples if math.isfinite(float(x))]
    n = len(values)
    if n < 2:
        return math.inf
    mean = sum(values) / n
    if mean == 0:
        return math.inf
    sd = math.sqrt(sum((x - mean) ** 2 for x in values) / (n - 1))
    from scipy.stats import t  # heavy import, only when repeats are judged

    t_crit = float(t.ppf(0.5 + confidence / 2, df=n - 1))
    return t_crit * sd / math.sqrt(n) / abs(mean)


def should_stop(samples: Sequence[float], policy: RepeatPolicy) -> bool:
    """True once ``samples`` (one per repeat so far) satisfy ``policy``."""
    n = len(samples)
    if n < policy.min_n:
        return False
    if n >= policy.max_n or policy.ci_rel is None:
        return True
    return ci_rel_halfwidth(samples) <= policy.ci_rel
