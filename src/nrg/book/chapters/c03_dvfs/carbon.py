"""Chapter 3's carbon and cost table: per 1,000 generated tokens per model and clock or power setting.

One block per analysed run (the live run and each committed GPU run, by its
label); the conversion and the page's form are :mod:`nrg.book.carbon`'s.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nrg.book.carbon import DEFAULT_PUE, DEFAULT_REGION, conversion, convert, inference_table

if TYPE_CHECKING:
    import pandas as pd


def dvfs_table(analyses: Mapping[str, Mapping[str, Any]], region: str = DEFAULT_REGION,
               price_per_kwh: float | None = None, pue: float = DEFAULT_PUE) -> pd.DataFrame:
    """Per 1,000 generated tokens per model and setting, for every analysed run (label)."""
    import pandas as pd

    conversion(region, price_per_kwh, pue)        # checked even when there is no data
    frames = []
    for label, result in analyses.items():
        if "rows" not in result:
            continue
        axis = result["axis"]
        rows = result["rows"].assign(data=label, setting=lambda d, a=axis: [
            "default" if pd.isna(v) else f"{v:g} {'MHz' if a == 'gpu_clock_mhz' else 'W'}" for v in d[a]])
        frames.append(inference_table(rows, ("data", "model", "setting"), region, price_per_kwh, pue))
    if not frames:
        return convert(pd.DataFrame(columns=["data", "model", "setting", "per", "energy_j", "windows",
                                             "energy_method"]), conversion(region, price_per_kwh, pue))
    return pd.concat(frames, ignore_index=True)
