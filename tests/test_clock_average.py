"""Chapter 3's "Across N groups where a locked clock is best" averages only separated groups.

A group whose lowest-energy lock is not separated from the reference (Welch
p >= alpha) has no optimal clock; its saving is noise and is left out of the
average, and with fewer than two separated groups no average is given.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from nrg.book import findings as F
from nrg.stats import optimal_clocks


def _group(model: str, low_clock_j: float, spread_j: float, seed: int) -> list[dict]:
    """``model`` at 1410 MHz (``low_clock_j``) and 1980 MHz (100 J); windows drawn with ``spread_j``."""
    rng = np.random.default_rng(seed)
    return [{"model": model, "gpu_clock_mhz": clock, "energy_j": e + rng.normal(0, spread_j),
             "time_s": t + rng.normal(0, 0.002)}
            for clock, e, t in ((1410, low_clock_j, 1.05), (1980, 100.0, 1.0)) for _ in range(4)]


def _sentences(*groups: list[dict]) -> list[str]:
    return list(F.clock_findings(optimal_clocks(pd.DataFrame([r for g in groups for r in g]))))


def test_the_average_leaves_out_groups_that_are_not_separated() -> None:
    clear_a, clear_b = _group("a", 70.0, 0.5, 0), _group("b", 80.0, 0.5, 1)
    noisy = _group("c", 99.0, 15.0, 2)          # lowest mean at 1410 MHz, far inside the spread
    optimal = optimal_clocks(pd.DataFrame(clear_a + clear_b + noisy)).set_index("model")
    assert optimal.loc["c", "p_energy"] > 0.05 and optimal.loc["c", "optimal_clock_mhz"] == 1410
    said = [s for s in _sentences(clear_a, clear_b, noisy) if s.startswith("Across")]
    expected = F.pct(optimal.loc[["a", "b"], "energy_saving"].mean())
    assert said == [f"Across 2 groups where a locked clock uses significantly less energy than the reference "
                    f"(Welch p < 0.05), the saving averages {expected} for a latency change of "
                    f"{F._span(optimal.loc[['a', 'b'], 'latency_change'])}; 1 group(s) not separated from the "
                    "reference are left out."]
    assert F.pct(optimal["energy_saving"].mean()) not in said[0]     # the pooled (wrong) average is not given


def test_no_average_when_fewer_than_two_groups_are_separated() -> None:
    said = _sentences(_group("a", 70.0, 0.5, 0), _group("c", 99.0, 15.0, 2), _group("d", 98.0, 15.0, 3))
    assert not any(s.startswith("Across") for s in said)
    assert ("No average saving across groups can be given: of 3 groups whose lowest-energy clock is a locked one, "
            "only 1 differ significantly from the reference (Welch p < 0.05; at least 2 are needed for an "
            "average).") in said


def test_one_window_per_clock_names_no_optimal_clock() -> None:
    rows = [{"model": "a", "gpu_clock_mhz": c, "energy_j": e, "time_s": 1.0} for c, e in ((1410, 70.0), (1980, 100.0))]
    said = F.clock_findings(optimal_clocks(pd.DataFrame(rows))).sentences[0]
    assert said.startswith("For a, no energy-optimal clock can be named") and "cannot be tested" in said


def test_the_default_is_not_called_best_without_a_test() -> None:
    rows = [{"model": "a", "gpu_clock_mhz": c, "energy_j": e, "time_s": 1.0}
            for c, e in ((None, 90.0), (1410, 100.0), (900, 110.0))]
    said = F.clock_findings(optimal_clocks(pd.DataFrame(rows))).sentences[0]
    assert said.startswith("For a, the default clock has the lowest mean energy;") and "cannot be tested" in said
    assert "is best" not in said


def test_the_chapter_judges_separation_at_its_own_alpha() -> None:
    """Chapter 3's ``alpha`` reaches the clock findings (it was always 0.05 there)."""
    from nrg.book.chapters.c03_dvfs import analysis as dvfs_analysis

    rows = pd.DataFrame(_group("a", 70.0, 0.5, 0) + _group("c", 96.0, 4.0, 2)).assign(phase="generate")
    p_c = optimal_clocks(rows).set_index("model").loc["c", "p_energy"]
    assert 1e-4 < p_c < 0.5                                           # c's lock is separated at 0.5, not at 1e-4
    long = dvfs_analysis._optimal_long(rows, "gpu_clock_mhz")
    strict = dvfs_analysis._optimal_findings(long, "gpu_clock_mhz", alpha=1e-4)
    loose = dvfs_analysis._optimal_findings(long, "gpu_clock_mhz", alpha=0.5)
    assert any("Welch p < 0.0001" in s for s in strict) and not any("Welch p < 0.05" in s for s in strict)
    assert any("Welch p < 0.5" in s for s in loose)
