"""Chapter 0's parameters: the one source of their defaults and types, checked before any measurement.

The chapter sweeps nothing (no sweep config, nothing checked against the
machine beyond the names of the energy sources), so its ``Params`` is a plain
:class:`~nrg.book.params.ChapterParams`. The values that shape a measurement
(:data:`MEASURED_PARAMS`) key the chapter's kept measurements
(:class:`nrg.book.chapters.c00_how_energy_is_measured.driver.Measurements`), so
they are parsed here into one form whatever way they were given: a kept
measurement is reused for the same values from papermill's strings, the
profile's YAML or the notebook's cell.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nrg.book import carbon, common
from nrg.book.params import ChapterParams

CHAPTER = "00_how_energy_is_measured"
#: What a measurement depends on besides the machine: these parameters (region: codecarbon's figures follow
#: the country) and the measuring code.
MEASURED_PARAMS = ("idle_s", "meters", "matrix_sizes", "min_duration_s", "repeats", "power_per_core_w", "region")


def _meters(value: Any) -> tuple[str, ...] | None:
    """Energy source names (a list, ``"nvml,rapl"`` or papermill's ``"[nvml, rapl]"``); None or empty: all."""
    from nrg.meters.chain import check_meters

    if isinstance(value, str) and value.strip().startswith("["):
        value = common.as_list("meters", value)
    return check_meters(value) if value else None


@dataclass(frozen=True)
class Params(ChapterParams):
    """This machine's meters, idle power and a calibration workload; see the notebook's parameters cell."""

    idle_s: float = 2.0
    meters: tuple[str, ...] | None = None          # None: every source nrg knows
    matrix_sizes: tuple[int, ...] = (256, 512, 1024)
    min_duration_s: float = 0.5
    repeats: int = 5                                # at least 2 windows per size (for the spread)
    power_per_core_w: float | None = None
    region: str = carbon.DEFAULT_REGION
    price_per_kwh: float | None = None
    pue: float = carbon.DEFAULT_PUE
    remeasure: bool = False

    def __post_init__(self) -> None:
        put = self._put
        for name, value in carbon.check_params(self.region, self.price_per_kwh, self.pue).items():
            put(name, value)
        put("idle_s", common.as_number("idle_s", self.idle_s, inclusive=False))
        put("min_duration_s", common.as_number("min_duration_s", self.min_duration_s, inclusive=False))
        put("matrix_sizes", tuple(common.as_int("matrix_sizes", s) for s in common.as_list("matrix_sizes",
                                                                                             self.matrix_sizes)))
        if self.power_per_core_w is not None:
            put("power_per_core_w", common.as_number("power_per_core_w", self.power_per_core_w, inclusive=False))
        put("meters", _meters(self.meters))
        put("repeats", common.as_int("repeats", self.repeats, minimum=2))
        put("remeasure", common.as_bool("remeasure", self.remeasure))

    def _put(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def measured(self) -> dict[str, Any]:
        """The values a kept measurement was taken with (:data:`MEASURED_PARAMS`), as plain data for its key."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name in MEASURED_PARAMS for value in (getattr(self, name),)}
