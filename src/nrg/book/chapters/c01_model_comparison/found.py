"""Chapter 1's "What this chapter found": the spread of energy per token and what the ANOVA attributes it to.

From the generation rows of the models x tasks sweep.
Its sentences are computed from the measured rows (nothing typed by hand);
:func:`nrg.book.found.block` shows them at the top of the page.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nrg.book.found import anova_lead, extremes, framing, trust


def findings(df: Any, params: Mapping[str, Any]) -> list[str]:
    """Chapter 1: the spread of energy per token and what the ANOVA attributes it to."""
    from nrg import stats
    from nrg.book.chapters.c01_model_comparison.driver import generate_rows

    gen = generate_rows(df)
    out = framing(gen) + extremes(gen, ["model", "task"])
    result = stats.anova(gen, "energy_per_token_j", ["model", "task"], alpha=params["alpha"])
    out += anova_lead(result, "energy per token", 2)
    return out + trust(df)
