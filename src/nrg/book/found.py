""""What this chapter found": the chapter's key findings, gathered at the top of its page.

Each chapter states its findings under the figure they come from; a reader who
wants the answer should not have to scroll through every section for them.
:func:`block` computes the same sentences (the :mod:`nrg.book.findings` functions,
on the same analyses the sections run) from the chapter's measured data, right
after it is measured, and shows them as a box. Nothing here is typed by hand:
a chapter rerun with other parameters gets other sentences.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

from nrg.errors import choice_error


def _framing(rows: Any) -> list[str]:
    """What opens every box: what energy means here (when estimated)."""
    from nrg.stats.energy_time import energy_lead

    return energy_lead(rows)


def _trust(rows: Any) -> list[str]:
    """What closes every box: missed CI targets and interference, always named, and failed rows."""
    from nrg.book import quality
    from nrg.stats import provenance_notes

    notes = [n for n in provenance_notes(rows) if "estimated" not in n]   # the lead already says it
    return quality.disturbance(rows) + notes


def _anova_lead(result: Any, what: str, n: int = 1) -> list[str]:
    """The first ``n`` ANOVA sentences, plus why the shares do not add up and where the robust test decided."""
    from nrg.book import findings

    said = list(findings.anova_findings(result, response_label=what))
    notes = [s for s in said[n:] if "not 100 %" in s or "the verdicts above follow the robust test" in s]
    return said[:n] + notes


def _interval(values: Any) -> tuple[float, float, float]:
    from nrg.book.claim_measures import t_interval

    mean, low, high = t_interval(values)
    return mean, (low if low is not None else float("nan")), (high if high is not None else float("nan"))


def _extremes(gen: Any, by: list[str], measure: str = "energy_per_token_j") -> list[str]:
    """The cheapest and the dearest group of ``by`` by mean ``measure``, when their intervals separate."""
    from nrg.book.findings import num
    from nrg.book.statement import Finding, say, separated
    from nrg.stats import label, unit

    groups = {k if isinstance(k, tuple) else (k,): _interval(part[measure])
              for k, part in gen.groupby(by, observed=True, sort=True)}
    if len(groups) < 2:
        return []
    order = sorted(groups, key=lambda k: groups[k][0])
    lo, hi, runner = order[0], order[-1], order[1]
    name = lambda key: ", ".join(map(str, key))  # noqa: E731
    u = unit(measure)
    values = {"what": label(measure), "lo": num(groups[lo][0]), "hi": num(groups[hi][0]), "u": u,
              "lo_name": name(lo), "hi_name": name(hi), "factor": num(groups[hi][0] / groups[lo][0]),
              "runner": name(runner), "runner_value": num(groups[runner][0])}
    spread = Finding("Mean {what} ranges from {lo} {u} ({lo_name}) to {hi} {u} ({hi_name}), a factor of {factor}.",
                     values)
    cheapest = Finding("The cheapest, {lo_name}, is clearly below the next, {runner} ({runner_value} {u}).",
                       values, (separated(groups[lo][1:], groups[runner][1:], name(lo), name(runner)),),
                       fallback="No single cheapest: {why}.")
    return say([spread, cheapest])


_METHOD_WORDS = {"counter": "read from hardware energy counters", "integrated": "integrated from power readings",
                 "estimated": "estimated from CPU time and a rated power (no energy counter here)"}


def measurement(calib: Any, params: Mapping[str, Any]) -> list[str]:
    """Chapter 0: what energy means here, whether it follows the work, and the most efficient size (if any)."""
    from nrg.book.findings import num
    from nrg.book.statement import Finding, say, separated

    methods = sorted(map(str, calib["energy_method"].dropna().unique()))
    out = _framing(calib)
    if not out:
        out.append("Energy was " + " and ".join(_METHOD_WORDS.get(m, m) for m in methods)
                   + " (the table of energy sources below says which source, for which part of the machine).")
    out.append(_follows_work(calib))
    sizes = {size: _interval(part["gflop_per_j"]) for size, part in calib.groupby("matrix_size")}
    order = sorted(sizes, key=lambda k: -sizes[k][0])
    if len(order) >= 2:
        best, runner = order[0], order[1]
        values = {"best": best, "value": num(sizes[best][0]), "runner": runner, "runner_value": num(sizes[runner][0])}
        out += say([Finding("The most efficient size is {best} ({value} GFLOP/J), clearly above {runner} "
                            "({runner_value} GFLOP/J).", values,
                            (separated(sizes[best][1:], sizes[runner][1:], f"size {best}", f"size {runner}"),),
                            fallback="Size {best} ({value} GFLOP/J) is the most efficient on average, but it "
                                     "is not distinguishable from size {runner} ({runner_value} GFLOP/J): "
                                     "their 95 % intervals overlap.")])
    n = int(calib.groupby("matrix_size").size().min())
    out.append(f"These calibration windows are not checked for interference and have no CI target: {n} "
               "windows per size, whose spread shows in the intervals of the table.")
    return out


def _follows_work(calib: Any) -> str:
    """Whether energy per multiplication rises with the size; a fall is called spread only within the spread."""
    from nrg.book.statement import separated

    energy = {size: _interval(part["energy_j"]) for size, part in calib.groupby("matrix_size")}
    sizes = sorted(energy)
    falls = [(a, b) for a, b in itertools.pairwise(sizes) if energy[b][0] <= energy[a][0]]
    if not falls:
        return "Energy per multiplication rises with the work at every matrix size."
    beyond = [f"{a} → {b}" for a, b in falls if separated(energy[a][1:], energy[b][1:], str(a), str(b)).passed]
    if beyond:
        return ("Energy per multiplication falls with more work, by more than the windows' spread (95 % intervals "
                f"apart), from size {', '.join(beyond)}: the energy reported here does not follow the work.")
    return ("Energy per multiplication does not rise with the work at every size, but where it falls ("
            + ", ".join(f"{a} → {b}" for a, b in falls) + ") the difference is within the windows' spread "
            "(95 % intervals overlap).")


def model_comparison(df: Any, params: Mapping[str, Any]) -> list[str]:
    """Chapter 1: the spread of energy per token and what the ANOVA attributes it to."""
    from nrg import stats
    from nrg.book.chapters.c01_model_comparison.driver import generate_rows

    gen = generate_rows(df)
    out = _framing(gen) + _extremes(gen, ["model", "task"])
    result = stats.anova(gen, "energy_per_token_j", ["model", "task"], alpha=params["alpha"])
    out += _anova_lead(result, "energy per token", 2)
    return out + _trust(df)


def sequence_length(df: Any, params: Mapping[str, Any]) -> list[str]:
    """Chapter 2: the fitted cost per input and output token, the ANOVA and the decode share."""
    from nrg import stats
    from nrg.book import findings
    from nrg.book.chapters.c02_sequence_length import driver as chapter

    gen = chapter.ok_phase(df, "generate")
    out = _framing(gen)
    out += list(findings.length_findings(stats.per_token_costs(gen, response="energy_j", by=["model"])))
    joint = chapter.joint_grid(gen, dict(params))
    factors = ["input_tokens", "output_tokens"] + (["model"] if joint["model"].nunique() > 1 else [])
    out += _anova_lead(stats.anova(joint, "energy_j", factors, alpha=params["alpha"]), "energy per generation")
    phases = df[df["phase"].isin(["prefill", "decode"]) & (df["status"] == "ok")]
    out += list(findings.phase_share_findings(stats.phase_share(phases, by=["model", "input_tokens", "output_tokens"])))
    return out + _trust(df)


def dvfs(analyses: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Chapter 3: the findings of every analysis (live and reference), under its label."""
    out = []
    for label, result in analyses.items():
        rows = result.get("rows")
        frame = rows if rows is not None and len(rows) else None
        sentences = _framing(frame) if frame is not None else []
        sentences += list(result.get("findings", ())) + list(result.get("anova_findings", ()))[:1]
        sentences += _trust(frame) if frame is not None else []
        out += [f"*{label}:* {s}" for s in sentences]
    return out or ["Nothing was measured here and no reference data is committed."]


