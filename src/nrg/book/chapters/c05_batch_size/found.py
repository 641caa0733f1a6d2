"""Chapter 5's "What this chapter found": energy per token and latency from the smallest to the largest batch.

From the generation rows of the batch-size sweep: the change, the fit and the ANOVA.
Its sentences are computed from the measured rows (nothing typed by hand);
:func:`nrg.book.found.block` shows them at the top of the page.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nrg.book.found import anova_lead, framing, trust


def findings(df: Any, params: Mapping[str, Any]) -> list[str]:
    """Chapter 5: energy per token and latency from the smallest to the largest batch, the fit, the ANOVA."""
    from nrg.book.chapters.c05_batch_size import driver as chapter

    gen = chapter.ok_phase(df, "generate")
    out = framing(gen) + list(chapter.batch_findings(gen))
    out += anova_lead(chapter.anova(gen, params["alpha"]), "energy per token")
    return out + trust(df)
