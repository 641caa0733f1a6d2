"""Shared by the sweep chapters: model entries, repeat policy, run-and-select.

A chapter may run several sweep configs into one run folder (e.g. one per
task, each with the task's own lengths).  The folder also keeps cells of
earlier parameter choices -- they are what makes a rerun cheap -- so the rows
a chapter analyses are selected by the cell ids of *its current* configs.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.book.common import as_int, as_list, as_mapping
from nrg.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd


def model_entries(models: Any, weights: str, layers: int | None) -> list[dict[str, Any]]:
    """``models`` as sweep entries; plain names take the chapter's ``weights`` and ``layers``."""
    entries = []
    for m in as_list("models", models):
        if isinstance(m, str):
            entries.append({"name": m, "weights": weights, "layers": layers})
        elif isinstance(m, Mapping) and "name" in m:
            entries.append({"weights": weights, "layers": layers, **dict(m)})
        else:
            raise ParameterError(f"models: {m!r} is not valid; give a model name or "
                                 "{name: ..., weights: real|random|auto, layers: N}")
    return entries


def repeat_policy(repeats: Any) -> Any:
    """An int (fixed count) or a mapping {min, max, ci_rel} (adaptive); strings read strictly."""
    if isinstance(repeats, str):
        text = repeats.strip()
        repeats = as_mapping("repeats", text) if text.startswith("{") else as_int("repeats", text)
    return repeats


def check_configs(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Check every config as the runner will (no file written); return all cell ids."""
    from nrg.sweep import check as sweep_check
    from nrg.sweep.config import parse_config

    ids: list[str] = []
    for config in configs:
        ids += [c.cell_id for c in sweep_check.check(parse_config(config))]
    return ids


def measure(configs: Sequence[Mapping[str, Any]], run_dir: Path, progress: bool = True) -> pd.DataFrame:
    """Run every config into ``run_dir`` (finished cells are reused); rows of these configs only."""
    from nrg.sweep.run import run_sweep
    from nrg.sweep.runfolder import store

    if not configs:
        raise ParameterError("no sweep configs to run")
    ids = check_configs(configs)
    for config in configs:
        run_sweep(dict(config), run_dir, progress=progress)
    return store.load(run_dir, cell_ids=ids)


def load_reference(reference: Mapping[str, Path]) -> dict[str, Any]:
    """Committed GPU runs by GPU name, loaded as DataFrames (``model`` labelled as in :mod:`nrg.book.labels`)."""
    from nrg.book.labels import with_model_labels
    from nrg.sweep.runfolder import store

    return {gpu: with_model_labels(store.load(path)) for gpu, path in reference.items()}
