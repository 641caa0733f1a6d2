"""Analysis of chapter 4: per-combination tables, ANOVA, the ranking R and the Pareto front.

Every function takes the rows :func:`nrg.book.chapters.c04_network_tickets.driver.measure` returns and
gives back a DataFrame, an :class:`nrg.stats.AnovaResult` or a
:class:`nrg.stats.RankResult`, so each table and figure of the chapter has its
data in the package. Rows that did not run (``status`` "unsupported" or
"failed") are shown by :func:`not_run`, never dropped silently. The
``*_section`` functions return what one part of the page shows, in order
(tables, figures, :class:`Text`), for a notebook cell to ``display(*...)``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from nrg.book.chapters.c04_network_tickets.chance import chance_quality
from nrg.book.chapters.c04_network_tickets.kernels import kernel_sentence, kernels
from nrg.book.common import Text
from nrg.book.labels import model_columns

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from nrg.book.chapters.c04_network_tickets.params import Params
    from nrg.stats import AnovaResult, RankResult

__all__ = ["chance_quality", "kernel_sentence", "kernels"]   # re-exported: the notebook calls them from here
from nrg.errors import ParameterError

KEYS = ("quant", "prune")
PHASES = ("finetune", "inference")
PHASE_NAMES = {"finetune": "fine-tuning", "inference": "inference"}
WHOLE_CELL = "(whole cell)"   # the phase shown for a cell that failed before any phase ran




def task_rows(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """Rows of one task (raises if the task was not run)."""
    rows = df[df["task"] == task]
    if rows.empty:
        raise ParameterError(f"task={task!r} has no rows; tasks run: {sorted(df['task'].unique())}")
    return rows


def ok(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that ran."""
    return df[df["status"] == "ok"]


