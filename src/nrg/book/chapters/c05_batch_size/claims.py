"""The claim chapter 5 checks: a larger batch lowers the energy per generated token (ML.ENERGY).

The seed papers hold the batch size fixed; the serving benchmark whose
published curves the book shows reports that batching is the largest lever on
energy per token. Chapter 5 measures the same quantity without an engine: the
energy per generated token of a whole generation at the largest batch size
relative to the smallest, per model. Judged by :mod:`nrg.book.claims`; chapter
6 checks the same claim under a serving engine's load.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nrg.book.claim_measures import Measured, largest_vs_smallest
from nrg.book.claims import CHUNG, CHUNG_BATCHING, Claim, Rule

if TYPE_CHECKING:
    import pandas as pd


def batch_change(rows: pd.DataFrame, params: Mapping[str, Any]) -> Measured:
    """Energy per token of a generation at the largest batch size relative to the smallest, minus one (− = less).

    Per model the ratio of the two sizes' mean ``energy_per_token_j`` over the
    repeats of their ``generate`` rows, minus one; over several models the mean
    and its t interval, for one model the delta-method interval of the ratio.
    """
    return largest_vs_smallest(
        rows, "batch_size", "generate", "batch", "repeats",
        "the rows have no generations by batch size (phase, batch_size, energy per token)",
        "no model ran at two batch sizes: nothing to compare")


CLAIMS: tuple[Claim, ...] = (
    Claim("05_batch_size", "batching_saves", "A larger batch lowers the energy per generated token "
          "(a generation's energy per token at the largest batch size vs the smallest; negative = less)",
          CHUNG_BATCHING, CHUNG, batch_change, Rule("within", -math.inf, 0.0)),
)
