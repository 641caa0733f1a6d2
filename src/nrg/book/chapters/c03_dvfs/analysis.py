"""Analysis of chapter 3: energy, latency, power, EDP and ED²P per GPU setting, per model and phase.

The same :func:`analyse` serves the live run and every committed reference run
(``results/reference/<gpu>/03_dvfs/``): the optimal setting per objective, the
saving and latency cost against the default, how far each phase moves with the
clock, whether a lock took (observed clocks), and an ANOVA of energy per token
on setting x model. The driver (:mod:`nrg.book.chapters.c03_dvfs.driver`) decides what to measure.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.book import sweeps
from nrg.book.chapters.c03_dvfs.driver import CHAPTER
from nrg.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from nrg.stats import AnovaResult

PHASES: tuple[str, ...] = ("prefill", "decode", "generate")
MEASURES: tuple[str, ...] = ("energy_j", "time_s", "avg_power_w", "edp_j_s", "ed2p_j_s2")
OBJECTIVES: tuple[str, ...] = ("energy", "edp", "ed2p")
OBJECTIVE_COLUMNS: tuple[str, ...] = ("energy_j", "edp_j_s", "ed2p_j_s2")
SETTING_UNITS = {"gpu_clock_mhz": "MHz", "power_limit_w": "W", "cpu_max_freq_khz": "kHz"}
SETTING_NAMES = {"gpu_clock_mhz": "clock", "power_limit_w": "power limit", "cpu_max_freq_khz": "CPU frequency cap"}
OBSERVED = {"gpu_clock_mhz": "gpu_clock_mhz_observed", "power_limit_w": "gpu_power_w_observed",
            "cpu_max_freq_khz": "cpu_freq_khz_observed"}
TOOK_TOLERANCE = 0.02   # an observed clock within 2% of the lock counts as applied


def _rows(df: Any, axis: str) -> pd.DataFrame:
    """Successful prefill / decode / generate rows, the setting as a number (NaN = default), EDP added."""
    from nrg import stats

    if axis not in df.columns:
        raise ParameterError(f"axis={axis!r} is not a column of the data; this run swept no such setting")
    rows = stats.ok_rows(df)
    rows = rows[rows["phase"].isin(PHASES)]
    if rows.empty:
        raise ParameterError("no successful prefill/decode/generate rows to analyse; "
                             "see the failed cells' errors (failures())")
    rows = stats.add_edp(rows.assign(**{axis: stats.clock_key(rows[axis])}))
    return rows.reset_index(drop=True)


def observed_settings(rows: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Requested vs observed setting per model: a lock that did not take is visible here."""
    import numpy as np

    prefix = OBSERVED[axis]
    stats = {f"observed_{k}": (f"{prefix}_{k}", k) for k in ("mean", "min", "max") if f"{prefix}_{k}" in rows.columns}
    cells = rows.drop_duplicates("cell_id").sort_values(["model", axis], ascending=[True, False], na_position="first")
    out = (cells.assign(requested=[_label(v, axis) for v in cells[axis]])
           .groupby(["model", "requested"], sort=False)
           .agg(cells=("cell_id", "nunique"), requested_value=(axis, "first"), **stats).reset_index())
    if "observed_mean" not in out.columns:
        out["observed_mean"] = np.nan
    if axis == "gpu_clock_mhz":
        deviation = (out["observed_mean"] - out["requested_value"]) / out["requested_value"]
        out["took"] = np.where(out["requested_value"].isna(), None, deviation.abs() <= TOOK_TOLERANCE)
    return out.drop(columns="requested_value")


