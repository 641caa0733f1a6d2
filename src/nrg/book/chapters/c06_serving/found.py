"""Chapter 6's "What this chapter found": the fall with concurrency, the lowest level, the ANOVA, the method.

The sentences are :func:`nrg.book.chapters.c06_serving.findings.found`'s (the
chapter's findings module computes them from the steady-state windows); this
is the chapter's entry for :func:`nrg.book.found.block`, like every chapter's.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def findings(df: pd.DataFrame, params: Any) -> list[str]:
    """The box's sentences for the chapter's rows ``df`` and checked ``params``."""
    from nrg.book.chapters.c06_serving.findings import found

    return found(df, params)
