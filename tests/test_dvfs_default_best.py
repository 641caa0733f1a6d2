"""Chapter 3's analysis when the default clock uses the least energy, and when a lock beats it.

Synthetic rows (no hardware): gpt2 at the default clock, 1410 MHz and 900 MHz,
with planted energies, through :func:`nrg.book.chapters.c03_dvfs.analysis.analyse`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nrg.book.chapters.c03_dvfs import analysis
from nrg.book.findings import pct

PHASE_SHARES = (("prefill", 0.2), ("decode", 0.8), ("generate", 1.0))


def dvfs_rows(default_energy_j: float, seed: int = 0) -> pd.DataFrame:
    """1410 MHz uses 100 J and 900 MHz 110 J per generation; the default uses ``default_energy_j``."""
    rng = np.random.default_rng(seed)
    rows = []
    for clock, energy, time in ((None, default_energy_j, 1.0), (1410, 100.0, 1.05), (900, 110.0, 1.4)):
        for phase, share in PHASE_SHARES:
            for r in range(4):
                e = (energy + rng.normal(0, 0.5)) * share
                t = (time + rng.normal(0, 0.004)) * share
                rows.append({"model": "gpt2", "gpu_clock_mhz": clock, "phase": phase, "status": "ok",
                             "cell_id": f"gpt2-{clock}", "repeat": r, "energy_j": e, "time_s": t,
                             "avg_power_w": e / t, "energy_per_token_j": e / 16})
    return pd.DataFrame(rows)


def _stars(result, metric: str = "energy_j") -> list[float]:
    ax = result["figures"][metric].axes[-1]                     # the generate panel
    return [float(line.get_xdata()[0]) for line in ax.lines if line.get_marker() == "*"]


def test_default_clock_that_uses_least_energy_is_called_best():
    result = analysis.analyse(dvfs_rows(default_energy_j=90.0))
    table = result["optimal"].iloc[0]
    assert table["energy_best"] == "default" and table["edp_best"] == "default"
    assert table["energy_optimal"] == 1410 and table["energy_optimal_energy_saving"] < 0
    text = result["findings"].to_markdown()
    assert "For gpt2, the default clock is best for energy: no locked clock measured uses less" in text
    extra = -table["energy_optimal_energy_saving"]              # the lock's extra energy vs the default
    assert f"the best locked clock, 1410 MHz, uses {pct(extra)} more energy than the default clock" in text
    assert 0.09 < extra < 0.13                                  # 100 J against about 90 J
    assert "optimal" not in text
    assert _stars(result) == []                                 # no star on a lock the default beats


@pytest.mark.parametrize("metric", ["energy_j", "edp_j_s"])
def test_lock_that_beats_the_default_is_called_optimal(metric):
    result = analysis.analyse(dvfs_rows(default_energy_j=120.0))
    table = result["optimal"].iloc[0]
    assert table["energy_best"] == "1410" and table["energy_optimal_energy_saving"] > 0
    text = result["findings"].to_markdown()
    saving = table["energy_optimal_energy_saving"]
    assert f"The energy-optimal clock for gpt2 is {1410} MHz: {pct(saving)} less energy than the default clock" in text
    assert 0.14 < saving < 0.19                                 # 100 J against about 120 J
    assert "default clock is best" not in text
    assert _stars(result, metric) == [1410.0]
