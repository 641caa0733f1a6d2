"""Driver of chapter 3: GPU frequency scaling (DVFS) -- energy, latency, power, EDP and ED²P per clock.

The chapter first asks the machine what it may change (:func:`nrg.dvfs.probe`),
then decides (:func:`plan`): sweep locked GPU graphics clocks, else GPU power
limits, else measure nothing live. Whatever was measured -- here, or on a GPU
machine whose run was committed under ``results/reference/<gpu>/03_dvfs/`` --
goes through the same :func:`analyse`. Nothing is ever modelled in place of a
measurement: without a changeable frequency and without reference data, the
chapter says so and prints the sweep config that would produce the data.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nrg.chapters import common, sweeps
from nrg.errors import ParameterError, check_choice

CHAPTER = "03_dvfs"
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda:0")
DTYPES: tuple[str, ...] = ("auto", "float32", "float16", "bfloat16")
PHASES: tuple[str, ...] = ("prefill", "decode", "generate")
MEASURES: tuple[str, ...] = ("energy_j", "time_s", "avg_power_w", "edp_j_s", "ed2p_j_s2")
OBJECTIVES: tuple[str, ...] = ("energy", "edp", "ed2p")
OBJECTIVE_COLUMNS: tuple[str, ...] = ("energy_j", "edp_j_s", "ed2p_j_s2")
SETTING_UNITS = {"gpu_clock_mhz": "MHz", "power_limit_w": "W"}
OBSERVED = {"gpu_clock_mhz": "gpu_clock_mhz_observed", "power_limit_w": "gpu_power_w_observed"}
TOOK_TOLERANCE = 0.02   # an observed clock within 2% of the lock counts as applied


def _clock_list(name: str, value: Any, allow_auto: bool) -> list[int] | str | None:
    if value is None and not allow_auto:
        return None
    if allow_auto and isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    values = common.as_list(name, value)
    out = []
    for v in values:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            hint = "'auto' or " if allow_auto else ""
            raise ParameterError(f"{name} has invalid value {v!r}; give {hint}a list of positive whole "
                                 "numbers (e.g. [1980, 1410, 990])")
        out.append(v)
    if len(set(out)) != len(out):
        raise ParameterError(f"{name}={out!r} names a value twice; give each setting once")
    return out


def _device_and_dtype(device: str, dtype: str) -> tuple[str, str]:
    check_choice("device", device, DEVICES)
    check_choice("dtype", dtype, DTYPES)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, dtype


def check(models: Any = ("gpt2", "smollm2-135m"), weights: str = "random", layers: int | None = None,
          gpu_clocks_mhz: Any = "auto", n_clocks: int = 6, include_default_clock: bool = True,
          power_limits_w: Any = None, input_tokens: int = 128, output_tokens: int = 64,
          batch_size: int = 1, dtype: str = "auto", device: str = "auto", repeats: Any = None,
          warmup: int = 1, idle_s: float = 2.0, meters: Any = None, isolate: bool = True,
          run_dir: str | None = None, reference_dir: str | None = None, alpha: float = 0.05,
          **unknown: Any) -> dict[str, Any]:
    """Checked parameters (raises ParameterError before any work; nothing is written)."""
    if unknown:
        raise ParameterError(f"unknown parameter(s) {sorted(unknown)}")
    for name, flag in (("include_default_clock", include_default_clock), ("isolate", isolate)):
        if not isinstance(flag, bool):
            raise ParameterError(f"{name}={flag!r} is not valid; choose one of: True, False")
    device, dtype = _device_and_dtype(device, dtype)
    params = {
        "models": sweeps.model_entries(list(models) if isinstance(models, tuple) else models, weights, layers),
        "gpu_clocks_mhz": _clock_list("gpu_clocks_mhz", gpu_clocks_mhz, allow_auto=True),
        "n_clocks": common.as_int("n_clocks", n_clocks, minimum=2),
        "include_default_clock": include_default_clock,
        "power_limits_w": _clock_list("power_limits_w", power_limits_w, allow_auto=False),
        "input_tokens": common.as_int("input_tokens", input_tokens),
        "output_tokens": common.as_int("output_tokens", output_tokens, minimum=2),
        "batch_size": common.as_int("batch_size", batch_size), "dtype": dtype, "device": device,
        "repeats": sweeps.repeat_policy(repeats or {"min": 3, "max": 10, "ci_rel": 0.05}),
        "warmup": common.as_int("warmup", warmup, minimum=0), "idle_s": idle_s,
        "meters": common.as_list("meters", meters) if meters is not None else None,
        "isolate": isolate, "alpha": common.as_fraction("alpha", alpha, 1e-6, 0.5),
        "run_dir": common.run_dir(CHAPTER, run_dir),
        "reference": common.reference_runs(common.reference_root(reference_dir), CHAPTER),
    }
    sweeps.check_configs([sweep_config(params, None, ())])  # models, device, lengths, meters
    return params


def sweep_config(params: Mapping[str, Any], axis: str | None, values: Sequence[Any]) -> dict[str, Any]:
    """The sweep config of the chapter with ``axis`` over ``values`` (None = default setting)."""
    config = {
        "name": f"{CHAPTER}-{axis or 'base'}", "chapter": CHAPTER, "models": list(params["models"]),
        "batch_sizes": [params["batch_size"]], "input_tokens": [params["input_tokens"]],
        "output_tokens": [params["output_tokens"]], "dtypes": [params["dtype"]],
        "device": params["device"], "repeats": params["repeats"], "warmup": params["warmup"],
        "idle_s": params["idle_s"], "meters": params["meters"], "isolate": params["isolate"],
        "quality": {"items": 0}, "roofline": True,
    }
    if axis is not None:
        config["axes"] = {axis: list(values)}
    return config


@dataclass(frozen=True)
class Plan:
    """What the chapter measures live: an axis and its values, or nothing, and why."""

    live: bool
    axis: str | None
    values: tuple[Any, ...]
    reason: str

    def _repr_markdown_(self) -> str:
        return self.reason


def _resolve_clocks(params: Mapping[str, Any], gpu: Any) -> list[int]:
    """``auto``: ``n_clocks`` supported clocks spread over the range; else the list, checked."""
    wanted = params["gpu_clocks_mhz"]
    if wanted == "auto":
        return sorted(gpu.clock_levels(params["n_clocks"]), reverse=True)
    bad = [c for c in wanted if c not in gpu.graphics_clocks_mhz]
    if bad:
        raise ParameterError(f"gpu_clocks_mhz has clock(s) {bad} this GPU does not support; supported "
                             f"(MHz): {', '.join(map(str, gpu.graphics_clocks_mhz))}")
    return list(wanted)


def _nothing_changeable(probe: Any) -> str:
    gpu = probe.gpu.reason if not probe.gpu.available else probe.gpu.permission_reason
    cpu = probe.cpu.reason if not probe.cpu.available else (
        "cpufreq is present" + ("" if probe.cpu.writable else " but not writable"))
    return f"GPU: {gpu}. CPU: {cpu}."


def plan(params: Mapping[str, Any], probe: Any) -> Plan:
    """Decide from the capability ``probe`` what to sweep; never raises for a missing GPU."""
    usable = probe.axes
    default = (None,) if params["include_default_clock"] else ()
    no_live = "**Nothing in this chapter is measured live.**"
    if not any(usable.get(a) for a in ("gpu_clock_mhz", "power_limit_w")):
        return Plan(False, None, (), "**No frequency can be changed on this machine.** "
                    f"{_nothing_changeable(probe)} {no_live}")
    if params["device"] not in ("cuda", "cuda:0"):
        return Plan(False, None, (), f"This machine's GPU settings can be changed, but device="
                    f"{params['device']!r}: a GPU clock cannot change the time of work that does not run "
                    f"on GPU 0. Rerun with `device='cuda'`. {no_live}")
    if usable.get("gpu_clock_mhz"):
        clocks = _resolve_clocks(params, probe.gpu)
        return Plan(True, "gpu_clock_mhz", default + tuple(clocks),
                    f"The GPU graphics clock of {probe.gpu.name} can be locked: the chapter sweeps "
                    f"{', '.join(map(str, clocks))} MHz" + (" and the default (unlocked) clock." if default else "."))
    if params["power_limits_w"]:
        limits = tuple(params["power_limits_w"])
        return Plan(True, "power_limit_w", default + limits,
                    f"Clocks cannot be locked here ({probe.gpu.permission_reason}), but the power limit "
                    f"can be set: the chapter sweeps {', '.join(map(str, limits))} W instead.")
    return Plan(False, None, (), "**No GPU clock can be locked on this machine** "
                f"({probe.gpu.permission_reason}); a power limit could be set: pass `power_limits_w`. {no_live}")


def measure(params: Mapping[str, Any], the_plan: Plan, progress: bool = True) -> Any:
    """Run (or reuse) the planned sweep; only its rows. Refuses a plan that is not live."""
    if not the_plan.live or the_plan.axis is None:
        raise ParameterError(f"nothing to measure on this machine: {the_plan.reason}")
    config = sweep_config(params, the_plan.axis, the_plan.values)
    return sweeps.measure([config], Path(params["run_dir"]), progress=progress)


def reference_sweep_config(params: Mapping[str, Any], clocks: Sequence[int] | None = None) -> dict[str, Any]:
    """The sweep a GPU machine runs to produce this chapter's reference data (device ``cuda``).

    Clocks are the chapter's explicit ``gpu_clocks_mhz``, else ``clocks``;
    with neither (``auto`` on a machine without a GPU) the axis lists only the
    default setting and :func:`reference_sweep_yaml` says which clocks to add.
    """
    wanted = params["gpu_clocks_mhz"]
    chosen = list(wanted) if wanted != "auto" else list(clocks or [])
    default = [None] if params["include_default_clock"] or not chosen else []
    dtype = params["dtype"] if params["device"].startswith("cuda") else "bfloat16"
    return sweep_config({**params, "device": "cuda", "dtype": dtype, "isolate": True},
                        "gpu_clock_mhz", default + chosen)


def reference_sweep_yaml(params: Mapping[str, Any], clocks: Sequence[int] | None = None) -> str:
    """:func:`reference_sweep_config` as YAML, with a note when the clocks are still to be chosen."""
    import yaml

    config = reference_sweep_config(params, clocks)
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
    if params["gpu_clocks_mhz"] == "auto" and not clocks:
        text = (f"# gpu_clocks_mhz is 'auto': on the GPU machine, `nrg dvfs` lists the supported graphics\n"
                f"# clocks; add about {params['n_clocks']} of them, from lowest to highest, to axes.gpu_clock_mhz\n"
                "# (null = the default, unlocked clock).\n") + text
    return text


# ---------------------------------------------------------------- analysis


def _rows(df: Any, axis: str) -> Any:
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


def observed_settings(rows: Any, axis: str) -> Any:
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


def _optimal_long(rows: Any, axis: str) -> Any:
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


def optimal_table(optimal_long: Any, phase: str = "generate") -> Any:
    """One row per model: the energy-, EDP- and ED²P-optimal setting, its energy saving and latency change.

    Savings and changes are fractions against ``reference`` (the default setting
    when measured, else the highest); a positive latency change is slower.
    """
    import pandas as pd

    if optimal_long.empty:
        return pd.DataFrame(columns=["model"])
    part = optimal_long[optimal_long["phase"] == phase]
    wide = part.drop_duplicates("model").set_index("model")[["reference_clock"]].rename(
        columns={"reference_clock": "reference"})
    for objective, name in (("energy_j", "energy"), ("edp_j_s", "edp"), ("ed2p_j_s2", "ed2p")):
        sub = part[part["objective"] == objective].set_index("model")
        wide = wide.join(sub[["optimal_clock_mhz", "energy_saving", "latency_change"]].set_axis(
            [f"{name}_optimal", f"{name}_optimal_energy_saving", f"{name}_optimal_latency_change"], axis=1))
    return wide.reset_index()


def sensitivity(rows: Any, axis: str) -> Any:
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


def phase_figure(rows: Any, metric: str, axis: str, optimal_long: Any = None) -> Any:
    """``metric`` against the setting, a panel per phase, a line per model; ★ optimal, dashed = default."""
    from matplotlib.figure import Figure

    from nrg import plots

    phases = [p for p in PHASES if (rows["phase"] == p).any()]
    fig = Figure(figsize=(5.0 * len(phases), 4.2), layout="constrained")
    for ax, phase in zip(fig.subplots(1, len(phases), squeeze=False)[0], phases):
        part = rows[rows["phase"] == phase]
        best = None
        if optimal_long is not None and metric in OBJECTIVE_COLUMNS and not optimal_long.empty:
            best = optimal_long[(optimal_long["phase"] == phase) & (optimal_long["objective"] == metric)]
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

    return "default" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:g} {SETTING_UNITS[axis]}"


def summary_table(rows: Any, axis: str) -> Any:
    """Mean energy, time, power, EDP and ED²P per model, phase and setting (CIs: ``profile``)."""
    import pandas as pd

    ordered = rows.assign(phase=pd.Categorical(rows["phase"], categories=list(PHASES)))
    means = (ordered.groupby(["model", "phase", axis], dropna=False, sort=True, observed=True)[list(MEASURES)]
             .mean().reset_index())
    means.insert(2, "setting", [_label(v, axis) for v in means[axis]])
    return means.drop(columns=axis)


def decode_shares(rows: Any, axis: str) -> Any:
    """Decode's share of time and energy per model (rows) and setting (columns), from phase_share."""
    from nrg import stats

    labelled = rows.assign(setting=[_label(v, axis) for v in rows[axis]])
    shares = stats.phase_share(labelled, by=["model", "setting"], measures=["time_s", "energy_j"])
    order = list(dict.fromkeys(summary_table(rows, axis)["setting"]))
    table = shares.pivot_table(index=["model", "measure"], columns="setting", values="decode_share")
    return table[[c for c in order if c in table.columns]].rename_axis(columns="decode share at")