def combinations(df: pd.DataFrame, task: str, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per quant x prune x phase: status, energy and time (mean, 95% CI), quality, kernel."""
    from nrg.stats import summarize

    rows = task_rows(df, task)
    status = rows.groupby([*KEYS, "phase"], sort=False)["status"].agg(lambda s: ", ".join(sorted(set(s))))
    out = status.rename("status").to_frame()
    stats = summarize(rows, [*KEYS, "phase"], ["energy_j", "time_s"])
    for measure in ("energy_j", "time_s"):
        part = stats[stats["measure"] == measure].set_index([*KEYS, "phase"])
        out[f"{measure} mean"] = part["mean"]
        out[f"{measure} ±95%"] = part["ci_halfwidth"]
        if measure == "energy_j":
            out["n"] = part["n"]
    good = ok(rows)
    for metric in metrics:
        if metric in good.columns:
            out[metric] = good.groupby([*KEYS, "phase"])[metric].mean()
    for column in ("kernel", "finetune_path", "sparsity"):
        if column in rows.columns:
            out[column] = rows.groupby([*KEYS, "phase"], sort=False)[column].first()
    out["n"] = out["n"].fillna(0).astype(int)
    from nrg.book.labels import mark_estimated

    return mark_estimated(model_columns(out.reset_index(), rows, KEYS), rows)


def not_run(df: pd.DataFrame) -> pd.DataFrame:
    """Every (task, quant, prune, phase) that did not run, with the status and the reason.

    A cell that failed as a whole (its process crashed, timed out, or the device
    cannot run its quantization) has one row, shown with phase "(whole cell)".
    """
    bad = df[df["status"] != "ok"]
    columns = ["task", *KEYS, "phase", "status", "error"]
    if bad.empty:
        return pd.DataFrame(columns=[*columns[:-1], "reason"])
    bad = bad.assign(phase=bad["phase"].astype(object).where(bad["phase"].notna(), WHOLE_CELL))
    table = bad[columns].drop_duplicates(subset=["task", *KEYS, "phase", "status"])
    return table.rename(columns={"error": "reason"}).reset_index(drop=True)


def complete_design(rows: pd.DataFrame, factors: Sequence[str], over: str = "quant") -> tuple[pd.DataFrame, list[str]]:
    """The levels of ``over`` that have ok rows in every combination of ``factors``; notes on the rest.

    Why: an interaction needs every combination measured; a quantization whose
    fine-tuning cannot run (LoRA cannot wrap torch's int8 layers) leaves holes.
    """
    good = ok(rows)
    others = [f for f in factors if f != over]
    needed = good[others].drop_duplicates()
    kept, notes = [], []
    for level, part in good.groupby(over, sort=False):
        present = part[others].drop_duplicates()
        if len(present) == len(needed):
            kept.append(level)
        else:
            notes.append(f"{over}={level} is left out of the interaction ANOVA: it has ok rows in only "
                         f"{len(present)} of {len(needed)} combinations of {', '.join(others)}.")
    if len(kept) < 2:
        return good, ["Too few complete levels for the interaction; all ok rows are used (main effects)."]
    return good[good[over].isin(kept)], notes


@dataclasses.dataclass(frozen=True)
class NoAnova:
    """An ANOVA that the data cannot support, and why (shown in place of the table)."""

    response: str
    reason: str

    def _repr_markdown_(self) -> str:
        return f"**No ANOVA of `{self.response}`:** {self.reason}"


def _anova(data: pd.DataFrame, response: str, factors: list[str], alpha: float,
           notes: Sequence[str]) -> AnovaResult | NoAnova:
    """:func:`nrg.stats.anova`, unless even the main-effects model leaves no residual."""
    import warnings

    from nrg.stats import anova

    values = data.dropna(subset=[response])
    varying = [f for f in factors if values[f].nunique() > 1]
    params = 1 + sum(values[f].nunique() - 1 for f in varying)
    if len(values) <= params:
        return NoAnova(response, f"{len(values)} observation(s) for {params} parameter(s) of the "
                                 f"main-effects model on {', '.join(varying) or 'no varying factor'}: "
                                 "no residual to test against. Measure more combinations or repeats.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Levene on constant groups, Wald tests at the edge
        result = anova(values, response, factors, alpha=alpha)
    return dataclasses.replace(result, notes=tuple(notes) + result.notes)


def energy_anova(df: pd.DataFrame, task: str, alpha: float = 0.05, phase: str = "inference") -> AnovaResult | NoAnova:
    """ANOVA of ``energy_j`` on quant x prune within one ``phase`` (complete levels only; notes say which not).

    Why per phase: a fine-tuning run costs tens of times an inference window,
    so a pooled ANOVA's phase term swamps everything and the fine-tuning
    cells' single runs borrow the inference windows' replication. A phase
    whose combinations each ran once (one fine-tuning per combination) has no
    replicate to test against: no p-value, and the reason instead.
    """
    if phase not in PHASES:
        raise ParameterError(f"phase={phase!r} is not valid; choose one of {list(PHASES)}")
    rows = task_rows(df, task)
    rows = rows[rows["phase"] == phase]
    response = f"energy_j ({phase})"
    good = ok(rows)
    if good.empty:
        return NoAnova(response, f"no {phase} ran for {task}.")
    runs = good.groupby(list(KEYS)).size()
    if runs.max() < 2:
        what = "fine-tuning" if phase == "finetune" else "inference window"
        fix = "set train_repeats ≥ 2 to repeat each fine-tuning" if phase == "finetune" else "set repeats ≥ 2"
        return NoAnova(response, f"one {what} per combination: no replicate to test a difference against, "
                                 f"so no p-value is given ({fix}). The table above shows each run's energy.")
    data, notes = complete_design(rows, list(KEYS))
    return _anova(data, "energy_j", list(KEYS), alpha, notes)


def quality_rows(df: pd.DataFrame, task: str) -> pd.DataFrame:
    """One row per tuned model (quality is a property of the model, not of a measuring window)."""
    rows = ok(task_rows(df, task))
    rows = rows[rows["phase"] == "inference"]
    return rows[rows["window"] == 0] if "window" in rows.columns else rows


def quality_anova(df: pd.DataFrame, task: str, metric: str, alpha: float = 0.05) -> AnovaResult | NoAnova:
    """ANOVA of the task's quality metric on quant x prune, one observation per tuned model."""
    data = quality_rows(df, task)
    models = data.groupby(list(KEYS)).size()
    if len(models) and models.max() < 2:
        return NoAnova(metric, "one tuned model per combination (train_repeats = 1): quality has no replicate "
                               "to test a difference against, so no p-value is given (set train_repeats ≥ 2).")
    note = (f"Quality has {int(models.min())}–{int(models.max())} tuned model(s) per combination "
            "(train_repeats); repeated inference windows are not replicates of quality.")
    return _anova(data, metric, list(KEYS), alpha, [note])


def ranking(df: pd.DataFrame, task: str, phase: str, metric: str, w: float) -> RankResult:
    """R = w·φ + (1−w)·ρ of every quant x prune for one phase; unranked combinations in the notes."""
    from nrg.stats import rank_configs

    if phase not in PHASES:
        raise ParameterError(f"phase={phase!r} is not valid; choose one of {list(PHASES)}")
    rows = task_rows(df, task)
    replicate = "train_repeat" if "train_repeat" in rows.columns else None   # one tuned model per replicate
    ranked = rank_configs(rows[rows["phase"] == phase], by=list(KEYS), energy="energy_j", quality=metric, w=w,
                          replicate=replicate)
    missing = not_run(rows[(rows["phase"] == phase) | rows["phase"].isna()])
    notes = [f"{r['quant']} / {r['prune']} is not ranked for {phase}: {r['status']} ({r['reason'][:160]})"
             for _, r in missing.iterrows()]
    return dataclasses.replace(ranked, table=model_columns(ranked.table, rows, KEYS), notes=ranked.notes + tuple(notes))


def heatmaps(df: pd.DataFrame, task: str, metric: str) -> Figure:
    """Mean energy per phase and mean quality for each quant x prune, one heatmap per row."""
    from matplotlib.figure import Figure

    from nrg.book.plots import quant_prune_heatmap
    from nrg.stats._data import estimated

    rows = task_rows(df, task)
    fig = Figure(figsize=(7, 13), layout="constrained")   # one heatmap per row: legible at page width
    axes = fig.subplots(3, 1)
    for ax, phase in zip(axes[:len(PHASES)], PHASES, strict=True):   # the last axis shows quality
        part = rows[rows["phase"] == phase]
        if ok(part).empty:
            ax.set_axis_off()
            ax.set_title(f"{phase}: nothing ran")
            continue
        quant_prune_heatmap(part, value="energy_j", rows="quant", cols="prune", ax=ax)
        ax.set_title(f"{task}: {phase} {'estimated ' if estimated(part) else ''}energy (J)")
    quant_prune_heatmap(quality_rows(df, task), value=metric, rows="quant", cols="prune", ax=axes[2])
    axes[2].set_title(f"{task}: {metric}")
    return fig


def pareto_figure(ranked: Any, task: str, phase: str, metric: str) -> Figure:
    """Energy vs quality of the ranked combinations, the Pareto front highlighted."""
    from nrg.book.plots import energy_quality_scatter

    what = "estimated energy" if ranked.energy_estimated else "energy"
    fig = energy_quality_scatter(ranked.table, annotate=list(KEYS),
                                 energy_label=f"{PHASE_NAMES.get(phase, phase)} {what} (J)", quality_label=metric)
    fig.axes[0].set_title(f"{task}, {phase}: energy vs quality (w = {ranked.w:g})")
    return fig


# ------------------------------------------------------------------ what the page shows


def _skipped(params: Params, task: str) -> list[Any]:
    if task in params.tasks:
        return []
    return [Text(f"The `{task}` task was not run (tasks = {list(params.tasks)}).")]


def combinations_section(df: pd.DataFrame, params: Params, task: str) -> list[Any]:
    """Every combination's energy and quality (table), then as heatmaps."""
    from nrg.book.chapters.c04_network_tickets.params import METRICS

    if _skipped(params, task):
        return _skipped(params, task)
    return [combinations(df, task, METRICS[task]), heatmaps(df, task, params.metrics[task])]


def anova_section(df: pd.DataFrame, params: Params, task: str) -> list[Any]:
    """The energy ANOVA of each phase (fine-tuning, inference) and the quality ANOVA, each with its findings."""
    from nrg.book import findings
    from nrg.stats import AnovaResult

    if _skipped(params, task):
        return _skipped(params, task)
    metric, alpha = params.metrics[task], params.alpha
    shown: list[Any] = []
    results = [(energy_anova(df, task, alpha, phase), f"{PHASE_NAMES[phase]} energy") for phase in PHASES]
    for result, label in [*results, (quality_anova(df, task, metric, alpha), metric)]:
        shown.append(result)
        if isinstance(result, AnovaResult):
            shown.append(Text(str(findings.anova_findings(result, label))))
    return shown


def rankings(df: pd.DataFrame, params: Params, task: str) -> dict[str, Any]:
    """The ranking R of each phase in which some combination of ``task`` ran."""
    if task not in params.tasks:
        return {}
    rows = ok(df[df["task"] == task])
    return {phase: ranking(df, task, phase, params.metrics[task], params.w)
            for phase in PHASES if not rows[rows["phase"] == phase].empty}


def ranking_section(params: Params, task: str, ranked: Mapping[str, Any]) -> list[Any]:
    """Each phase's ranking and its findings, or that nothing ran."""
    from nrg.book import findings

    if _skipped(params, task):
        return _skipped(params, task)
    shown: list[Any] = []
    for phase in PHASES:
        if phase not in ranked:
            shown.append(Text(f"**{phase}:** no combination ran."))
            continue
        chance = chance_quality(params, task, params.metrics[task])
        shown += [Text(f"**{task}, {phase}**"), ranked[phase],
                  Text(str(findings.ranking_findings(ranked[phase], chance=chance)))]
    return shown


def pareto_figures(params: Params, task: str, ranked: Mapping[str, Any]) -> list[Any]:
    """Energy vs quality with the Pareto front, one figure per ranked phase."""
    return [pareto_figure(result, task, phase, params.metrics[task]) for phase, result in ranked.items()]


def example_responses(df: pd.DataFrame) -> list[Any]:
    """One generated response per combination (the first held-out ticket), when responses ran."""
    examples = ok(df[(df["task"] == "response") & (df["phase"] == "inference")])
    if "example_prediction" not in examples.columns or examples.empty:
        return []
    table = examples.drop_duplicates(["quant", "prune"])[["quant", "prune", "example_prediction"]]
    return [Text("One generated response per combination (the first held-out ticket):"),
            table.reset_index(drop=True)]


def reference_section(reference: Mapping[str, pd.DataFrame], params: Params) -> list[Any]:
    """Committed GPU runs ranked like the live ones, or that there are none."""
    if not reference:
        return [Text("No committed GPU run of this chapter was found under `results/reference/`.")]
    shown: list[Any] = []
    for gpu, ref in reference.items():
        for task in sorted(set(ref["task"])):
            for phase in PHASES:
                if ok(ref[(ref["task"] == task) & (ref["phase"] == phase)]).empty:
                    continue
                shown += [Text(f"**Reference: {gpu}, {task}, {phase}**"),
                          ranking(ref, task, phase, params.metrics[task], params.w)]
    return shown
