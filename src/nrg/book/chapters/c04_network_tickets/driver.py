"""Driver of chapter 4: fault tickets -- fine-tuning and inference of every quantization x pruning.

Two tasks on network fault tickets, as in the Energy-Aware LLMs paper: root
cause (a classifier, all-MiniLM-L6-v2 by default) and response (a generator,
SmolLM2-135M-Instruct). Each task has its own quantization x pruning grid
(``quant`` / ``prune`` and ``response_quant`` / ``response_prune``), because on
a CPU one response cell costs as much as several root-cause cells.

The chapter is a sweep: its :class:`Params` turn the parameters into one sweep
config per task (``workload: finetune``, :mod:`nrg.tickets.workload`) and
:func:`measure` runs them with :func:`nrg.sweep.run.run_sweep` -- each cell in
its own process, resumable, failures as rows -- so ``nrg sweep`` reproduces the
chapter without Jupyter (``notebooks/params/sweeps/04_network_tickets_*.yaml``
are these configs for the default parameters). The defaults of the ticket and
training parameters are those of :data:`nrg.tickets.options.DEFAULTS`.

Parameters are checked here before any work; the tickets are the synthetic
ones of :mod:`nrg.tickets.generator` unless ``tickets_path`` names a CSV/JSONL file of
your own (its columns are named by ``text_column``, ``label_column``,
``response_column``). The analysis (tables, ANOVA, ranking, Pareto front) is
in :mod:`nrg.book.chapters.c04_network_tickets.analysis`.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nrg.book.chapters.c04_network_tickets.params import CHAPTER, METRICS, Params

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CHAPTER", "METRICS", "Params", "Timer", "class_counts", "load_reference", "measure", "running_time",
           "sample_tickets", "tickets", "tickets_source", "torch_threads"]


# ------------------------------------------------------------------ the tickets


def tickets(params: Params) -> list[Any]:
    """The tickets the chapter trains on: the user's, or the synthetic ones of the parameters."""
    from nrg.tickets.data import load_tickets
    from nrg.tickets.options import FinetuneOptions

    return load_tickets(FinetuneOptions.from_dict(params.options), params.seed)


def tickets_source(params: Params) -> str:
    """Where the tickets come from, in a sentence."""
    options = params.options
    if options["tickets_path"]:
        return f"Tickets from `{options['tickets_path']}`."
    return f"{params.n_tickets} synthetic tickets, seed {params.seed}, noise {params.noise}."


def sample_tickets(params: Params, n: int = 3) -> pd.DataFrame:
    """One ticket of each of the first ``n`` root causes: text, label and reference response."""
    from nrg.tickets.generator import to_frame

    frame = to_frame(tickets(params))
    picked = frame.drop_duplicates("label").head(n)
    return picked[["ticket_id", "label", "text", "response"]].reset_index(drop=True)


def class_counts(params: Params) -> pd.DataFrame:
    """Tickets per root cause, and how many carry each kind of noise (synthetic tickets only)."""
    import pandas as pd

    from nrg.tickets.generator import to_frame

    frame = to_frame(tickets(params))
    counts = frame.groupby("label").size().rename("tickets").to_frame()
    if "noise" in frame.columns:
        noisy = frame["noise"].astype(str).str.len() > 0
        counts["with noise"] = frame[noisy].groupby("label").size()
    return counts.fillna(0).astype(int).reset_index() if len(counts) else pd.DataFrame()


# ------------------------------------------------------------------ measuring


@dataclass
class Timer:
    """Wall and CPU time of this chapter (this process and its children)."""

    wall_start: float
    cpu_start: float

    @classmethod
    def start(cls) -> Timer:
        """A timer started now."""
        return cls(time.perf_counter(), _cpu_s())

    def elapsed(self) -> dict[str, float]:
        """Seconds since :meth:`start`: ``wall_s`` and ``cpu_s``."""
        return {"wall_s": time.perf_counter() - self.wall_start, "cpu_s": _cpu_s() - self.cpu_start}


def _cpu_s() -> float:
    import psutil

    times = psutil.Process().cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def running_time(timer: Timer, df: Any, params: Params) -> str:
    """The chapter's wall and CPU time and number of cells, in a sentence."""
    spent = timer.elapsed()
    return (f"This chapter ran in {spent['wall_s']:.0f} s of wall time and used {spent['cpu_s']:.0f} s of CPU "
            f"time (this process and its children), {df['cell_id'].nunique()} cells; cells already stored in "
            f"`{params.run_dir.name if params.run_dir else ''}/` are reused, not re-measured.")


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """``threads`` torch CPU threads here and in cell processes (``OMP_NUM_THREADS``); None: as is."""
    if threads is None:
        yield
        return
    import torch

    from nrg.book.paths import environment

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with environment("OMP_NUM_THREADS", str(threads)):
            yield
    finally:
        torch.set_num_threads(before)


def measure(params: Params, progress: bool = True) -> pd.DataFrame:
    """Fine-tune and evaluate every cell of every task (stored cells are reused, none checked again); their rows.

    ``model`` is labelled with what differs from the published model (:mod:`nrg.book.labels`:
    layers, quantization, pruning) and ``params`` gives its parameter count; the
    published name stays in ``model_name``.
    """
    from nrg.book import sweeps
    from nrg.book.labels import with_model_labels

    assert params.run_dir is not None   # resolved when the parameters were built
    with torch_threads(params.threads):
        return with_model_labels(sweeps.measure_checked(params.checked, params.run_dir, progress=progress))


def load_reference(params: Params) -> dict[str, Any]:
    """Committed GPU runs of this chapter by GPU name (empty when there are none)."""
    from nrg.book.sweeps import load_reference as load

    return load(params.reference)
