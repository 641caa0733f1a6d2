"""nrg beside codecarbon on the same window: each tool's CPU, RAM (DRAM), GPU and total joules.

Why: a reader who knows codecarbon and sees a different number from nrg needs the
difference explained, term by term, from the numbers themselves. Both run at once
around the same work: codecarbon's ``OfflineEmissionsTracker`` (no network, no
file, its default "machine" tracking, power sampled every ``sample_s``) is started
first and stopped last; nrg's window sits inside it. ``allow_multiple_runs``: other
codecarbon runs on the machine must not stop this one (codecarbon keeps a lock file).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from nrg.book import carbon

if TYPE_CHECKING:
    import pandas as pd

    from nrg.book.chapters.c00_how_energy_is_measured.params import Params

#: The window's length: long enough for codecarbon's 0.5 s power samples to average.
COMPARE_S = 10.0
CODECARBON_SAMPLE_S = 0.5
J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class SideBySide:
    """One window measured by both tools (``codecarbon`` None when it could not run, with ``reason``)."""

    nrg: Any                      # nrg.meters.Measurement
    codecarbon: Any | None        # codecarbon's EmissionsData
    units: int                    # what the work returned in total (generated tokens)
    codecarbon_tdp_w: float | None
    cpu_w_per_core: float | None = None   # nrg's CPU estimate's W per core (None: not estimated)
    reason: str | None = None

    def table(self) -> pd.DataFrame:
        """One row per tool: CPU, RAM, GPU and total joules, the window's length, how they were got."""
        import pandas as pd

        m = self.nrg
        rows = [{"tool": "nrg", "cpu_j": _family(m, "cpu"), "ram_j": _family(m, "dram"),
                 "gpu_j": _family(m, "gpu"), "total_j": m.total_j(), "time_s": m.elapsed_s,
                 "how": "; ".join(f"{d.domain}: {d.method.value}" for d in m.domains)}]
        cc = self.codecarbon
        if cc is not None:
            rows.append({"tool": f"codecarbon {cc.codecarbon_version}", "cpu_j": cc.cpu_energy * J_PER_KWH,
                         "ram_j": cc.ram_energy * J_PER_KWH, "gpu_j": cc.gpu_energy * J_PER_KWH,
                         "total_j": cc.energy_consumed * J_PER_KWH, "time_s": cc.duration,
                         "how": f"tracking_mode={cc.tracking_mode}, CPU {cc.cpu_model!r}"})
        return pd.DataFrame(rows)

    def _ram_sentence(self, ours: Any, theirs: Any) -> str:
        cc: Any = self.codecarbon
        if math.isnan(ours["ram_j"]) or not cc.ram_power:
            return f"RAM: nrg has no DRAM domain here; codecarbon counts {theirs['ram_j']:.0f} J."
        ours_w = ours["ram_j"] / ours["time_s"]
        cc_s = theirs["ram_j"] / cc.ram_power
        return (f"RAM: nrg {ours_w:.1f} W and codecarbon {cc.ram_power:.1f} W for {cc.ram_total_size:.1f} GB "
                f"(the same DIMM rule unless RAPL reads DRAM), so the RAM terms ({ours['ram_j']:.0f} J against "
                f"{theirs['ram_j']:.0f} J) differ by the time each integrates: nrg {ours['time_s']:.2f} s, "
                f"codecarbon {cc_s:.2f} s of its {theirs['time_s']:.2f} s run.")

    def _cpu_sentence(self, ours: Any, theirs: Any) -> str:
        cpu = next((d for d in self.nrg.domains if d.domain == "cpu"), None)
        if cpu is None:
            how = "nrg measures no CPU domain"
        elif cpu.method.value == "estimated" and self.cpu_w_per_core:
            how = (f"nrg charges this process's {ours['cpu_j'] / self.cpu_w_per_core:.2f} CPU-seconds "
                   f"at {self.cpu_w_per_core:.2f} W each ({ours['cpu_j'] / ours['time_s']:.1f} W on average)")
        else:
            how = f"nrg reads {cpu.source} ({ours['cpu_j'] / ours['time_s']:.1f} W on average)"
        cc_w = theirs["cpu_j"] / theirs["time_s"]
        if self.codecarbon_tdp_w:
            # codecarbon's machine-mode model: P = TDP x (0.1 + 0.9 x load^3)
            share = min(max((cc_w / self.codecarbon_tdp_w - 0.1) / 0.9, 0.0), 1.0)
            model = (f"a rated {self.codecarbon_tdp_w:g} W x (0.1 + 0.9 x load^3), its model of the whole "
                     f"machine's CPU load (other processes included; {cc_w:.1f} W on average, as a steady "
                     f"load of {100 * share ** (1 / 3):.0f} % would draw)")
        else:
            model = f"its model of the whole machine's CPU load ({cc_w:.1f} W on average)"
        return (f"CPU: {how}, while codecarbon charges {model}: "
                f"{ours['cpu_j']:.0f} J against {theirs['cpu_j']:.0f} J.")

    def explanation(self) -> str:
        """The difference between the tools, term by term, computed from this window."""
        if self.codecarbon is None:
            return f"codecarbon could not run here ({self.reason}): only nrg's figures are shown."
        t = self.table().set_index("tool")
        ours, theirs = t.iloc[0], t.iloc[1]
        ratio = ours["total_j"] / theirs["total_j"] if theirs["total_j"] > 0 else math.nan
        parts = [f"nrg's total is {ratio:.2f} times codecarbon's ({ours['total_j']:.0f} J against "
                 f"{theirs['total_j']:.0f} J).", self._ram_sentence(ours, theirs), self._cpu_sentence(ours, theirs)]
        gaps = {k: ours[k] - theirs[k] for k in ("cpu_j", "ram_j", "gpu_j") if not math.isnan(ours[k] - theirs[k])}
        if gaps and any(gaps.values()):
            largest = max(gaps, key=lambda k: abs(gaps[k]))
            parts.append(f"The largest gap is the {largest[:-2].upper()} term ({gaps[largest]:+.0f} J).")
        return " ".join(parts)


