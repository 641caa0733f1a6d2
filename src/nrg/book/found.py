""""What this chapter found": the chapter's key findings, gathered at the top of its page.

Each chapter states its findings under the figure they come from; a reader who
wants the answer should not have to scroll through every section for them.
:func:`block` computes the same sentences (the :mod:`nrg.book.findings` functions,
on the same analyses the sections run) from the chapter's measured data, right
after it is measured, and shows them as a box. Nothing here is typed by hand:
a chapter rerun with other parameters gets other sentences.

Each chapter's sentences come from the ``found`` module of its folder
(``nrg/book/chapters/c<stem>/found.py``): its ``findings(...)`` takes what the
chapter's notebook passes to :func:`block` and returns the sentences. This
module holds what every box shares: its opening (:func:`framing`), its closing
(:func:`trust`), the ANOVA lead (:func:`anova_lead`), a mean with its 95 %
interval (:func:`interval`) and the cheapest and dearest group (:func:`extremes`).
"""
from __future__ import annotations

from typing import Any


def framing(rows: Any) -> list[str]:
    """What opens every box: what energy means here (when estimated)."""
    from nrg.stats.energy_time import energy_lead

    return energy_lead(rows)


def trust(rows: Any) -> list[str]:
    """What closes every box: missed CI targets and interference, always named, and failed rows."""
    from nrg.book import quality
    from nrg.stats import provenance_notes

    notes = [n for n in provenance_notes(rows) if "estimated" not in n]   # the lead already says it
    return quality.disturbance(rows) + notes


def anova_lead(result: Any, what: str, n: int = 1) -> list[str]:
    """The first ``n`` ANOVA sentences, plus why the shares do not add up and where the robust test decided."""
    from nrg.book import findings

    said = list(findings.anova_findings(result, response_label=what))
    notes = [s for s in said[n:] if "not 100 %" in s or "the verdicts above follow the robust test" in s]
    return said[:n] + notes


def interval(values: Any) -> tuple[float, float, float]:
    """Mean and 95 % t interval of ``values`` (NaN bounds from fewer than two values)."""
    from nrg.book.claim_measures import t_interval

    mean, low, high = t_interval(values)
    return mean, (low if low is not None else float("nan")), (high if high is not None else float("nan"))


def extremes(gen: Any, by: list[str], measure: str = "energy_per_token_j") -> list[str]:
    """The cheapest and the dearest group of ``by`` by mean ``measure``, when their intervals separate."""
    from nrg.book.findings import num
    from nrg.book.statement import Finding, say, separated
    from nrg.stats import label, unit

    groups = {k if isinstance(k, tuple) else (k,): interval(part[measure])
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


def collect(chapter: str, *args: Any, **kwargs: Any) -> list[str]:
    """The key findings of ``chapter`` from its data (see its ``found.findings`` for what it takes)."""
    from nrg.book.chapters import part
    from nrg.book.statement import say

    findings: list[str] = part(chapter, "found").findings(*args, **kwargs)
    return say(findings)   # no sentence with an empty slot reaches a page


def block(chapter: str, *args: Any, **kwargs: Any) -> Any:
    """The "What this chapter found" box (a MyST admonition) for the top of ``chapter``."""
    from nrg.book.display import findings_block

    return findings_block(collect(chapter, *args, **kwargs))
