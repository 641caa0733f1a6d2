"""Chapter 6's comparisons: chapter 5's ``generate()`` batches and the published GPU curves beside the engine.

Absolute joules do not compare across these sources -- this machine's energy
is estimated from CPU time, ML.ENERGY's is GPU-only from NVML counters, on
models 60 to 100 times larger -- so the comparison is of *shape*: each curve
divided by its own value at its smallest level.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nrg.book.chapters.c06_serving.driver import FACTOR, PUBLISHED, PUBLISHED_MODELS

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from nrg.book.chapters.c06_serving.params import Params

SOURCE = "ML.ENERGY Leaderboard v3.0 (vLLM 0.11.1, GPU energy only, steady state; Chung et al., arXiv 2505.06371)"


def batch_beside(params: Params, models: Sequence[str]) -> pd.DataFrame:
    """Chapter 5's generate() rows of ``models`` when its run folder holds them (else empty)."""
    import pandas as pd

    from nrg.sweep.runfolder import store

    folder = params.batch_run_dir
    if folder is None or not (folder / "cells").is_dir():
        return pd.DataFrame()
    rows = store.load(folder)
    if rows.empty or "phase" not in rows:
        return pd.DataFrame()
    keep = (rows["phase"] == "generate") & (rows["status"] == "ok") & rows["model"].isin(list(models))
    return rows[keep].copy()


def published(path: str | Path = PUBLISHED, models: Sequence[str] = PUBLISHED_MODELS) -> pd.DataFrame:
    """ML.ENERGY v3's one-GPU configurations of ``models`` (figures as published)."""
    import pandas as pd

    table = pd.read_csv(path)
    keep = (table["num_gpus"] == 1) & table["model_id"].isin(list(models))
    return table[keep].sort_values(["model_id", "gpu_model", "max_num_seqs"]).reset_index(drop=True)


def _normalized(part: pd.DataFrame, level: str, energy: str, label: str) -> pd.DataFrame:
    import pandas as pd

    part = part.sort_values(level)
    first = float(part[energy].iloc[0])
    return pd.DataFrame({"curve": label, "level": part[level].astype(int).to_numpy(),
                         "energy_per_token_j": part[energy].to_numpy(),
                         "relative": (part[energy] / first).to_numpy()})


def shape_table(means: pd.DataFrame | None, batch: pd.DataFrame, pub: pd.DataFrame, device_label: str) -> pd.DataFrame:
    """Every curve as energy per token relative to its own smallest level (long form)."""
    import pandas as pd

    from nrg.stats._data import estimated

    frames = []
    served = ", estimated" if means is not None and means.attrs.get("energy_estimated") else ""
    for model, part in (means.groupby("model", observed=True) if means is not None else []):
        frames.append(_normalized(part, FACTOR, "energy_per_token_j",
                                  f"{model}, vLLM, {device_label} (this machine{served})"))
    if not batch.empty:
        batched = ", estimated" if estimated(batch) else ""
        batch_means = batch.groupby(["model", "batch_size"], observed=True)["energy_per_token_j"].mean().reset_index()
        for model, part in batch_means.groupby("model", observed=True):
            frames.append(_normalized(part, "batch_size", "energy_per_token_j",
                                      f"{model}, generate() batches (chapter 5, this machine{batched})"))
    for (model, gpu), part in pub.groupby(["model_id", "gpu_model"]):
        frames.append(_normalized(part, "max_num_seqs", "energy_per_token_j",
                                  f"{model.split('/')[-1]}, vLLM, {gpu} (ML.ENERGY v3)"))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["curve", "level", "energy_per_token_j", "relative"])


def shape_figure(shape: pd.DataFrame) -> Figure:
    """Relative energy per token against the level (concurrency, batch or max_num_seqs), log-log."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.0, 5.0))
    for curve, part in shape.groupby("curve", sort=True):
        style = "--" if "ML.ENERGY" in str(curve) else "-"
        ax.plot(part["level"], part["relative"], style, marker="o", markersize=3, label=str(curve))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("concurrency / batch size / max_num_seqs (log₂)")
    ax.set_ylabel("energy per token ÷ its value at the smallest level")
    ax.set_title("Shape, not joules: each curve relative to its own first point")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig
