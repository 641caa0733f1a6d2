"""Chapter 4's carbon and cost table: per fine-tuning run and per 1,000 generated tokens or tickets classified.

The conversion (grid intensity, PUE, price) and the page's form are
:mod:`nrg.book.carbon`'s; what a unit of work is here (a fine-tuning run, a
ticket classified) is the chapter's.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nrg.book.carbon import DEFAULT_PUE, DEFAULT_REGION, conversion, convert, per_unit
from nrg.stats._data import ok_rows

if TYPE_CHECKING:
    import pandas as pd


def tickets_table(rows: Any, by: Sequence[str] = ("task", "quant", "prune"), region: str = DEFAULT_REGION,
                  price_per_kwh: float | None = None, pue: float = DEFAULT_PUE) -> pd.DataFrame:
    """gCO₂e and USD per fine-tuning run and per 1,000 generated tokens (or tickets).

    ``finetune`` rows: per run (each row is one fine-tuning window). ``inference``
    rows: per 1,000 generated tokens where tokens were generated (responses), else
    per 1,000 tickets classified (root cause: a classifier generates no tokens).
    """
    import pandas as pd

    conv = conversion(region, price_per_kwh, pue)
    ok = ok_rows(rows)
    ok = ok[ok["energy_j"].notna()]
    frames = []
    tuned = ok[ok["phase"] == "finetune"].assign(_runs=1.0)
    if not tuned.empty:
        frames.append(per_unit(tuned, by, "_runs", "fine-tuning run", 1.0))
    inferred = ok[ok["phase"] == "inference"]
    generated = inferred["generated_tokens"] if "generated_tokens" in inferred.columns else None
    if generated is not None and (generated > 0).any():
        frames.append(per_unit(inferred[generated > 0], by, "generated_tokens", "1,000 generated tokens", 1000.0))
        inferred = inferred[~(generated > 0)]
    if not inferred.empty and "n_eval" in inferred.columns:
        frames.append(per_unit(inferred, by, "n_eval", "1,000 tickets classified", 1000.0))
    if not frames:
        return convert(pd.DataFrame(columns=[*by, "per", "energy_j", "windows", "energy_method"]), conv)
    return convert(pd.concat(frames, ignore_index=True), conv)
