"""Driver of chapter 6: a real serving engine under load -- energy per token against concurrency.

Chapter 5 batches by hand in a ``generate()`` loop; people serve models through
an engine with continuous batching behind an OpenAI-compatible API. This
chapter runs the ``serving`` workload (:mod:`nrg.serving`): one engine per
model, a closed-loop trace per concurrency level in randomized blocks, energy
over the steady-state window and the whole run, clients' TTFT and ITL, task
quality on the answers. It then sets the energy-latency trade-off (with its
Pareto front), chapter 5's ``generate()`` results for the same model and the
published ML.ENERGY v3 H100/B200 curves (shape only: each curve divided by its
own first point) beside this machine's.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nrg.book import carbon, sweeps
from nrg.book.chapters.c06_serving.params import BATCH_CHAPTER, CHAPTER, Params

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from nrg.book.carbon import PageTable
    from nrg.stats import AnovaResult

__all__ = ["BATCH_CHAPTER", "CHAPTER", "FACTOR", "PUBLISHED", "PUBLISHED_MODELS", "Params", "anova", "carbon_table",
           "figure", "level_table", "means", "measure", "ok_phase", "pareto", "tradeoff_figure"]

FACTOR = "concurrency"
PUBLISHED = Path(__file__).resolve().parents[3] / "serving" / "data" / "mlenergy_v3_lm_arena_chat.csv"
PUBLISHED_MODELS = ("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-14B")


def measure(params: Params, progress: bool = True) -> pd.DataFrame:
    """Run (or reuse) the sweep, checked when ``params`` was built; the rows of exactly its cells.

    Empty when ``params.skip_reason`` says why nothing is measured here.
    """
    import pandas as pd

    if params.skip_reason:
        return pd.DataFrame()
    assert params.run_dir is not None   # resolved when the parameters were built
    return sweeps.measure_checked(params.checked, params.run_dir, progress=progress)


def ok_phase(df: pd.DataFrame, phase: str = "steady") -> pd.DataFrame:
    """Rows of one window (``steady`` or ``run``) whose cell ran."""
    if df.empty:
        return df
    return df[(df["phase"] == phase) & (df["status"] == "ok")].copy()


def _log2_axis(fig: Figure, levels: list[int]) -> Figure:
    ax = fig.axes[0]
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [str(v) for v in levels])
    ax.minorticks_off()
    return fig


def figure(steady: pd.DataFrame, response: str) -> Figure:
    """Mean ``response`` (95% CI over the blocks) against the concurrency, one line per model."""
    from nrg.book import plots

    fig = plots.lines_vs_length(steady, response=response, length=FACTOR, lengths=(FACTOR,), fit=False)
    return _log2_axis(fig, sorted(int(v) for v in steady[FACTOR].unique()))


def means(steady: pd.DataFrame) -> pd.DataFrame:
    """Per model and level: mean and 95% CI of energy per token, ITL p50, TTFT p50, throughput, batch."""
    from nrg import stats

    measures = ["energy_per_token_j", "itl_p50_s", "ttft_p50_s", "tokens_per_s", "batch_mean", "avg_power_w"]
    present = [m for m in measures if m in steady and steady[m].notna().any()]
    table = stats.summarize(steady, by=["model", FACTOR], measures=present)
    wide = table.pivot_table(index=["model", FACTOR], columns="measure", values=["mean", "ci_low", "ci_high"])
    wide.columns = [f"{m}" if s == "mean" else f"{m}_{s}" for s, m in wide.columns]
    order = [c for m in present for c in (m, f"{m}_ci_low", f"{m}_ci_high") if c in wide.columns]
    from nrg.stats._data import estimated

    out = wide[order].reset_index()
    out.attrs["energy_estimated"] = estimated(steady)   # headers and axes of estimated energy say so
    return out


def level_table(table: pd.DataFrame, whole: pd.DataFrame) -> pd.DataFrame:
    """``table`` (from :func:`pareto`) with the whole run's share in the steady state, per model and level."""
    share = whole.groupby(["model", FACTOR])["steady_share"].mean().rename("steady_share")
    out = table.join(share, on=["model", FACTOR])
    out.attrs.update(table.attrs)      # a join drops them: "estimated" must stay on the headers
    return out


def pareto(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (from :func:`means`) with ``pareto``: no other level has both less energy per token and less ITL."""
    from nrg.stats import pareto_mask

    out = table.copy()
    out["pareto"] = False
    for _, part in out.groupby("model", observed=True):
        mask = pareto_mask(part["energy_per_token_j"], -part["itl_p50_s"])
        out.loc[part.index, "pareto"] = mask
    return out


def tradeoff_figure(table: pd.DataFrame) -> Figure:
    """Energy per token against median ITL, one point per level (labelled), the Pareto front joined."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.5))
    for i, (model, part) in enumerate(table.groupby("model", observed=True)):
        color = f"C{i}"
        ax.scatter(part["itl_p50_s"] * 1e3, part["energy_per_token_j"], color=color, label=str(model))
        for r in part.itertuples():
            ax.annotate(str(int(getattr(r, FACTOR))), (r.itl_p50_s * 1e3, r.energy_per_token_j),
                        textcoords="offset points", xytext=(4, 4), fontsize=8)
        front = part[part["pareto"]].sort_values("itl_p50_s")
        ax.plot(front["itl_p50_s"] * 1e3, front["energy_per_token_j"], "-", color=color, alpha=0.6)
    ax.set_xlabel("median inter-token latency (ms)")
    ax.set_ylabel(("estimated " if table.attrs.get("energy_estimated") else "") + "energy per token (J/token)")
    ax.set_title("Energy-latency trade-off (numbers: concurrency; line: Pareto front)")
    ax.legend(title="model")
    fig.tight_layout()
    return fig


def anova(steady: pd.DataFrame, alpha: float = 0.05) -> AnovaResult:
    """ANOVA of steady-state energy per token on the concurrency (and the model), blocks when present."""
    from nrg import stats

    factors = [FACTOR] + (["model"] if steady["model"].nunique() > 1 else [])
    return stats.anova(steady, "energy_per_token_j", factors, alpha=alpha)


def carbon_table(df: pd.DataFrame, params: Params) -> PageTable:
    """CO₂e and cost per 1,000 generated tokens per model and concurrency, over the steady-state windows.

    The same conversion as the other chapters (:mod:`nrg.book.carbon`): region,
    price and PUE stated once above the table; energy, CO₂e and cost shown,
    "estimated" where the energy is. With nothing measured, the page says so.
    """
    import pandas as pd

    steady = ok_phase(df, "steady") if not df.empty else df
    if steady.empty:
        conv = carbon.conversion(params.region, params.price_per_kwh, params.pue)
        return carbon.for_page(carbon.convert(pd.DataFrame(columns=["model", FACTOR, "per", "energy_j", "windows",
                                                                    "energy_method"]), conv))
    return carbon.for_page(carbon.inference_table(steady, by=["model", FACTOR], region=params.region,
                                                  price_per_kwh=params.price_per_kwh, pue=params.pue,
                                                  phase="steady"))