def tickets(df: Any, params: Mapping[str, Any]) -> list[str]:
    """Chapter 4: the best-ranked combination of each task and phase (when the data carry one)."""
    from nrg.book import findings
    from nrg.book.chapters.c04_network_tickets import analysis

    out = _framing(df[df["phase"] == "inference"]) if "phase" in df.columns else []
    for task in params["tasks"]:
        metric = params["metrics"][task]
        chance = analysis.chance_quality(params, task, metric)
        for phase in analysis.PHASES:
            rows = df[(df["task"] == task) & (df["phase"] == phase) & (df["status"] == "ok")]
            if rows.empty:
                continue
            ranked = analysis.ranking(df, task, phase, metric, params["w"])
            out += [f"*{task}, {phase}:* {s}" for s in list(findings.ranking_findings(ranked, chance=chance))[:1]]
    return out + _trust(df)


def batch_size(df: Any, params: Mapping[str, Any]) -> list[str]:
    """Chapter 5: energy per token and latency from the smallest to the largest batch, the fit, the ANOVA."""
    from nrg.book.chapters.c05_batch_size import driver as chapter

    gen = chapter.ok_phase(df, "generate")
    out = _framing(gen) + list(chapter.batch_findings(gen))
    out += _anova_lead(chapter.anova(gen, params["alpha"]), "energy per token")
    return out + _trust(df)


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
    from nrg.book.statement import say

    return say(COLLECTORS[chapter](*args, **kwargs))   # no sentence with an empty slot reaches a page


def block(chapter: str, *args: Any, **kwargs: Any) -> Any:
    """The "What this chapter found" box (a MyST admonition) for the top of ``chapter``."""
    from nrg.book.display import findings_block

    return findings_block(collect(chapter, *args, **kwargs))