def _optimal_long(rows: Any, axis: str) -> pd.DataFrame:
    import pandas as pd

    from nrg import stats

    frames = []
    for phase in PHASES:
        part = rows[rows["phase"] == phase]
        if part[axis].notna().any():
            for objective in OBJECTIVES:
                frames.append(stats.optimal_clocks(part, by="model", clock=axis, objective=objective)
                              .assign(phase=phase))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def optimal_table(optimal_long: pd.DataFrame, phase: str = "generate") -> pd.DataFrame:
    """One row per model: the best setting per objective, and the best lock's energy saving and latency change.

    ``energy_best`` (and ``edp_best``, ``ed2p_best``) is the best setting of all
    measured: "default" when no locked setting beats the default, else the
    setting. ``energy_optimal`` is the best *locked* setting; savings and changes
    are its fractions against ``reference`` (the default setting when measured,
    else the highest), so a negative saving means the lock costs energy. A
    positive latency change is slower.
    """
    import pandas as pd

    if optimal_long.empty:
        return pd.DataFrame(columns=["model"])
    part = optimal_long[optimal_long["phase"] == phase]
    wide = part.drop_duplicates("model").set_index("model")[["reference_clock"]].rename(
        columns={"reference_clock": "reference"})
    for objective, name in (("energy_j", "energy"), ("edp_j_s", "edp"), ("ed2p_j_s2", "ed2p")):
        sub = part[part["objective"] == objective].set_index("model")
        wide = wide.join(sub[["best_setting", "optimal_clock_mhz", "energy_saving", "latency_change"]].set_axis(
            [f"{name}_best", f"{name}_optimal", f"{name}_optimal_energy_saving", f"{name}_optimal_latency_change"],
            axis=1))
    return wide.reset_index()


