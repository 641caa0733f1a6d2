"""Driver of chapter 1: models x tasks -- energy, latency, throughput, power, memory, quality.

The paper's tasks differ above all in their shapes: question answering reads a
long context and writes a short answer, summarisation reads a long document
and writes a medium summary, generation reads a short prompt and writes a lot.
Each task therefore runs at its own (input, output) lengths (``task_lengths``),
with the task's real text for real-weight models (scored for quality) and
synthetic token ids of the same lengths for random-weight models.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from nrg.book.chapters.c01_model_comparison.params import CHAPTER, TASKS, Params

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CHAPTER", "MEASURES", "TASKS", "Params", "failures", "generate_rows", "measure", "quality_table"]

MEASURES: tuple[str, ...] = ("energy_per_token_j", "ttft_s", "tpot_s", "tokens_per_s",
                             "avg_power_w", "peak_mem_bytes")


def measure(params: Params, progress: bool = True) -> pd.DataFrame:
    """Run (or reuse) every cell of the chapter; the rows of exactly these cells.

    The cells were checked when ``params`` was built: they are not checked again.
    ``model`` is labelled with what differs from the published model (:mod:`nrg.book.labels`);
    the published name stays in ``model_name``.
    """
    return params.measure(progress)


def generate_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Successful rows of the full generation phase: one per repeat per cell."""
    return df[(df["phase"] == "generate") & (df["status"] == "ok")].copy()


def quality_table(df: pd.DataFrame) -> pd.DataFrame:
    """Task scores of real-weight models (the ``inference`` rows), one row per model x task."""
    import pandas as pd

    rows = df[(df["phase"] == "inference") & (df["status"] == "ok")]
    metrics = [c for c in ("exact_match", "f1", "rouge_1", "rouge_2", "rouge_l") if c in rows.columns]
    if rows.empty or not metrics:
        return pd.DataFrame(columns=["model", "task", "dataset", "items", *metrics])
    out = rows[["model", "task", "dataset", "tokens", *metrics]].rename(columns={"tokens": "generated_tokens"})
    return out.reset_index(drop=True)


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """Cells that failed, with their error: shown, never dropped silently."""
    cols = [c for c in ("model", "task", "input_tokens", "output_tokens", "status", "error") if c in df.columns]
    return df[df["status"] != "ok"][cols].drop_duplicates().reset_index(drop=True)
