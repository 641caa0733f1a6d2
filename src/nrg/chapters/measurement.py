"""Driver of "How energy is measured": this machine's meters, idle power, a calibration workload.

The workload is a float32 matmul of growing size, repeated until a minimum
window length (so no window is shorter than the meter's update period): more
work must give more joules, whatever the source, and the page shows by which
method each joule was obtained. Then one generation window is measured by nrg
and by codecarbon at once (:mod:`nrg.chapters.codecarbon_compare`), and its
energy is converted to carbon and money (:mod:`nrg.carbon`).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nrg import carbon
from nrg.chapters.common import as_int, as_list
from nrg.errors import ParameterError, check_positive

if TYPE_CHECKING:
    import pandas as pd

    from nrg.meters import EnergyMonitor, Measurement
    from nrg.meters.protocols import Monitor


def check(idle_s: float = 2.0, meters: Any = None, matrix_sizes: Any = (256, 512, 1024),
          min_duration_s: float = 0.5, repeats: int = 5, power_per_core_w: float | None = None,
          region: str = carbon.DEFAULT_REGION, price_per_kwh: float | None = None,
          pue: float = carbon.DEFAULT_PUE, **unknown: Any) -> dict[str, Any]:
    """Checked parameters of the chapter (raises ParameterError before any work)."""
    if unknown:
        raise ParameterError(f"unknown parameter(s) {sorted(unknown)}")
    impact = carbon.check_params(region, price_per_kwh, pue)   # region, price_per_kwh, pue
    from nrg.meters.chain import check_meters

    check_positive("idle_s", idle_s)
    check_positive("min_duration_s", min_duration_s)
    sizes = [as_int("matrix_sizes", s) for s in as_list("matrix_sizes", list(matrix_sizes)
                                                         if isinstance(matrix_sizes, tuple) else matrix_sizes)]
    if power_per_core_w is not None:
        check_positive("power_per_core_w", power_per_core_w)
    return {"idle_s": float(idle_s), "meters": check_meters(meters) if meters else None,
            "matrix_sizes": sizes, "min_duration_s": float(min_duration_s),
            "repeats": as_int("repeats", repeats, minimum=2), "power_per_core_w": power_per_core_w,
            **impact}


def open_monitor(params: dict[str, Any]) -> EnergyMonitor:
    """An EnergyMonitor for this machine's best sources (close it when done).

    Settings a killed run left changed (a locked GPU clock) are restored first:
    the chapter must not measure at a leftover clock.
    """
    from nrg.dvfs.recovery import recover_leftovers
    from nrg.meters import EnergyMonitor, torch_cuda_sync

    recover_leftovers()

    options = {"power_per_core_w": params["power_per_core_w"]} if params["power_per_core_w"] else {}
    return EnergyMonitor.auto(meters=params["meters"], sync=torch_cuda_sync(), **options)


def chain_table(monitor: EnergyMonitor) -> pd.DataFrame:
    """One row per energy domain: the source chosen, its method, and what was skipped and why."""
    import pandas as pd

    rows = []
    for d in monitor.decisions:
        rows.append({
            "domain": d.domain,
            "chosen": d.chosen or "not measured",
            "method": d.method.value if d.method else "",
            "detail": d.detail or "",
            "skipped (why)": "; ".join(f"{src}: {why}" for src, why in d.skipped),
        })
    return pd.DataFrame(rows)


def _matmul(size: int) -> Any:
    import torch

    a = torch.randn(size, size)
    b = torch.randn(size, size)
    return lambda: torch.mm(a, b)


def calibration(monitor: Monitor, sizes: Sequence[int], min_duration_s: float, repeats: int) -> pd.DataFrame:
    """Energy per matmul for each size, ``repeats`` windows each, with method and source."""
    import pandas as pd

    from nrg.meters import repeat_until

    rows = []
    for size in sizes:
        work = _matmul(size)
        work()  # warm-up: first call allocates
        for repeat in range(repeats):
            m = repeat_until(monitor, work, name=f"matmul-{size}", min_duration_s=min_duration_s)
            record = m.to_record()
            per_iter_s = m.elapsed_s
            rows.append({
                "matrix_size": size, "repeat": repeat, "iterations": m.iterations,
                "gflop": 2 * size**3 / 1e9, "time_s": per_iter_s,
                "energy_j": record["energy_j"], "net_energy_j": record["net_energy_j"],
                "energy_method": record["energy_method"], "energy_source": record["energy_source"],
                "energy_warning": record["energy_warning"],
            })
    df = pd.DataFrame(rows)
    df["gflop_per_j"] = df["gflop"] / df["energy_j"]
    return df


def short_window(monitor: Monitor) -> Measurement | None:
    """A window far shorter than the update period: flagged, not returned as a silent 0 J."""
    with monitor.window("short") as w:
        time.sleep(0.0005)
    return w.measurement
