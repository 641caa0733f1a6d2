"""Chapter 1's parameters: the one source of their defaults and types, checked once.

``models`` is parsed here, once, into :class:`nrg.models.ModelSpec` (plain
names take ``weights`` and ``layers``); the sweep configs hold those specs as
they are, and are checked against the machine here too (unless ``nrg book
run`` checked the same values already, see :mod:`nrg.book.params`), so
:func:`~nrg.book.chapters.c01_model_comparison.driver.measure` runs them
without checking again.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from nrg.book import common, sweeps
from nrg.errors import ParameterError, check_choice
from nrg.models.spec import ModelSpec
from nrg.sweep.config import EXECUTORS

CHAPTER = "01_model_comparison"
TASKS: tuple[str, ...] = ("generation", "qa", "summarization")


def _task_lengths(value: Any, tasks: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    lengths = common.as_mapping("task_lengths", value)
    missing = [t for t in tasks if t not in lengths]
    if missing:
        raise ParameterError(f"task_lengths has no entry for task(s) {missing}; give "
                             "{task: [input_tokens, output_tokens]} for every task")
    out = {}
    for task in tasks:
        pair = common.as_list(f"task_lengths[{task}]", lengths[task])
        if len(pair) != 2:
            raise ParameterError(f"task_lengths[{task}]={pair!r} is not valid; give [input_tokens, output_tokens]")
        out[task] = (common.as_int(f"task_lengths[{task}] input", pair[0]),
                     common.as_int(f"task_lengths[{task}] output", pair[1]))
    return out


@dataclass(frozen=True)
class Params(sweeps.SweepParams):
    """Models x tasks, each task at its own (input, output) lengths; see the notebook's parameters cell."""

    CHAPTER = CHAPTER

    models: tuple[ModelSpec, ...] = cast("tuple[ModelSpec, ...]",
                                         ("smollm2-135m", "gpt2", {"name": "t5-3b", "layers": 2}))
    tasks: tuple[str, ...] = TASKS
    task_lengths: Mapping[str, tuple[int, int]] = field(default_factory=lambda: {
        "generation": (64, 16), "qa": (128, 4), "summarization": (192, 16)})
    batch_size: int = 1
    quality_items: int = 3
    executor: str = "local"
    ray_address: str | None = None

    def parse(self) -> None:
        """Tasks and their lengths, batch size, quality items, executor."""
        tasks = tuple(str(t) for t in common.as_list("tasks", self.tasks))
        common.check_choices("tasks", tasks, TASKS)
        self._put("tasks", tasks)
        self._put("task_lengths", _task_lengths(self.task_lengths, tasks))
        self._put("batch_size", common.as_int("batch_size", self.batch_size))
        self._put("quality_items", common.as_int("quality_items", self.quality_items, minimum=0))
        check_choice("executor", self.executor, EXECUTORS)

    def configs(self) -> list[dict[str, Any]]:
        """One sweep config per task, each at the task's lengths."""
        return [{
            **self.base_config(), "name": f"{CHAPTER}-{task}", "tasks": [task], "batch_sizes": [self.batch_size],
            "input_tokens": [self.task_lengths[task][0]], "output_tokens": [self.task_lengths[task][1]],
            "executor": self.executor, "ray_address": self.ray_address, "quality": {"items": self.quality_items},
        } for task in self.tasks]