def _family(m: Any, family: str) -> float:
    found = [d.energy_j for d in m.domains if d.domain.split(":")[0] == family]
    return math.fsum(found) if found else math.nan


def _tracker(region: str, pue: float, sample_s: float) -> tuple[Any | None, str | None]:
    """The offline tracker of codecarbon for ``region``'s country (and cloud region), or why not."""
    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError as exc:
        return None, f"codecarbon is not installed: {exc}"
    intensity = carbon.grid_intensity(region)
    where: dict[str, str] = {"country_iso_code": intensity.country_iso or carbon.DEFAULT_REGION}
    if ":" in intensity.region:
        where["cloud_provider"], where["cloud_region"] = intensity.region.split(":", 1)
    logging.getLogger("codecarbon").setLevel(logging.ERROR)   # before its first message
    # output_methods=[]: no CSV file, API, logger or Prometheus (codecarbon 3.3 deprecates save_to_file=False)
    tracker = OfflineEmissionsTracker(log_level="error", output_methods=[], measure_power_secs=sample_s,
                                      allow_multiple_runs=True, pue=pue, **where)
    return tracker, None


def _tdp_w(tracker: Any) -> float | None:
    """The CPU rated power codecarbon used (read from its CPU object; None if it hides it)."""
    for hardware in getattr(tracker, "_hardware", ()):
        tdp = getattr(hardware, "_tdp", None)
        if isinstance(tdp, (int, float)):
            return float(tdp)
    return None