def sensitivity(rows: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Per model and phase: highest vs lowest locked setting -- time, power, energy change.

    Why it matters: compute-bound work slows in proportion to the clock,
    memory-bound work barely does, while power falls for both.
    """
    import pandas as pd

    out = []
    locked = rows[rows[axis].notna()]
    for (model, phase), part in locked.groupby(["model", "phase"], sort=True):
        hi, lo = part[axis].max(), part[axis].min()
        if hi == lo:
            continue
        top, bottom = part[part[axis] == hi], part[part[axis] == lo]
        row = {"model": model, "phase": phase, "high": hi, "low": lo, "setting_change": lo / hi - 1}
        for m in ("time_s", "avg_power_w", "energy_j"):
            row[f"{m}_change"] = bottom[m].mean() / top[m].mean() - 1
        if "roofline_fraction" in part.columns:
            row["roofline_fraction_high"] = top["roofline_fraction"].mean()
            row["roofline_fraction_low"] = bottom["roofline_fraction"].mean()
        out.append(row)
    return pd.DataFrame(out)


def phase_figure(rows: pd.DataFrame, metric: str, axis: str, optimal_long: pd.DataFrame | None = None) -> Figure:
    """``metric`` against the setting, a panel per phase, a line per model; ★ optimal, dashed = default.

    A model whose default setting beats every lock gets no star: its dashed
    default line lies below the curve.
    """
    from matplotlib.figure import Figure

    from nrg.book import plots

    phases = [p for p in PHASES if (rows["phase"] == p).any()]
    fig = Figure(figsize=(5.0 * len(phases), 4.2), layout="constrained")
    for ax, phase in zip(fig.subplots(1, len(phases), squeeze=False)[0], phases, strict=True):
        part = rows[rows["phase"] == phase]
        best = None
        if optimal_long is not None and metric in OBJECTIVE_COLUMNS and not optimal_long.empty:
            best = optimal_long[(optimal_long["phase"] == phase) & (optimal_long["objective"] == metric)
                                & ~optimal_long["default_best"].astype(bool)]  # a default that wins gets no star
        plots.metric_vs_clock(part, metric, clock=axis, hue="model", optimal=best, ax=ax)
        for i, (_, group) in enumerate(part.groupby("model", sort=True)):  # metric_vs_clock's colour order
            default = group.loc[group[axis].isna(), metric]
            if not default.empty:
                ax.axhline(default.mean(), color=f"C{i}", linestyle="--", linewidth=1)
        notes = ["★ optimal"] * (best is not None) + ["dashed: default"] * bool(part[axis].isna().any())
        ax.set_title(phase + (f" ({'; '.join(notes)})" if notes else ""))
    return fig


def _label(value: float, axis: str) -> str:
    import math

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "default"
    number = f"{value:.0f}" if float(value).is_integer() else f"{value:g}"   # 2000000 kHz, not 2e+06 kHz
    return f"{number} {SETTING_UNITS[axis]}"


def summary_table(rows: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Mean energy, time, power, EDP and ED²P per model, phase and setting (CIs: ``profile``)."""
    import pandas as pd

    ordered = rows.assign(phase=pd.Categorical(rows["phase"], categories=list(PHASES)))
    means = (ordered.groupby(["model", "phase", axis], dropna=False, sort=True, observed=True)[list(MEASURES)]
             .mean().reset_index())
    means.insert(2, "setting", [_label(v, axis) for v in means[axis]])
    return means.drop(columns=axis)


def decode_shares(rows: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Decode's share of time and energy per model (rows) and setting (columns), from phase_share."""
    from nrg import stats

    labelled = rows.assign(setting=[_label(v, axis) for v in rows[axis]])
    shares = stats.phase_share(labelled, by=["model", "setting"], measures=["time_s", "energy_j"])
    order = list(dict.fromkeys(summary_table(rows, axis)["setting"]))
    table = shares.pivot_table(index=["model", "measure"], columns="setting", values="decode_share")
    out = table[[c for c in order if c in table.columns]].rename_axis(columns="decode share at")
    out.attrs["energy_estimated"] = bool(shares.attrs.get("energy_estimated"))   # "Estimated energy (J)" row
    return out


def _sensitivity_findings(sens: Any, axis: str) -> list[str]:
    from nrg.book.findings import pct
    from nrg.stats import label

    out: list[str] = []
    if sens.empty:  # one setting only (the default): nothing moved
        return out
    for model, part in sens.groupby("model", sort=True):
        by_phase = part.set_index("phase")
        if not {"prefill", "decode"} <= set(by_phase.index):
            continue
        pre, dec = by_phase.loc["prefill"], by_phase.loc["decode"]
        out.append(
            f"For {model}, lowering the {label(axis)} from {_label(pre['high'], axis)} to {_label(pre['low'], axis)} "
            f"({pct(pre['setting_change'])}) changed prefill time by {pct(pre['time_s_change'])} and decode "
            f"time by {pct(dec['time_s_change'])}; average power changed by {pct(pre['avg_power_w_change'])} "
            f"(prefill) and {pct(dec['avg_power_w_change'])} (decode).")
    return out


def _share_findings(shares: Any, rows: Any) -> list[str]:
    from nrg.book.findings import pct
    from nrg.stats import label
    from nrg.stats._data import estimated

    out = []
    for measure in ("time_s", "energy_j"):
        values = shares.xs(measure, level="measure").stack().dropna() if len(shares) else shares
        what = f"estimated {label(measure)}" if measure == "energy_j" and estimated(rows) else label(measure)
        if len(values):
            out.append(f"Decode takes {pct(values.min())}–{pct(values.max())} of {what} across "
                       f"{len(values)} model × setting combinations; prefill the rest.")
    return out


def _observed_findings(observed: Any) -> list[str]:
    if "took" not in observed.columns:
        return []
    locked = observed[observed["took"].notna()]
    if locked.empty:   # no lock was asked (the default setting only): nothing to check
        return []
    if locked["observed_mean"].isna().all():
        return ["The observed clock was not recorded for these runs: whether each lock took cannot be checked."]
    missed = locked[locked["took"] == False]  # noqa: E712 - object column of True/False/None
    if missed.empty:
        return [f"Every locked clock took: the observed clock stayed within {TOOK_TOLERANCE:.0%} of the "
                f"requested one in all {len(locked)} model × clock combinations."]
    listed = "; ".join(f"{r.model} at {r.requested} ran at {r.observed_mean:.0f} MHz"
                       for r in missed.itertuples())
    return [f"{len(missed)} locked setting(s) did not take (observed clock more than "
            f"{TOOK_TOLERANCE:.0%} away from the request): {listed}."]


def _optimal_findings(optimal_long: Any, axis: str, alpha: float) -> list[str]:
    from nrg.book import findings

    out: list[str] = []
    part = optimal_long[optimal_long["phase"] == "generate"] if not optimal_long.empty else optimal_long
    for objective in ("energy_j", "edp_j_s"):
        rows = part[part["objective"] == objective] if not part.empty else part
        if rows.empty:
            continue
        sentences = list(findings.clock_findings(rows, alpha=alpha))
        if axis != "gpu_clock_mhz":  # the same numbers, in the setting's unit
            sentences = [s.replace(" MHz", f" {SETTING_UNITS[axis]}").replace("clock", SETTING_NAMES[axis])
                         for s in sentences]
        out += sentences
    return out


def _anova(rows: Any, axis: str, alpha: float) -> AnovaResult | None:
    from nrg import stats

    generate = rows[rows["phase"] == "generate"]
    if generate[axis].nunique(dropna=False) < 2:
        return None
    return stats.anova(generate, "energy_per_token_j", [axis, "model"], alpha=alpha)


def failures(df: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Cells that did not complete (e.g. a lock refused), with their error: shown, never dropped silently."""
    cols = [c for c in ("model", axis, "status", "error") if c in df.columns]
    failed = df[df["status"].astype("string").fillna("ok") != "ok"] if "status" in df.columns else df.iloc[:0]
    return failed[cols].drop_duplicates().reset_index(drop=True)


def detect_axis(df: pd.DataFrame) -> str:
    """The setting a run swept: locked clocks, else power limits, else CPU frequency caps."""
    from nrg.stats import clock_key

    present = [a for a in SETTING_UNITS if a in df.columns]
    for axis in present:
        if clock_key(df[axis]).notna().any():
            return axis
    if present:
        return present[0]
    raise ParameterError(f"the data has none of {', '.join(SETTING_UNITS)}: it is not a DVFS sweep")


def analyse(df: pd.DataFrame, axis: str | None = None, alpha: float = 0.05) -> dict[str, Any]:
    """Every table, figure and finding of the chapter, from measured rows (live or reference)."""
    from nrg import stats
    from nrg.book import findings

    axis = axis or detect_axis(df)
    rows = _rows(df, axis)
    optimal_long = _optimal_long(rows, axis)
    sens = sensitivity(rows, axis)
    observed = observed_settings(rows, axis)
    shares = decode_shares(rows, axis)
    anova = _anova(rows, axis, alpha)
    sentences = _optimal_findings(optimal_long, axis, alpha) + _sensitivity_findings(sens, axis)
    if optimal_long.empty:   # the first thing to say: nothing was compared
        sentences.insert(0, "Only the default setting was measured: there is no other setting to compare with.")
    sentences += _share_findings(shares, rows) + _observed_findings(observed)
    result_findings = findings.Findings(tuple(sentences))
    if anova is not None:
        anova_text = findings.anova_findings(anova, response_label="energy per token")
    else:
        anova_text = findings.Findings(("One setting only: no ANOVA on the setting is possible.",))
    return {
        "axis": axis, "rows": rows, "observed": observed, "failures": failures(df, axis), "summary": summary_table(rows, axis),
        "profile": stats.clock_profile(rows, by=["model", "phase"], clock=axis),
        "optimal_long": optimal_long, "optimal": optimal_table(optimal_long), "sensitivity": sens,
        "phase_share": shares, "anova": anova, "anova_findings": anova_text, "findings": result_findings,
        "figures": {m: phase_figure(rows, m, axis, optimal_long) for m in MEASURES},
        "provenance": stats.provenance_summary(df),
    }


def _analyse_or_explain(df: Any, alpha: float) -> dict[str, Any]:
    """:func:`analyse`, or -- for data with nothing to analyse -- the reason and the failed cells."""
    from nrg import stats
    from nrg.book import findings

    try:
        return analyse(df, alpha=alpha)
    except ParameterError as exc:
        axis = next((a for a in SETTING_UNITS if a in df.columns), "gpu_clock_mhz")
        return {"failures": failures(df, axis), "findings": findings.Findings((f"Nothing to analyse: {exc}.",)),
                "provenance": stats.provenance_summary(df), "figures": {}}


def analyse_all(live: Any, reference: Mapping[str, Path], alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    """Analyses by label: the live run (if any), then each committed reference run, labelled."""
    out: dict[str, dict[str, Any]] = {}
    if live is not None and not live.empty:
        gpus = ", ".join(sorted(map(str, live["gpu"].dropna().unique()))) if "gpu" in live.columns else ""
        out[f"Measured live on this machine{' (' + gpus + ')' if gpus else ''}"] = _analyse_or_explain(live, alpha)
    from nrg.book.reference_section import describe

    for gpu, frame in sweeps.load_reference(reference).items():
        label = f"Reference data measured on {gpu} (results/reference/{gpu}/{CHAPTER}; {describe(frame)})"
        out[label] = _analyse_or_explain(frame, alpha)
    return out


def show(analyses: Mapping[str, Mapping[str, Any]], key: str, figure: str | None = None) -> None:
    """Display one item of every analysis under its label; say so when there is nothing to show."""
    from IPython.display import Markdown, display

    if not analyses:
        display(Markdown("*No data: nothing was measured here and no reference data is committed (see above).*"))
    for label, result in analyses.items():
        display(Markdown(f"**{label}**"))
        item = result.get(key) if figure is None else result.get(key, {}).get(figure)
        display(item if item is not None else Markdown("*Not available for this data.*"))
