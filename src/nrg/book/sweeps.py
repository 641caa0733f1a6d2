"""Shared by the sweep chapters: models as specs, repeat policy, check once, run-and-select.

A chapter may run several sweep configs into one run folder (e.g. one per
task, each with the task's own lengths).  The folder also keeps cells of
earlier parameter choices -- they are what makes a rerun cheap -- so the rows
a chapter analyses are selected by the cell ids of *its current* configs.

A chapter's configs are parsed and checked against the machine once
(:func:`check_configs`, giving :class:`Checked`); :func:`measure_checked` runs
them without checking again.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.book.common import as_int, as_list, as_mapping
from nrg.errors import ParameterError, check_choice
from nrg.models.spec import WEIGHTS, ModelSpec

if TYPE_CHECKING:
    import pandas as pd

    from nrg.sweep.config import Cell, SweepConfig


def model_specs(models: Any, weights: str, layers: int | None) -> tuple[ModelSpec, ...]:
    """``models`` (names, mappings, or a YAML string of them) as specs; plain names take ``weights`` and ``layers``.

    The one place a chapter's ``models`` parameter is parsed: a mapping takes
    the keys of a sweep config's model entry (:func:`nrg.sweep.config.parse_config`
    reads these specs as they are).
    """
    from nrg.sweep.config import parse_model

    check_choice("weights", weights, WEIGHTS)
    specs = []
    for m in as_list("models", models):
        if isinstance(m, ModelSpec):
            specs.append(m)
        elif isinstance(m, str):
            specs.append(parse_model({"name": m, "weights": weights, "layers": layers}))
        elif isinstance(m, Mapping) and "name" in m:
            specs.append(parse_model({"weights": weights, "layers": layers, **dict(m)}))
        else:
            raise ParameterError(f"models: {m!r} is not valid; give a model name or "
                                 "{name: ..., weights: real|random|auto, layers: N}")
    return tuple(specs)


def repeat_policy(repeats: Any) -> Any:
    """An int (fixed count) or a mapping {min, max, ci_rel} (adaptive); strings read strictly."""
    if isinstance(repeats, str):
        text = repeats.strip()
        repeats = as_mapping("repeats", text) if text.startswith("{") else as_int("repeats", text)
    return repeats


@dataclass(frozen=True)
class Checked:
    """A parsed sweep config and its cells, checked against this machine."""

    config: SweepConfig
    cells: tuple[Cell, ...]


def parse_configs(configs: Sequence[SweepConfig | Mapping[str, Any]]) -> tuple[SweepConfig, ...]:
    """Keys, types and ranges of every config (no machine, no file)."""
    from nrg.sweep.config import parse_config

    return tuple(parse_config(c) for c in configs)


def check_configs(configs: Sequence[SweepConfig | Mapping[str, Any]]) -> tuple[Checked, ...]:
    """Check every config as the runner will (no file written): its cells, ready to run."""
    from nrg.sweep import check as sweep_check

    return tuple(Checked(cfg, tuple(sweep_check.check(cfg))) for cfg in parse_configs(configs))


def unchecked(configs: Sequence[SweepConfig]) -> tuple[Checked, ...]:
    """Configs already checked against this machine by the caller: their cells, not checked again."""
    return tuple(Checked(cfg, tuple(cfg.cells())) for cfg in configs)


def measure_checked(checked: Sequence[Checked], run_dir: Path, progress: bool = True) -> pd.DataFrame:
    """Run every checked config into ``run_dir`` (finished cells are reused); rows of these cells only."""
    from nrg.sweep.run import run_sweep
    from nrg.sweep.runfolder import store

    if not checked:
        raise ParameterError("no sweep configs to run")
    for item in checked:
        run_sweep(item.config, run_dir, progress=progress, checked_cells=item.cells)
    return store.load(run_dir, cell_ids=[c.cell_id for item in checked for c in item.cells])


def measure(configs: Sequence[SweepConfig | Mapping[str, Any]], run_dir: Path, progress: bool = True) -> pd.DataFrame:
    """Check every config, then run them all into ``run_dir``: rows of these configs only."""
    return measure_checked(check_configs(configs), run_dir, progress)


def load_reference(reference: Mapping[str, Path]) -> dict[str, Any]:
    """Committed GPU runs by GPU name, loaded as DataFrames (``model`` labelled as in :mod:`nrg.book.labels`)."""
    from nrg.book.labels import with_model_labels
    from nrg.sweep.runfolder import store

    return {gpu: with_model_labels(store.load(path)) for gpu, path in reference.items()}
