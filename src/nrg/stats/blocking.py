"""The run's blocks as a factor of the ANOVA (a randomized complete block design).

Why: a sweep in ``order: blocked`` measures one repeat of every cell per
block, in a random order per block (:mod:`nrg.sweep.schedule.blocks`). Background load
that drifts between blocks then raises or lowers every cell of a block alike;
taking the block as an additive factor moves that drift out of the error term,
so the tests of model, task, length or clock are both fair (the random order)
and sharper (the smaller error). Rows measured in the old sequential order
also carry ``block`` (the repeat's index) but no ``run_order``: there the
"block" is not a pass over the cells, and it is not used.

A block is a pass of one sweep session, so its identity is ``(run_id, block)``.
When separate sweeps measured different levels of a factor (chapter 1 runs one
sweep per task), the blocks are nested in that factor and cannot be separated
from it: the block is then left out, and the notes say why.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from nrg.errors import ParameterError

#: Column of the design frame holding the block of each row.
BLOCK = "_block"
#: The block's row in an ANOVA table.
BLOCK_SOURCE = "block"


def block_ids(df: pd.DataFrame, block: str | None) -> pd.Series | None:
    """The block of each row of ``df`` as text, or None when no block applies.

    ``block="auto"``: rows of a blocked run (``block`` and ``run_order`` both
    set on every row) give ``"<run_id>:<block>"``; anything else gives None.
    A column name uses that column as it is (every row must have a value).
    """
    if block is None:
        return None
    if block == "auto":
        if not {"block", "run_order"} <= set(df.columns) or df.empty:
            return None
        if df["block"].isna().any() or df["run_order"].isna().any():
            return None
        session = df["run_id"].astype(str) if "run_id" in df.columns else pd.Series("", index=df.index)
        return session + ":" + df["block"].astype("int64").astype(str)
    if not isinstance(block, str) or block not in df.columns:
        raise ParameterError(f"block={block!r} is not valid; give 'auto', None or one of the columns: "
                             f"{', '.join(map(str, df.columns))}")
    if df[block].isna().any():
        raise ParameterError(f"block={block!r}: {int(df[block].isna().sum())} row(s) have no block")
    return df[block].astype(str)


def block_estimable(frame: pd.DataFrame, rhs: str, notes: list[str]) -> bool:
    """Whether ``frame[BLOCK]`` adds its own columns to the model ``rhs`` (not nested in a factor).

    The block's k levels must add k − 1 dimensions to the design; fewer means
    some factor's levels are each confined to their own blocks.
    """
    import patsy

    n_blocks = int(frame[BLOCK].nunique())
    if n_blocks < 2:
        return False
    without = np.linalg.matrix_rank(np.asarray(patsy.dmatrix(rhs, frame)))
    with_block = np.linalg.matrix_rank(np.asarray(patsy.dmatrix(f"{rhs} + C({BLOCK})", frame)))
    if with_block - without == n_blocks - 1:
        notes.append(f"Randomized complete block design: the run measured one repeat of every cell per block "
                     f"(one pass over the cells, in a random order per block); the {n_blocks} blocks enter as an "
                     "additive factor, so load that drifted between blocks is not counted as error or as an "
                     "effect.")
        return True
    notes.append(f"The {n_blocks} blocks of the run are not in the model: each block holds only some levels of a "
                 "factor (separate sweeps measured them, e.g. one sweep per task), so the block cannot be "
                 "separated from that factor.")
    return False
