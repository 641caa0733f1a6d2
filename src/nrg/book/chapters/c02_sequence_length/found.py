"""Chapter 2's "What this chapter found": the cost per input and output token, the ANOVA, the decode share.

From the generation rows of the length sweeps and their prefill / decode split.
Its sentences are computed from the measured rows (nothing typed by hand);
:func:`nrg.book.found.block` shows them at the top of the page.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nrg.book.found import anova_lead, framing, trust


def findings(df: Any, params: Mapping[str, Any]) -> list[str]:
    """Chapter 2: the fitted cost per input and output token, the ANOVA and the decode share."""
    from nrg import stats
    from nrg.book import findings
    from nrg.book.chapters.c02_sequence_length import driver as chapter

    gen = chapter.ok_phase(df, "generate")
    out = framing(gen)
    out += list(findings.length_findings(stats.per_token_costs(gen, response="energy_j", by=["model"])))
    joint = chapter.joint_grid(gen, dict(params))
    factors = ["input_tokens", "output_tokens"] + (["model"] if joint["model"].nunique() > 1 else [])
    out += anova_lead(stats.anova(joint, "energy_j", factors, alpha=params["alpha"]), "energy per generation")
    phases = df[df["phase"].isin(["prefill", "decode"]) & (df["status"] == "ok")]
    out += list(findings.phase_share_findings(stats.phase_share(phases, by=["model", "input_tokens", "output_tokens"])))
    return out + trust(df)
