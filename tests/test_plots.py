"""nrg.book.plots: each figure draws what the data hold, labels units, and leaves pyplot alone."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # this test module only; notebooks keep their inline backend

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from nrg.book import plots
from nrg.errors import ParameterError
from nrg.stats import anova, fit_lengths, optimal_clocks, phase_share, rank_configs


@pytest.fixture(autouse=True)
def _no_pyplot_figures():
    plt.close("all")
    before = dict(matplotlib.rcParams)
    yield
    assert plt.get_fignums() == [], "a plot function created a pyplot figure"
    assert dict(matplotlib.rcParams) == before, "a plot function changed global settings"


def model_task(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame([{"model": m, "task": t, "energy_per_token_j": b + rng.normal(0, 0.01)}
                         for m, b in (("gpt2", 0.1), ("falcon", 0.6)) for t in ("qa", "gen", "sum") for _ in range(4)])


def lengths(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for m, a in (("gpt2", 0.001), ("falcon", 0.004)):
        for i in (64, 128, 256):
            for o in (16, 64):
                for _ in range(3):
                    pre, dec = a * i + rng.normal(0, 1e-3), 20 * a * o + rng.normal(0, 1e-3)
                    base = {"model": m, "input_tokens": i, "output_tokens": o}
                    rows += [{**base, "phase": "prefill", "energy_j": pre, "time_s": pre},
                             {**base, "phase": "decode", "energy_j": dec, "time_s": dec},
                             {**base, "phase": "generate", "energy_j": pre + dec, "time_s": pre + dec}]
    return pd.DataFrame(rows)


def clocks() -> pd.DataFrame:
    rows = [{"model": m, "gpu_clock_mhz": f, "time_s": s * (0.1 + 900 / f), "avg_power_w": 120 + 240 * (f / 1980) ** 3}
            for m, s in (("gpt2", 1.0), ("falcon", 3.0)) for f in (900, 1200, 1410, 1700, 1980) for _ in range(3)]
    df = pd.DataFrame(rows)
    return df.assign(energy_j=df["time_s"] * df["avg_power_w"])


def test_bar_by_group_draws_one_bar_per_cell_with_ci():
    fig = plots.bar_by_group(model_task())
    ax = fig.axes[0]
    assert isinstance(fig, Figure)
    assert len(ax.patches) == 6
    heights = sorted(p.get_height() for p in ax.patches)
    assert heights[0] == pytest.approx(0.1, abs=0.02) and heights[-1] == pytest.approx(0.6, abs=0.02)
    assert ax.get_ylabel() == "Energy per token (J/token)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["gen", "qa", "sum"]  # sorted


def test_lines_vs_length_fit_passes_through_the_means():
    gen = lengths().query("phase == 'generate'")
    fig = plots.lines_vs_length(gen, "energy_j", "input_tokens")
    ax = fig.axes[0]
    fitted = [line for line in ax.lines if len(line.get_xdata()) == 50]
    assert len(fitted) == 2
    falcon = gen[gen["model"] == "falcon"]
    fit = fit_lengths(falcon, "energy_j")
    expected_slope = fit.coefficient("input_tokens")["estimate"]
    line = fitted[0]  # groups sorted: falcon first
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert (y[-1] - y[0]) / (x[-1] - x[0]) == pytest.approx(expected_slope)
    assert ax.get_xlabel() == "Input length (tokens)" and ax.get_ylabel() == "Energy (J)"
    with pytest.raises(ParameterError, match="length"):
        plots.lines_vs_length(gen, length="batch_size")


def test_phase_share_bars_stack_to_100_percent():
    shares = phase_share(lengths(), measures=["time_s", "energy_j"])
    fig = plots.phase_share_bars(shares, "time_s")
    ax = fig.axes[0]
    n_cells = len(shares[shares["measure"] == "time_s"])
    assert len(ax.patches) == 2 * n_cells
    tops = [p.get_y() + p.get_height() for p in ax.patches[n_cells:]]
    assert tops == pytest.approx([100.0] * n_cells)
    assert "(%)" in ax.get_ylabel()
    with pytest.raises(ParameterError, match="measure"):
        plots.phase_share_bars(shares, "power")


def test_metric_vs_clock_marks_the_optimal_clock():
    df = clocks()
    best = optimal_clocks(df)
    fig = plots.metric_vs_clock(df, "energy_j", optimal=best)
    ax = fig.axes[0]
    stars = [line for line in ax.lines if line.get_marker() == "*"]
    assert sorted(float(s.get_xdata()[0]) for s in stars) == sorted(best["optimal_clock_mhz"])
    assert ax.get_xlabel() == "GPU clock (MHz)" and ax.get_ylabel() == "Energy (J)"
    edp = plots.metric_vs_clock(df, "edp_j_s").axes[0]
    assert edp.get_ylabel() == "Energy-delay product (J·s)"


def test_energy_quality_scatter_highlights_the_front():
    rows = [("fp32", "none", 10, 0.8), ("fp16", "2:4", 4, 0.78), ("nf4", "none", 3, 0.5), ("int8", "2:4", 6, 0.7)]
    ranked = rank_configs(pd.DataFrame(rows, columns=["quant", "prune_method", "energy_j", "score"]))
    ax = plots.energy_quality_scatter(ranked.table).axes[0]
    dominated, front = ax.collections[0], ax.collections[1]
    assert len(dominated.get_offsets()) == 1 and len(front.get_offsets()) == 3
    assert len(ax.texts) == 4


def test_residual_diagnostics_have_qq_and_residuals_vs_fitted():
    res = anova(model_task(), "energy_per_token_j", ["model", "task"])
    fig = plots.residual_diagnostics(res)
    qq, rvf = fig.axes
    assert len(qq.lines[0].get_xdata()) == res.n_obs
    assert np.sort(qq.lines[0].get_ydata()) == pytest.approx(np.sort(res.residuals))
    assert rvf.get_xlabel() == "Fitted energy per token (J/token)"


def test_quant_prune_heatmap_annotates_each_cell_mean():
    df = pd.DataFrame({"quant": ["fp16", "fp16", "int8", "int8"], "prune_method": [None, "2:4", None, "2:4"],
                       "energy_j": [6.0, 4.5, 4.0, 5.0]})
    ax = plots.quant_prune_heatmap(df).axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["4", "4.5", "5", "6"]
    assert ax.get_ylabel() == "Quantization" and ax.get_xlabel() == "Pruning method"


def test_draw_into_given_axes_and_set_theme_is_the_only_global_change():
    fig = Figure()
    ax = fig.subplots()
    assert plots.bar_by_group(model_task(), ax=ax) is fig
    saved = dict(matplotlib.rcParams)
    try:
        plots.set_theme()
        assert matplotlib.rcParams["axes.grid"] is True
    finally:
        matplotlib.rcParams.update(saved)