def side_by_side(work: Callable[[], int], params: Params, min_duration_s: float = COMPARE_S,
                 sample_s: float = CODECARBON_SAMPLE_S) -> SideBySide:
    """Run ``work`` (returns units done, e.g. tokens) until ``min_duration_s``, measured by both tools.

    codecarbon runs with PUE 1 so both tools report the machine's own joules;
    the chapter's PUE is applied afterwards, to both alike (:func:`carbon_table`).
    The chapter's own work (a :class:`GenerationWork`) is measured once per
    machine and parameters (:class:`nrg.book.chapters.c00_how_energy_is_measured.driver.Measurements`): a
    kept result is reused without loading its model.
    """
    from nrg.book.chapters.c00_how_energy_is_measured.driver import open_monitor

    with open_monitor(params, announce=False) as monitor:
        if not isinstance(work, GenerationWork):
            return _side_by_side(work, params, monitor, min_duration_s, sample_s)
        args = (repr(work.spec), work.input_tokens, work.new_tokens, float(min_duration_s), float(sample_s))
        return monitor.measurements.get(
            "side_by_side", args, lambda: _side_by_side(work, params, monitor, min_duration_s, sample_s))


def _side_by_side(work: Callable[[], int], params: Params, monitor: Any, min_duration_s: float,
                  sample_s: float) -> SideBySide:
    if isinstance(work, GenerationWork):
        work.prepare()      # load and warm up outside both windows
    tracker, reason = _tracker(params.region, 1.0, sample_s)
    units = 0
    if tracker is not None:
        tracker.start()
    try:
        monitor.begin_window("side-by-side")
        start = time.perf_counter()
        while time.perf_counter() - start < min_duration_s:
            units += int(work())
        measurement = monitor.end_window("side-by-side")
    finally:
        if tracker is not None:
            tracker.stop()
    data = _plain(tracker.final_emissions_data) if tracker is not None else None
    from nrg.meters.estimate import resolve_power

    w_per_core = resolve_power(power_per_core_w=params.power_per_core_w)[0]
    return SideBySide(measurement, data, units, _tdp_w(tracker) if tracker is not None else None,
                      w_per_core, reason)


def _plain(data: Any) -> object:
    """Codecarbon's EmissionsData as plain attributes: kept and read back without importing codecarbon."""
    if data is None or not dataclasses.is_dataclass(data) or isinstance(data, type):
        return data
    return SimpleNamespace(**dataclasses.asdict(data))


@dataclass
class GenerationWork:
    """Generates exactly ``new_tokens`` with ``spec``'s model per call; loaded and warmed up on first need.

    Loading is left to :meth:`prepare` (or the first call) so that a comparison
    whose kept result is reused never loads the model.
    """

    spec: Any                      # nrg.models.ModelSpec
    input_tokens: int = 32
    new_tokens: int = 8
    _run: Callable[[], None] | None = field(default=None, init=False, repr=False, compare=False)

    def prepare(self) -> None:
        """Load the model and generate once (warm-up), unless done already."""
        if self._run is not None:
            return
        import torch

        from nrg.models import load

        loaded = load(self.spec)
        inputs = loaded.synthetic_inputs(1, self.input_tokens)
        new_tokens = self.new_tokens

        def run() -> None:
            with torch.no_grad():
                loaded.model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                      do_sample=False)

        run()   # warm-up outside the window
        self._run = run

    @property
    def loaded(self) -> bool:
        """Whether the model was loaded."""
        return self._run is not None

    def __call__(self) -> int:
        """Generate once (loading first if needed); the tokens generated."""
        self.prepare()
        assert self._run is not None
        self._run()
        return self.new_tokens


def generation_work(model: str = "smollm2-135m", input_tokens: int = 32,
                    new_tokens: int = 8) -> GenerationWork:
    """The comparison's work: generating exactly ``new_tokens`` with ``model`` (random weights: same cost as real)."""
    from nrg.models import ModelSpec

    return GenerationWork(ModelSpec(model, weights="random"), input_tokens, new_tokens)


def carbon_table(result: SideBySide, region: str = carbon.DEFAULT_REGION, price_per_kwh: float | None = None,
                 pue: float = carbon.DEFAULT_PUE) -> pd.DataFrame:
    """gCO₂e and USD per 1,000 generated tokens of the window, from each tool's total joules."""
    conv = carbon.conversion(region, price_per_kwh, pue)
    table = result.table()
    per = table[["tool"]].assign(per="1,000 generated tokens",
                                 energy_j=table["total_j"] / result.units * 1000 if result.units else math.nan)
    return carbon.convert(per, conv)
