"""Every header and axis of estimated energy says "estimated": carbon tables, fits, phase shares.

The mark comes from one place (:mod:`nrg.book.labels` + :func:`nrg.book.display.table`);
these tests give each table estimated rows and check the text a reader sees,
and measured rows to check that nothing is marked there.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from nrg.book import carbon, display, plots
from nrg.book.chapters.c03_dvfs import analysis as dvfs_analysis
from nrg.book.chapters.c04_network_tickets.carbon import tickets_table
from nrg.book.chapters.c05_batch_size import driver as batch_size
from nrg.stats import per_token_costs, phase_share


def _headers(df: pd.DataFrame) -> list[str]:
    return [str(c) for c in display.table(df).data.columns]


def _generations(method: str = "estimated") -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"model": "m", "phase": "generate", "status": "ok", "batch_size": b, "input_tokens": i,
                          "output_tokens": o, "tokens": b * o, "time_s": t, "energy_j": 27.0 * t,
                          "energy_per_token_j": 27.0 * t / (b * o), "energy_method": method}
                         for b in (1, 2, 4) for i, o in ((16, 8), (32, 8), (16, 16)) for _ in range(3)
                         for t in [0.1 * b + 0.01 * i + 0.02 * o + rng.normal(0, 0.002)]])


def test_carbon_tables_mark_energy_co2e_and_cost_as_estimated() -> None:
    gen = _generations()
    shown = _headers(carbon.for_page(carbon.inference_table(gen, by=["model", "batch_size"])).visible())
    assert {"Estimated energy (J)", "Estimated CO₂e (g)", "Estimated cost (USD)"} <= set(shown)
    mixed = gen.assign(energy_method=["counter", "estimated", "counter"] * (len(gen) // 3))   # "counter, estimated"
    assert "Estimated CO₂e (g)" in _headers(carbon.for_page(carbon.inference_table(mixed)).visible())
    measured = _headers(carbon.for_page(carbon.inference_table(gen.assign(energy_method="counter"))).visible())
    assert {"Energy (J)", "CO₂e (g)", "Cost (USD)"} <= set(measured) and not any("stimated" in h for h in measured)


def test_the_tickets_carbon_table_marks_estimated_energy() -> None:
    rows = pd.DataFrame([{"task": "root_cause", "quant": "none", "prune": "none", "phase": p, "status": "ok",
                          "energy_j": e, "n_eval": 20, "generated_tokens": 0, "energy_method": "estimated"}
                         for p, e in (("finetune", 250.0), ("inference", 10.0))])
    assert "Estimated CO₂e (g)" in _headers(carbon.for_page(tickets_table(rows)).visible())


def test_chapter_5_fit_table_says_its_energy_is_estimated() -> None:
    gen = _generations()
    shown = _headers(batch_size.batch_costs(gen))
    assert "Fitted estimated energy (J)" in shown and "CI low of estimated energy (J)" in shown
    measured = _headers(batch_size.batch_costs(gen.assign(energy_method="counter")))
    assert "Estimate (J)" in measured and not any("stimated" in h for h in measured)


def test_per_token_costs_of_estimated_energy_say_so_and_of_time_do_not() -> None:
    gen = _generations()
    energy = _headers(per_token_costs(gen, response="energy_j", by=["model"]))
    assert "Fitted estimated energy" in energy and "CI high of estimated energy" in energy
    time = _headers(per_token_costs(gen, response="time_s", by=["model"]))
    assert "Estimate" in time and not any("stimated" in h for h in time)


def _phases(method: str = "estimated") -> pd.DataFrame:
    rows = []
    for setting in (None, 1410.0):
        for phase, t in (("prefill", 0.1), ("decode", 0.9), ("generate", 1.0)):
            for r in range(3):
                rows.append({"model": "m", "gpu_clock_mhz": setting, "phase": phase, "status": "ok", "repeat": r,
                             "time_s": t + 0.001 * r, "energy_j": 27.0 * t, "energy_method": method,
                             "avg_power_w": 27.0, "edp_j_s": 27.0 * t * t, "ed2p_j_s2": 27.0 * t ** 3,
                             "input_tokens": 16, "output_tokens": 8})
    return pd.DataFrame(rows)


def test_phase_share_plots_and_tables_of_estimated_energy_say_so() -> None:
    shares = phase_share(_phases(), by=["model", "input_tokens", "output_tokens"])
    assert plots.phase_share_bars(shares, measure="energy_j").axes[0].get_ylabel() == "Share of estimated energy (%)"
    assert plots.phase_share_bars(shares, measure="time_s").axes[0].get_ylabel() == "Share of time (%)"
    measured = phase_share(_phases("counter"), by=["model", "input_tokens", "output_tokens"])
    assert plots.phase_share_bars(measured, measure="energy_j").axes[0].get_ylabel() == "Share of energy (%)"
    table = display.table(dvfs_analysis.decode_shares(_phases(), "gpu_clock_mhz")).data
    assert "Estimated energy (J)" in set(table["Measure"]) and "Time (s)" in set(table["Measure"])


def test_a_header_marked_twice_says_estimated_once() -> None:
    gen = _generations().assign(tokens_per_s=lambda d: d["tokens"] / d["time_s"])
    shown = _headers(batch_size.change_table(gen))
    assert "Estimated energy per token (J/token)" in shown and "Estimated energy per token change (%)" in shown
    assert not any(h.count("stimated") > 1 for h in shown)
