"""Chapter 4's "What this chapter found": the best-ranked combination of each task and phase.

From the fine-tuning and inference rows, ranked by R = w·φ + (1−w)·ρ, when the data carry a best one.
Its sentences are computed from the measured rows (nothing typed by hand);
:func:`nrg.book.found.block` shows them at the top of the page.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nrg.book.found import framing, trust


def findings(df: Any, params: Mapping[str, Any]) -> list[str]:
    """Chapter 4: the best-ranked combination of each task and phase (when the data carry one)."""
    from nrg.book import findings
    from nrg.book.chapters.c04_network_tickets import analysis

    out = framing(df[df["phase"] == "inference"]) if "phase" in df.columns else []
    for task in params["tasks"]:
        metric = params["metrics"][task]
        chance = analysis.chance_quality(params, task, metric)
        for phase in analysis.PHASES:
            rows = df[(df["task"] == task) & (df["phase"] == phase) & (df["status"] == "ok")]
            if rows.empty:
                continue
            ranked = analysis.ranking(df, task, phase, metric, params["w"])
            out += [f"*{task}, {phase}:* {s}" for s in list(findings.ranking_findings(ranked, chance=chance))[:1]]
    return out + trust(df)
