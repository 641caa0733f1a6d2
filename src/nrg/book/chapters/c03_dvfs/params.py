"""Chapter 3's parameters: the one source of their defaults and types, checked once.

Building a :class:`Params` parses every value of the notebook's parameters
cell (papermill's strings included), resolves ``device='auto'`` and
``dtype='auto'`` on this machine, refuses clock lists that could not be locked
(:func:`_check_explicit_clocks`) and checks the chapter's base sweep config
(the default setting) against this machine, unless ``nrg book run`` checked the
same values already (:mod:`nrg.book.params`). What is swept is decided later,
from the capability probe (:func:`nrg.book.chapters.c03_dvfs.driver.plan`);
every sweep the chapter runs is :meth:`Params.sweep_config` of one axis, and
measuring it checks only that axis (:func:`nrg.book.sweeps.check_variant`): the
rest is the base config, checked once.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast

from nrg.book import common, sweeps
from nrg.dvfs.common import as_consent
from nrg.errors import ParameterError, check_choice, check_device
from nrg.models.spec import ModelSpec
from nrg.sweep.config import EXECUTORS
from nrg.sweep.repeats import RepeatPolicy

CHAPTER = "03_dvfs"
DTYPES: tuple[str, ...] = ("auto", "float32", "float16", "bfloat16")
#: Adaptive: 3 to 10 repeats, until the CI is within 5 % (the parameters cell's ``repeats``).
REPEATS = RepeatPolicy(min_n=3, max_n=10, ci_rel=0.05)

#: Settings to sweep (MHz, W or kHz) or ``'auto'`` (chosen from the hardware's range); None where allowed: not swept.
Clocks: TypeAlias = tuple[int, ...] | Literal["auto"]


def _clock_list(name: str, value: Any, allow_auto: bool, allow_none: bool = False,
                example: str = "[1980, 1410, 990]") -> Clocks | None:
    """A list of positive whole numbers, each once; ``'auto'`` and None where allowed."""
    if value is None and (allow_none or not allow_auto):
        return None
    if allow_auto and isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    out = []
    for v in common.as_list(name, value):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            hint = "'auto' or " if allow_auto else ""
            none = "None, " if allow_none else ""
            raise ParameterError(f"{name} has invalid value {v!r}; give {none}{hint}a list of positive whole "
                                 f"numbers (e.g. {example})")
        out.append(v)
    if len(set(out)) != len(out):
        raise ParameterError(f"{name}={out!r} names a value twice; give each setting once")
    return tuple(out)


def _device_and_dtype(device: Any, dtype: Any) -> tuple[str, str]:
    """``auto`` resolved: cuda when torch sees a GPU, else cpu; bfloat16 on a GPU, float32 on a CPU.

    Whether an explicit device exists here is the config check's (:func:`nrg.book.sweeps.check_configs`).
    """
    if device != "auto":
        check_device("device", device)   # the rule every chapter uses
    check_choice("dtype", dtype, DTYPES)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return str(device), str(dtype)


def _check_explicit_clocks(params: Params) -> None:
    """Clocks listed by hand are a request to lock them: refused where they cannot be, not ignored.

    ``'auto'`` may quietly fall back to the default clock (the chapter says
    why); a list of clocks without consent or without a GPU used to run and
    ignore them, so a reader would take default-clock data for a clock sweep.
    """
    clocks = params.gpu_clocks_mhz
    if not isinstance(clocks, tuple):
        return
    if not params.allow_hardware_settings:
        raise ParameterError(
            f"gpu_clocks_mhz={list(clocks)!r} asks to lock the GPU's clocks, which needs "
            "allow_hardware_settings=True (off by default: nrg changes no hardware setting without "
            "consent); set it, or use gpu_clocks_mhz='auto' to measure the default clock only")
    if not params.device.startswith("cuda"):
        raise ParameterError(
            f"gpu_clocks_mhz={list(clocks)!r} needs a GPU, but device={params.device!r}; use device='cuda' "
            "on a machine with an NVIDIA GPU, or gpu_clocks_mhz='auto'")


def _repeats_entry(policy: RepeatPolicy) -> int | dict[str, Any]:
    """A config's ``repeats`` as a reader writes it: a fixed count as the count, else {min, max, ci_rel}."""
    return policy.min_n if policy.ci_rel is None and policy.min_n == policy.max_n else policy.to_dict()


