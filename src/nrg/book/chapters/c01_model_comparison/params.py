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
from pathlib import Path
from typing import Any, cast

from nrg.book import carbon, common, sweeps
from nrg.book.params import ChapterParams
from nrg.errors import ParameterError, check_choice, check_device
from nrg.models.spec import DTYPES, ModelSpec
from nrg.sweep.config import EXECUTORS
from nrg.sweep.repeats import RepeatPolicy

CHAPTER = "01_model_comparison"
TASKS: tuple[str, ...] = ("generation", "qa", "summarization")
DEFAULT_REPEATS = RepeatPolicy(min_n=3, max_n=5, ci_rel=0.05)   # adaptive: 3 to 5, until the CI is within 5%


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
class Params(ChapterParams):
    """Models x tasks, each task at its own (input, output) lengths; see the notebook's parameters cell."""

    EXTRA = ("reference",)

    # given as in the parameters cell; parsed into specs with ``weights`` and ``layers``
    models: tuple[ModelSpec, ...] = cast("tuple[ModelSpec, ...]",
                                         ("smollm2-135m", "gpt2", {"name": "t5-3b", "layers": 2}))
    weights: str = "auto"
    layers: int | None = None
    tasks: tuple[str, ...] = TASKS
    task_lengths: Mapping[str, tuple[int, int]] = field(default_factory=lambda: {
        "generation": (64, 16), "qa": (128, 4), "summarization": (192, 16)})
    batch_size: int = 1
    dtype: str = "float32"
    device: str = "cpu"
    repeats: RepeatPolicy = DEFAULT_REPEATS
    warmup: int = 1
    idle_s: float = 2.0
    quality_items: int = 3
    isolate: bool = True
    executor: str = "local"
    ray_address: str | None = None
    run_dir: Path | None = None        # None: runs/01_model_comparison (resolved when built)
    reference_dir: Path | None = None  # None: results/reference, when the book has one
    alpha: float = 0.05
    region: str = carbon.DEFAULT_REGION
    price_per_kwh: float | None = None
    pue: float = carbon.DEFAULT_PUE
    # the sweep configs these parameters mean, checked against this machine
    checked: tuple[sweeps.Checked, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = self._put
        layers = None if self.layers is None else common.as_int("layers", self.layers)
        put("layers", layers)
        put("models", sweeps.model_specs(self.models, self.weights, layers))
        tasks = tuple(str(t) for t in common.as_list("tasks", self.tasks))
        common.check_choices("tasks", tasks, TASKS)
        put("tasks", tasks)
        put("task_lengths", _task_lengths(self.task_lengths, tasks))
        put("batch_size", common.as_int("batch_size", self.batch_size))
        check_choice("dtype", self.dtype, DTYPES)
        put("device", check_device("device", self.device))
        repeats = self.repeats
        put("repeats", repeats if isinstance(repeats, RepeatPolicy)
            else RepeatPolicy.parse(sweeps.repeat_policy(repeats)))
        put("warmup", common.as_int("warmup", self.warmup, minimum=0))
        put("idle_s", common.as_number("idle_s", self.idle_s))
        put("quality_items", common.as_int("quality_items", self.quality_items, minimum=0))
        put("isolate", common.as_bool("isolate", self.isolate))
        check_choice("executor", self.executor, EXECUTORS)
        put("run_dir", common.run_dir(CHAPTER, None if self.run_dir is None else str(self.run_dir)))
        put("reference_dir", common.reference_root(None if self.reference_dir is None else str(self.reference_dir)))
        put("alpha", common.as_fraction("alpha", self.alpha, 1e-6, 0.5))
        for name, value in carbon.check_params(self.region, self.price_per_kwh, self.pue).items():
            put(name, value)
        configs = sweeps.parse_configs(self.configs())
        put("checked", sweeps.unchecked(configs) if self.checked_elsewhere() else sweeps.check_configs(configs))

    def _put(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def configs(self) -> list[dict[str, Any]]:
        """One sweep config per task, each at the task's lengths."""
        return [{
            "name": f"{CHAPTER}-{task}", "chapter": CHAPTER, "models": list(self.models),
            "tasks": [task], "batch_sizes": [self.batch_size],
            "input_tokens": [self.task_lengths[task][0]], "output_tokens": [self.task_lengths[task][1]],
            "dtypes": [self.dtype], "device": self.device, "repeats": self.repeats.to_dict(),
            "warmup": self.warmup, "idle_s": self.idle_s, "isolate": self.isolate,
            "executor": self.executor, "ray_address": self.ray_address,
            "quality": {"items": self.quality_items},
        } for task in self.tasks]

    @property
    def reference(self) -> dict[str, Path]:
        """Committed GPU runs of this chapter by GPU folder (empty without reference data)."""
        return common.reference_runs(self.reference_dir, CHAPTER)

