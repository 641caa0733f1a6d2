"""When a repeat ran on a machine too busy to trust, and how often it is redone.

Every window records the CPU time other processes used during it and, on
CUDA, the foreign processes on the GPU (:mod:`nrg.meters.activity`). A repeat
is *flagged* when its whole ``generate`` window exceeds the policy: other
processes used more than ``max_other_cpu_frac`` of the machine's CPU capacity,
or (``foreign_gpu_processes``) another process held the GPU. The repeat's rows
are kept and marked (``interference`` column); the first ``max_retries``
flagged repeats of a cell are left out of the adaptive-repeat samples and
redone, later ones count (still marked) so a machine that is always busy
cannot make a cell run forever.

Why the whole window and not each phase: a prefill window may last a few
milliseconds, shorter than the 10 ms ticks /proc/stat counts in, so its own
share is mostly rounding; the repeat stands or falls as one.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nrg.errors import ParameterError

KEYS: tuple[str, ...] = ("max_other_cpu_frac", "max_retries", "foreign_gpu_processes")


@dataclass(frozen=True)
class InterferencePolicy:
    """Thresholds that flag a repeat, and how many flagged repeats a cell may redo."""

    max_other_cpu_frac: float | None = 0.25
    max_retries: int = 2
    foreign_gpu_processes: bool = True

    def __post_init__(self) -> None:
        frac = self.max_other_cpu_frac
        if frac is not None and (isinstance(frac, bool) or not isinstance(frac, (int, float))
                                 or not 0 < frac <= 1):
            raise ParameterError(f"interference.max_other_cpu_frac={frac!r} is not valid; "
                                 "it must be a number in (0, 1], or null (never flag on CPU time)")
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ParameterError(f"interference.max_retries={retries!r} is not valid; "
                                 "it must be an integer >= 0")
        if not isinstance(self.foreign_gpu_processes, bool):
            raise ParameterError(f"interference.foreign_gpu_processes={self.foreign_gpu_processes!r} "
                                 "is not valid; choose one of: True, False")

    def flags(self, m: Any) -> bool:
        """True when the window ``m`` (a Measurement) ran with too much else on the machine."""
        frac = getattr(m, "other_cpu_frac", math.nan)
        if self.max_other_cpu_frac is not None and math.isfinite(frac) and frac > self.max_other_cpu_frac:
            return True
        foreign = getattr(m, "foreign_gpu_procs", None)
        return bool(self.foreign_gpu_processes and foreign)

    def to_dict(self) -> dict[str, Any]:
        """The config mapping :meth:`parse` reads back (part of every cell's id)."""
        return {"max_other_cpu_frac": self.max_other_cpu_frac, "max_retries": self.max_retries,
                "foreign_gpu_processes": self.foreign_gpu_processes}

    @classmethod
    def parse(cls, value: Any) -> InterferencePolicy:
        """From a config value: None (defaults) or a mapping with some of :data:`KEYS`."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise ParameterError(f"interference={value!r} is not valid; give a mapping with keys "
                                 + ", ".join(KEYS))
        unknown = [k for k in value if k not in KEYS]
        if unknown:
            raise ParameterError(f"interference.{unknown[0]} is not a valid key; valid keys: "
                                 + ", ".join(KEYS))
        return cls(**dict(value))