@dataclass(frozen=True)
class Params(sweeps.SweepParams):
    """GPU clocks (else power limits), the power-limit and CPU-frequency sections; see the parameters cell."""

    CHAPTER = CHAPTER

    models: tuple[ModelSpec, ...] = cast("tuple[ModelSpec, ...]", ("gpt2", "smollm2-135m"))
    weights: str = "random"
    gpu_clocks_mhz: Clocks = "auto"            # "auto": n_clocks supported clocks; or a list in MHz
    n_clocks: int = 6
    include_default_clock: bool = True
    power_limits_w: Clocks | None = None       # "auto": n_clocks limits over the GPU's range; or a list
    cpu_max_freqs_khz: Clocks | None = "auto"  # caps of the CPU-frequency section; None: not swept
    input_tokens: int = 128
    output_tokens: int = 64
    batch_size: int = 1
    dtype: str = "auto"                        # resolved when built: bfloat16 on a GPU, float32 on a CPU
    device: str = "auto"                       # resolved when built: cuda if available, else cpu
    repeats: RepeatPolicy = REPEATS            # None: the same policy
    meters: tuple[str, ...] | None = None      # None: the default chain
    executor: str = "local"
    ray_address: str | None = None
    allow_hardware_settings: bool = False

    def __post_init__(self) -> None:
        device, dtype = _device_and_dtype(self.device, self.dtype)
        self._put("device", device)
        self._put("dtype", dtype)
        super().__post_init__()

    def parse(self) -> None:
        """The settings to sweep, lengths, batch size, meters, executor, consent; hand-listed clocks checked."""
        put = self._put
        put("gpu_clocks_mhz", _clock_list("gpu_clocks_mhz", self.gpu_clocks_mhz, allow_auto=True))
        put("n_clocks", common.as_int("n_clocks", self.n_clocks, minimum=2))
        put("include_default_clock", common.as_bool("include_default_clock", self.include_default_clock))
        put("power_limits_w", _clock_list("power_limits_w", self.power_limits_w, allow_auto=True, allow_none=True,
                                          example="[250, 200, 150]"))
        put("cpu_max_freqs_khz", _clock_list("cpu_max_freqs_khz", self.cpu_max_freqs_khz, allow_auto=True,
                                             allow_none=True, example="[3000000, 2000000, 1200000]"))
        put("input_tokens", common.as_int("input_tokens", self.input_tokens))
        put("output_tokens", common.as_int("output_tokens", self.output_tokens, minimum=2))
        put("batch_size", common.as_int("batch_size", self.batch_size))
        meters = self.meters
        put("meters", None if meters is None else tuple(str(m) for m in common.as_list("meters", meters)))
        check_choice("executor", self.executor, EXECUTORS)
        put("allow_hardware_settings", as_consent(self.allow_hardware_settings))
        _check_explicit_clocks(self)

    def configs(self) -> list[dict[str, Any]]:
        """The base sweep (the default setting): models, device, lengths and meters checked when built."""
        return [self.sweep_config(None, ())]

    def sweep_config(self, axis: str | None, values: Sequence[Any]) -> dict[str, Any]:
        """The sweep config of the chapter with ``axis`` over ``values`` (None = default setting)."""
        config: dict[str, Any] = {
            "name": f"{CHAPTER}-{axis or 'base'}", "chapter": CHAPTER, "models": list(self.models),
            "batch_sizes": [self.batch_size], "input_tokens": [self.input_tokens],
            "output_tokens": [self.output_tokens], "dtypes": [self.dtype],
            "device": self.device, "repeats": _repeats_entry(self.repeats), "warmup": self.warmup,
            "idle_s": self.idle_s, "meters": None if self.meters is None else list(self.meters),
            "isolate": self.isolate, "quality": {"items": 0}, "roofline": True,
            "allow_hardware_settings": self.allow_hardware_settings,
            "executor": self.executor, "ray_address": self.ray_address,
        }
        if axis is not None:
            config["axes"] = {axis: list(values)}
        return config
