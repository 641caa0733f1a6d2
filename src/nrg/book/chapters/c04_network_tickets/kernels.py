"""Chapter 4's pruning kernels: what ran each pruned model, and whether its time differed beyond the spread.

A pruned model saves time only when the kernel skips the zeros
(``sparse-2:4``) or the matrices shrink (structured pruning); a ``dense``
kernel multiplies the zeros like any other weight. Re-exported by
:mod:`nrg.book.chapters.c04_network_tickets.analysis`, where the notebook calls them.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

KEYS = ("quant", "prune")


def kernels(df: pd.DataFrame) -> pd.DataFrame:
    """What ran each pruned model, and its inference time relative to the unpruned one.

    A pruned model saves time only when the kernel skips the zeros
    (``sparse-2:4``) or the matrices shrink (structured pruning); a
    ``dense`` kernel multiplies the zeros like any other weight.
    """
    from nrg.stats import ok_rows

    inference = ok_rows(df[df["phase"] == "inference"])
    if inference.empty:
        return pd.DataFrame(columns=["task", *KEYS, "kernel", "sparsity", "time_s", "time_vs_unpruned"])
    table = inference.groupby(["task", *KEYS], sort=False).agg(
        kernel=("kernel", "first"), prune_method=("prune_method", "first"), sparsity=("sparsity", "mean"),
        time_s=("time_s", "mean"), time_sd_s=("time_s", "std"), energy_j=("energy_j", "mean"),
        note=("prune_note", "first")).reset_index()
    base = table[table["prune"] == "none"][["task", "quant", "time_s", "time_sd_s", "energy_j"]].rename(
        columns={"time_s": "time_s_unpruned", "time_sd_s": "time_sd_s_unpruned", "energy_j": "energy_j_unpruned"})
    joined = table.merge(base, on=["task", "quant"], how="left")
    table["time_s_unpruned"] = joined["time_s_unpruned"].to_numpy()
    table["time_sd_s_unpruned"] = joined["time_sd_s_unpruned"].to_numpy()
    table["time_vs_unpruned"] = (joined["time_s"] / joined["time_s_unpruned"]).to_numpy()
    table["energy_vs_unpruned"] = (joined["energy_j"] / joined["energy_j_unpruned"]).to_numpy()
    table["saves_compute"] = table.apply(_saves_compute, axis=1)
    from nrg.book.labels import model_columns
    from nrg.stats._data import estimated

    out = model_columns(table[table["prune"] != "none"].reset_index(drop=True), inference, ("task", *KEYS))
    out.attrs["energy_estimated"] = estimated(inference)   # the page's headers say "estimated"
    return out


def _saves_compute(row: pd.Series) -> str:
    if row["kernel"] == "sparse-2:4":
        return "yes: sparse 2:4 kernels skip the zeros"
    if row["prune_method"] == "structured":
        return "yes: smaller matrices (neurons removed)"
    return "no: dense kernels multiply the zeros"


def _within_spread(r: Any) -> bool:
    """Whether a pruned model's mean time is within twice the combined sd of its and the unpruned one's."""
    import math

    from nrg.book.statement import within_spread

    spread = 2 * math.sqrt(r.time_sd_s ** 2 + r.time_sd_s_unpruned ** 2)
    return within_spread(r.time_s - r.time_s_unpruned, spread).passed


def _time_text(r: Any) -> str:
    def sd(x: float) -> str:
        return f" (sd {x:.2g})" if pd.notna(x) else " (one window)"

    return (f"{r.quant} / {r.prune}: {r.time_s:.3g} s{sd(r.time_sd_s)} vs {r.time_s_unpruned:.3g} s"
            f"{sd(r.time_sd_s_unpruned)} unpruned")


def kernel_sentence(table: pd.DataFrame, device: str) -> str:
    """Where pruning saved no compute because dense kernels ran, and whether the time differed anyway.

    A difference is called measurement spread only when it lies within twice
    the combined standard deviation of the two means' windows; a larger one is
    named as such (it does not come from skipped zeros).
    """
    if table.empty:
        return "No pruned model was evaluated."
    dense = table[table["saves_compute"].str.startswith("no")]
    parts = []
    if not dense.empty:
        names = ", ".join(sorted({f"{r.quant} / {r.prune}" for r in dense.itertuples()}))
        parts.append(f"On `{device}`, {len(dense)} pruned combination(s) ran dense kernels, so their zeros were "
                     f"multiplied like any weight and pruning saved no compute: {names}.")
        timed = [r for r in dense.itertuples() if pd.notna(r.time_vs_unpruned)]
        spread = [r for r in timed if pd.notna(r.time_sd_s) and pd.notna(r.time_sd_s_unpruned) and _within_spread(r)]
        beyond = [r for r in timed if r not in spread]
        if spread:
            parts.append("Within the measurement spread (difference under twice the combined sd of the windows): "
                         + "; ".join(_time_text(r) for r in spread) + ".")
        if beyond:
            parts.append("Beyond the measurement spread, or without repeats to tell: "
                         + "; ".join(f"{_time_text(r)} ({r.time_vs_unpruned:.2f}×)" for r in beyond)
                         + ". With dense kernels this does not come from skipped zeros: look at the number of "
                           "generated tokens, the pruned model's numerics, or load on the machine.")
    sparse = table[~table["saves_compute"].str.startswith("no")]
    for r in sparse.itertuples():
        ratio = f"{r.time_vs_unpruned:.2f}×" if pd.notna(r.time_vs_unpruned) else "n/a"
        parts.append(f"{r.quant} / {r.prune} ({r.saves_compute.split(': ')[1]}) took {ratio} the unpruned time.")
    return " ".join(parts)
