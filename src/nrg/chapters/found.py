""""What this chapter found": the chapter's key findings, gathered at the top of its page.

Each chapter states its findings under the figure they come from; a reader who
wants the answer should not have to scroll through every section for them.
:func:`block` computes the same sentences (the :mod:`nrg.findings` functions,
on the same analyses the sections run) from the chapter's measured data, right
after it is measured, and shows them as a box. Nothing here is typed by hand:
a chapter rerun with other parameters gets other sentences.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nrg.errors import choice_error


def _extremes(gen: Any, by: list[str], measure: str = "energy_per_token_j") -> list[str]:
    """The cheapest and the dearest group of ``by`` by mean ``measure``."""
    from nrg.findings import num
    from nrg.stats import label, summarize, unit

    means = summarize(gen, by=by, measures=measure).sort_values("mean")
    if len(means) < 2:
        return []
    lo, hi = means.iloc[0], means.iloc[-1]
    name = lambda row: ", ".join(str(row[c]) for c in by)  # noqa: E731
    return [f"Mean {label(measure)} ranges from {num(lo['mean'])} {unit(measure)} ({name(lo)}) to "
            f"{num(hi['mean'])} {unit(measure)} ({name(hi)}), a factor of {num(hi['mean'] / lo['mean'])}."]


def measurement(calib: Any, params: Mapping[str, Any]) -> list[str]:
    """Chapter 0: how energy was obtained here, and whether it follows the work."""
    from nrg.findings import num

    methods = ", ".join(sorted(calib["energy_method"].unique()))
    per_size = calib.groupby("matrix_size")["energy_j"].mean()
    monotone = bool((per_size.diff().dropna() > 0).all())
    best = calib.groupby("matrix_size")["gflop_per_j"].mean()
    out = [f"Energy was obtained by **{methods}** ({'; '.join(sorted(calib['energy_source'].unique()))})."]
    out.append("Energy per multiplication rises with the work at every matrix size." if monotone else
               "Energy per multiplication does not rise with the work at every size: this machine's spread "
               "is larger than the differences.")
    out.append(f"The most efficient size is {best.idxmax()} ({num(best.max())} GFLOP/J).")
    if "estimated" in methods:
        out.append("CPU energy on this machine is **estimated** from CPU time and a rated power, "
                   "not measured by a counter.")
    return out


def model_comparison(df: Any, params: Mapping[str, Any]) -> list[str]:
    """Chapter 1: the spread of energy per token and what the ANOVA attributes it to."""
    from nrg import findings, stats
    from nrg.chapters.model_comparison import generate_rows

    gen = generate_rows(df)
    out = _extremes(gen, ["model", "task"])
    result = stats.anova(gen, "energy_per_token_j", ["model", "task"], alpha=params["alpha"])
    out += list(findings.anova_findings(result, response_label="energy per token"))[:2]
    return out + stats.provenance_notes(df)


def sequence_length(df: Any, params: Mapping[str, Any]) -> list[str]:
    """Chapter 2: the fitted cost per input and output token, the ANOVA and the decode share."""
    from nrg import findings, stats
    from nrg.chapters import sequence_length as chapter

    gen = chapter.ok_phase(df, "generate")
    out = list(findings.length_findings(stats.per_token_costs(gen, response="energy_j", by=["model"])))
    joint = chapter.joint_grid(gen, dict(params))
    factors = ["input_tokens", "output_tokens"] + (["model"] if joint["model"].nunique() > 1 else [])
    out += list(findings.anova_findings(stats.anova(joint, "energy_j", factors, alpha=params["alpha"]),
                                        response_label="energy per generation"))[:1]
    phases = df[df["phase"].isin(["prefill", "decode"]) & (df["status"] == "ok")]
    out += list(findings.phase_share_findings(stats.phase_share(phases, by=["model", "input_tokens", "output_tokens"])))
    return out + stats.provenance_notes(df)


def dvfs(analyses: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Chapter 3: the findings of every analysis (live and reference), under its label."""
    out = []
    for label, result in analyses.items():
        sentences = list(result.get("findings", ())) + list(result.get("anova_findings", ()))[:1]
        out += [f"*{label}:* {s}" for s in sentences]
    return out or ["Nothing was measured here and no reference data is committed."]


def tickets(df: Any, params: Mapping[str, Any]) -> list[str]:
    """Chapter 4: the best-ranked combination of each task and phase, and the Pareto front."""
    from nrg import findings
    from nrg.chapters import tickets_analysis as analysis

    out = []
    for task in params["tasks"]:
        metric = params["metrics"][task]
        for phase in analysis.PHASES:
            rows = df[(df["task"] == task) & (df["phase"] == phase) & (df["status"] == "ok")]
            if rows.empty:
                continue
            ranked = analysis.ranking(df, task, phase, metric, params["w"])
            out += [f"*{task}, {phase}:* {s}" for s in list(findings.ranking_findings(ranked))[:1]]
    from nrg.stats import provenance_notes

    return out + provenance_notes(df)


def batch_size(df: Any, params: Mapping[str, Any]) -> list[str]:
    """Chapter 5: energy per token and latency from the smallest to the largest batch, the fit, the ANOVA."""
    from nrg import findings
    from nrg.chapters import batch_size as chapter

    gen = chapter.ok_phase(df, "generate")
    out = list(chapter.batch_findings(gen))
    out += list(findings.anova_findings(chapter.anova(gen, params["alpha"]), response_label="energy per token"))[:1]
    from nrg.stats import provenance_notes

    return out + provenance_notes(df)


COLLECTORS: dict[str, Callable[..., list[str]]] = {
    "00_how_energy_is_measured": measurement,
    "01_model_comparison": model_comparison,
    "02_sequence_length": sequence_length,
    "03_dvfs": dvfs,
    "04_network_tickets": tickets,
    "05_batch_size": batch_size,
}


def collect(chapter: str, *args: Any, **kwargs: Any) -> list[str]:
    """The key findings of ``chapter`` from its data (see each collector for what it takes)."""
    if chapter not in COLLECTORS:
        raise choice_error("chapter", chapter, sorted(COLLECTORS))
    return COLLECTORS[chapter](*args, **kwargs)


def block(chapter: str, *args: Any, **kwargs: Any) -> Any:
    """The "What this chapter found" box (a MyST admonition) for the top of ``chapter``."""
    from nrg.chapters.display import findings_block

    return findings_block(collect(chapter, *args, **kwargs))
