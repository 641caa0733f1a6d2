"""Turn a result table into a design an ANOVA can fit, saying what was changed.

Kept apart from the fitting so the rules (which rows, which factors, whether
an interaction is estimable) are explicit and testable on their own.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nrg.errors import ParameterError
from nrg.stats._data import quote
from nrg.stats.blocking import BLOCK, block_estimable

NONE_LEVEL = "none"


@dataclass(frozen=True, eq=False)
class Design:
    """Rows to fit (response in ``_y``), the factors kept, and why others went."""

    data: pd.DataFrame
    factors: tuple[str, ...]
    interaction: bool
    n_obs: int
    notes: tuple[str, ...]
    balanced: bool = True
    blocked: bool = False   # the frame's ``_block`` column enters the model (nrg.stats.blocking)


def _as_factor(series: pd.Series) -> tuple[pd.Categorical, int]:
    """A categorical with levels in natural order; missing values become "none".

    Unquantized or unpruned rows often carry no value in ``quant`` /
    ``prune_method``; dropping them would drop the baseline, so they form a level.
    """
    missing = int(series.isna().sum())
    values = series.dropna().unique()
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric:
        levels = sorted(values)
        if missing:
            text = [_level_text(v) for v in levels]
            mapped = series.map(lambda v: NONE_LEVEL if pd.isna(v) else _level_text(v))
            return pd.Categorical(mapped, categories=[NONE_LEVEL, *text]), missing
        return pd.Categorical(series, categories=levels), 0
    levels = sorted(str(v) for v in values)
    mapped = series.map(lambda v: NONE_LEVEL if pd.isna(v) else str(v))
    categories = levels if NONE_LEVEL in levels or not missing else [NONE_LEVEL, *levels]
    return pd.Categorical(mapped, categories=categories), missing


def _level_text(value: object) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def prepare_design(data: pd.DataFrame, response: str, factors: Sequence[str], interaction: bool,
                   block: pd.Series | None = None) -> Design:
    """Select and clean the rows; drop one-level factors; decide on the interaction and the block.

    ``block`` (aligned with ``data``; see :func:`nrg.stats.blocking.block_ids`)
    enters as an additive factor when it has two or more levels and is not
    nested in a factor.
    """
    if "_y" in factors or BLOCK in factors:
        raise ParameterError(f"factors: '_y' and '{BLOCK}' are reserved; rename that column")
    notes: list[str] = []
    y = pd.to_numeric(data[response], errors="coerce")
    keep = y.notna() & np.isfinite(y.astype(float))
    if (~keep).sum():
        notes.append(f"{int((~keep).sum())} row(s) without a value of {response} were left out.")
    frame = pd.DataFrame({"_y": y[keep].astype(float)}, index=data.index[keep])
    kept: list[str] = []
    for factor in factors:
        column, missing = _as_factor(data.loc[keep, factor])
        frame[factor] = column
        if missing:
            notes.append(f"{missing} row(s) with no value of {factor} form the level '{NONE_LEVEL}'.")
        n_levels = frame[factor].nunique()
        if n_levels < 2:
            level = frame[factor].iloc[0] if len(frame) else "(no rows)"
            notes.append(f"{factor} has a single level ({level}) and was dropped from the model.")
        else:
            kept.append(factor)
    if block is not None:
        frame[BLOCK] = block.astype(str).to_numpy()[keep.to_numpy()]  # positions: the index may repeat
    frame = frame.reset_index(drop=True)
    use_interaction, balanced = _interaction_possible(frame, kept, interaction, notes)
    blocked = False
    if block is not None and kept:
        joiner = " * " if use_interaction else " + "
        blocked = block_estimable(frame, joiner.join(f"C({quote(f)})" for f in kept), notes)
    return Design(frame, tuple(kept), use_interaction, len(frame), tuple(notes), balanced, blocked)


def _interaction_possible(frame: pd.DataFrame, factors: list[str], wanted: bool,
                          notes: list[str]) -> tuple[bool, bool]:
    """Interaction needs every combination of levels measured and some replication."""
    if not factors:
        return False, True
    sizes = frame.groupby(factors, observed=True).size()
    balanced = sizes.nunique() == 1
    if len(factors) < 2 or not wanted:
        return False, balanced
    possible = int(np.prod([frame[f].nunique() for f in factors]))
    if len(sizes) < possible:
        notes.append(f"Only {len(sizes)} of {possible} combinations of {', '.join(factors)} were measured: "
                     "the interaction cannot be estimated, so main effects only were fitted.")
        return False, False
    if int(sizes.max()) < 2:
        notes.append("No replication (one observation per combination of levels): no interaction term is "
                     "possible, so main effects only were fitted.")
        return False, balanced
    return True, balanced
