"""Chapter 3's "What this chapter found": the findings of every clock analysis, live and reference.

From the analyses the chapter ran (its live run and each committed GPU run), under their labels.
Its sentences are computed from the measured rows (nothing typed by hand);
:func:`nrg.book.found.block` shows them at the top of the page.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nrg.book.found import framing, trust


def findings(analyses: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Chapter 3: the findings of every analysis (live and reference), under its label."""
    out = []
    for label, result in analyses.items():
        rows = result.get("rows")
        frame = rows if rows is not None and len(rows) else None
        sentences = framing(frame) if frame is not None else []
        sentences += list(result.get("findings", ())) + list(result.get("anova_findings", ()))[:1]
        sentences += trust(frame) if frame is not None else []
        out += [f"*{label}:* {s}" for s in sentences]
    return out or ["Nothing was measured here and no reference data is committed."]