def _sensitivity_findings(sens: Any, axis: str) -> list[str]:
    from nrg.findings import pct
    from nrg.stats import label

    out = []
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


def _share_findings(shares: Any) -> list[str]:
    from nrg.findings import pct
    from nrg.stats import label

    out = []
    for measure in ("time_s", "energy_j"):
        values = shares.xs(measure, level="measure").stack().dropna() if len(shares) else shares
        if len(values):
            out.append(f"Decode takes {pct(values.min())}–{pct(values.max())} of {label(measure)} across "
                       f"{len(values)} model × setting combinations; prefill the rest.")
    return out


def _observed_findings(observed: Any) -> list[str]:
    if "took" not in observed.columns:
        return []
    locked = observed[observed["took"].notna()]
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


def _optimal_findings(optimal_long: Any, axis: str) -> list[str]:
    from nrg import findings

    out: list[str] = []
    part = optimal_long[optimal_long["phase"] == "generate"] if not optimal_long.empty else optimal_long
    for objective in ("energy_j", "edp_j_s"):
        rows = part[part["objective"] == objective] if not part.empty else part
        if rows.empty:
            continue
        sentences = list(findings.clock_findings(rows))
        if axis != "gpu_clock_mhz":  # the same numbers, in the setting's unit
            sentences = [s.replace(" MHz", " W").replace("clock", "power limit") for s in sentences]
        out += sentences
    return out


