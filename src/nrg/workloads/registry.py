"""Workloads: what one cell does with its model, chosen by a config's ``workload`` key.

The runner is the same for every workload -- checks before any work, one
process per cell, ``cell_timeout_s``, failure rows, ``retry_failed``, resume,
provenance, the idle baseline -- and only the measured path of a cell
differs:

* ``generation`` (chapters 1-3, :mod:`nrg.workloads.generation`): prefill, decode
  and generate of a (compressed) model, adaptive repeats, task quality;
* ``finetune`` (chapter 4, :mod:`nrg.tickets.workload`): LoRA fine-tuning and
  inference on fault tickets under the ``quant`` x ``prune`` axes;
* ``serving`` (chapter 6, :mod:`nrg.serving.workload`): a real engine (vLLM)
  behind an OpenAI-compatible API, a request trace per concurrency level.

A workload is named here with the module that implements it, imported only
when a config, a check or a cell needs it: :mod:`nrg.sweep` never imports a
workload's module (a test checks its imports), and :mod:`nrg.tickets` and
:mod:`nrg.serving` plug in without the runner depending on them. A workload
module provides a worker class (named below; built as
``Worker(cell, context, monitor_options)``, it implements
:class:`nrg.workloads.protocol.Worker`: a failure raises, which the runner
turns into the cell's failure row) and may provide these hooks:

* ``TASKS`` -- its task names (a config naming them must select the workload);
* ``UNUSED_KEYS`` -- config keys it does not use, each with what to set instead
  (refused rather than silently ignored; left out of ``SweepConfig.to_dict``);
* ``INTERLEAVE`` -- False when its cells must run whole, one after another
  (serving: each cell holds an engine, its levels are blocked inside it);
* ``parse_options(raw)`` -- its config section (the key named like the
  workload), checked and completed with defaults; JSON-able, part of the id;
* ``task_options(options, task)`` -- the part of the options a cell of
  ``task`` uses: only that part enters the cell's id and its process;
* ``check(cfg)`` -- models, tasks and data against the machine, before any work;
* ``factors(cell)`` -- factor columns replacing the generation grid's;
* ``repeat_policy(cell)`` -- how many repeats the runner asks of a cell
  (default: the sweep's ``repeats``);
* ``precision(cell, frame)`` -- ``repeats_n``, ``ci_rel_halfwidth`` and ``ci_rel_target`` as the workload
  counts them (default: one sample per repeat, for the whole cell).
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError, check_choice

if TYPE_CHECKING:
    import pandas as pd

    from nrg.sweep.config import Cell, Settings, SweepConfig, TaskEntry
    from nrg.sweep.repeats import RepeatPolicy
    from nrg.sweep.schedule.context import SweepContext
    from nrg.workloads.protocol import Worker

GENERATION = "generation"


@dataclass(frozen=True)
class Workload:
    """A workload's name, the module implementing it and its worker class' name."""

    name: str
    module: str
    worker: str
    doc: str


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload(GENERATION, "nrg.workloads.generation", "GenerationWorker",
             "prefill, decode and generate of a (compressed) model; task quality"),
    Workload("finetune", "nrg.tickets.workload", "FinetuneWorker",
             "LoRA fine-tuning and inference on fault tickets (chapter 4)"),
    Workload("serving", "nrg.serving.workload", "ServingWorker",
             "a serving engine under load: energy per token, latency, quality (chapter 6)"),
)}


def _module(name: str) -> ModuleType:
    return importlib.import_module(WORKLOADS[name].module)


def _hook(name: str, attr: str) -> Any:
    """Workload ``name``'s optional ``attr`` (None when absent).

    ``Any``: hooks are found by name and differ in shape (a parser, a
    ``TASKS`` tuple, an ``UNUSED_KEYS`` mapping); each caller knows its own.
    """
    return getattr(_module(name), attr, None)


def parse(raw: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The ``workload`` key of a raw config and its checked options section."""
    name = raw.get("workload", GENERATION)
    check_choice("workload", name, tuple(WORKLOADS))
    for other in WORKLOADS:
        if other != name and other in raw:
            raise ParameterError(f"{other} is only valid with workload: {other} (this config's "
                                 f"workload is {name!r})")
    for key, instead in unused_keys(name).items():
        if key in raw:
            raise ParameterError(f"{key} is not used by workload {name}; set {instead}")
    parse_options = _hook(name, "parse_options")
    return name, (dict(parse_options(raw)) if parse_options is not None else {})


def unused_keys(name: str) -> dict[str, str]:
    """Config keys workload ``name`` does not use -> what to set instead."""
    return {} if name == GENERATION else dict(_hook(name, "UNUSED_KEYS") or {})


def task_settings(settings: Settings, task: TaskEntry) -> Settings:
    """``settings`` with only the options a cell of ``task`` uses (so only those enter its id)."""
    if settings.workload == GENERATION:
        return settings
    hook = _hook(settings.workload, "task_options")
    return settings if hook is None else replace(settings, options=hook(settings.options, task.name))


def factors(cell: Cell) -> dict[str, Any]:
    """Columns the workload sets instead of the generation grid's (e.g. its own batch size)."""
    if cell.settings.workload == GENERATION:
        return {}
    hook = _hook(cell.settings.workload, "factors")
    return {} if hook is None else dict(hook(cell))


def check(cfg: SweepConfig) -> None:
    """Check a config's tasks belong to its workload, then run the workload's own ``check`` hook.

    Every workload checks its models, tasks and data here, the generation
    workload included (:mod:`nrg.workloads.generation_check`).
    """
    mine = cfg.settings.workload
    for name in WORKLOADS:
        tasks = _hook(name, "TASKS") if name != GENERATION else None
        foreign = [t.name for t in cfg.tasks if name != mine and tasks and t.name in tasks]
        if foreign:
            raise ParameterError(f"tasks={foreign} belong to workload {name!r}; set workload: {name}")
    hook = _hook(mine, "check")
    if hook is not None:
        hook(cfg)


def worker(cell: Cell, context: SweepContext, monitor_options: Mapping[str, Any] | None = None) -> Worker:
    """The cell's worker, not yet prepared (nothing is loaded until ``prepare``)."""
    workload = WORKLOADS[cell.settings.workload]
    made: Worker = getattr(_module(workload.name), workload.worker)(cell, context, monitor_options)
    return made


def interleaves(name: str) -> bool:
    """Whether cells of workload ``name`` may be measured in blocks, side by side with other cells."""
    return bool(getattr(_module(name), "INTERLEAVE", True))


def repeat_policy(cell: Cell) -> RepeatPolicy:
    """How many repeats the runner asks of ``cell`` (the workload's rule, else the sweep's ``repeats``)."""
    hook = _hook(cell.settings.workload, "repeat_policy")
    policy: RepeatPolicy = cell.settings.repeats if hook is None else hook(cell)
    return policy


def precision(cell: Cell, frame: pd.DataFrame) -> None:
    """Let the cell's workload set ``repeats_n``, ``ci_rel_halfwidth`` and ``ci_rel_target`` its own way (in place)."""
    hook = _hook(cell.settings.workload, "precision")
    if hook is not None:
        hook(cell, frame)