def _anova(rows: Any, axis: str, alpha: float) -> Any:
    from nrg import stats

    generate = rows[rows["phase"] == "generate"]
    if generate[axis].nunique(dropna=False) < 2:
        return None
    return stats.anova(generate, "energy_per_token_j", [axis, "model"], alpha=alpha)


def failures(df: Any, axis: str) -> Any:
    """Cells that did not complete (e.g. a lock refused), with their error: shown, never dropped silently."""
    cols = [c for c in ("model", axis, "status", "error") if c in df.columns]
    failed = df[df["status"].astype("string").fillna("ok") != "ok"] if "status" in df.columns else df.iloc[:0]
    return failed[cols].drop_duplicates().reset_index(drop=True)


def detect_axis(df: Any) -> str:
    """The setting a run swept: locked clocks, else power limits."""
    from nrg.stats import clock_key

    present = [a for a in SETTING_UNITS if a in df.columns]
    for axis in present:
        if clock_key(df[axis]).notna().any():
            return axis
    if present:
        return present[0]
    raise ParameterError("the data has neither gpu_clock_mhz nor power_limit_w: it is not a DVFS sweep")


def analyse(df: Any, axis: str | None = None, alpha: float = 0.05) -> dict[str, Any]:
    """Every table, figure and finding of the chapter, from measured rows (live or reference)."""
    from nrg import findings, stats

    axis = axis or detect_axis(df)
    rows = _rows(df, axis)
    optimal_long = _optimal_long(rows, axis)
    sens = sensitivity(rows, axis)
    observed = observed_settings(rows, axis)
    shares = decode_shares(rows, axis)
    anova = _anova(rows, axis, alpha)
    sentences = _optimal_findings(optimal_long, axis) + _sensitivity_findings(sens, axis)
    sentences += _share_findings(shares) + _observed_findings(observed)
    if optimal_long.empty:
        sentences.append("Only the default setting was measured: there is no other setting to compare with.")
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
    from nrg import findings, stats

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
    for gpu, frame in sweeps.load_reference(reference).items():
        out[f"Reference data measured on {gpu} (results/reference/{gpu}/{CHAPTER})"] = _analyse_or_explain(frame, alpha)
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


def no_reference_message(params: Mapping[str, Any], clocks: Sequence[int] | None = None) -> str:
    """Markdown: no reference data is committed, and the commands that would produce it."""
    return (
        f"No reference data has been committed for this chapter (`results/reference/<gpu>/{CHAPTER}/`). "
        "To produce it on a machine with an NVIDIA GPU whose clocks nrg may lock (root, or "
        "`nvidia-smi -acp UNRESTRICTED`): check with `nrg dvfs --test-lock`, save the config below as "
        f"`dvfs.yaml`, run `nrg sweep dvfs.yaml --out results/reference/<gpu-name>/{CHAPTER}` and commit "
        "that folder; or run this notebook there with "
        f"`-p device cuda -p run_dir results/reference/<gpu-name>/{CHAPTER}` "
        "(the `gpu-paper` profile holds the paper's setting).\n\n"
        f"```yaml\n{reference_sweep_yaml(params, clocks)}```"
    )
