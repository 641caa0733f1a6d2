"""Driver of chapter 3: GPU frequency scaling (DVFS) -- energy, latency, power, EDP and ED²P per clock.

The chapter first asks the machine what it may change (:func:`probe_machine`),
then decides (:func:`plan`): sweep locked GPU graphics clocks, else GPU power
limits, else measure only the default setting, observing the clocks the
hardware chose by itself. Changing a clock or power limit needs the user's
consent (``allow_hardware_settings=True``; off by default, because on a shared
machine it slows everyone's work): without it nothing is written to the
hardware, not even the probe's permission test, and the plan says why no
clock was swept. Whatever was measured -- here, or on a GPU machine whose run
was committed under ``results/reference/<gpu>/03_dvfs/`` -- goes through the
same :func:`nrg.book.chapters.c03_dvfs.analysis.analyse`. Nothing is ever modelled in
place of a measurement: without reference data, the chapter says so and
prints the sweep config that would produce the data.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.book import carbon, common, sweeps
from nrg.dvfs.common import as_consent
from nrg.errors import ParameterError, check_choice
from nrg.models.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

    from nrg.dvfs.probe import DvfsProbe

CHAPTER = "03_dvfs"
DTYPES: tuple[str, ...] = ("auto", "float32", "float16", "bfloat16")


def _clock_list(name: str, value: Any, allow_auto: bool, allow_none: bool = False,
                example: str = "[1980, 1410, 990]") -> list[int] | str | None:
    if value is None and (allow_none or not allow_auto):
        return None
    if allow_auto and isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    values = common.as_list(name, value)
    out = []
    for v in values:
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
    return out


def _device_and_dtype(device: str, dtype: str) -> tuple[str, str]:
    device = common.as_device("device", device, allow_auto=True)   # the rule every chapter uses
    check_choice("dtype", dtype, DTYPES)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, dtype


def check(models: Any = ("gpt2", "smollm2-135m"), weights: str = "random", layers: int | None = None,
          gpu_clocks_mhz: Any = "auto", n_clocks: int = 6, include_default_clock: bool = True,
          power_limits_w: Any = None, cpu_max_freqs_khz: Any = "auto", input_tokens: int = 128, output_tokens: int = 64,
          batch_size: int = 1, dtype: str = "auto", device: str = "auto", repeats: Any = None,
          warmup: int = 1, idle_s: float = 2.0, meters: Any = None, isolate: bool = True,
          executor: str = "local", ray_address: str | None = None,
          run_dir: str | None = None, reference_dir: str | None = None, alpha: float = 0.05,
          allow_hardware_settings: Any = False, region: str = carbon.DEFAULT_REGION,
          price_per_kwh: float | None = None, pue: float = carbon.DEFAULT_PUE,
          **unknown: Any) -> dict[str, Any]:
    """Checked parameters (raises ParameterError before any work; nothing is written)."""
    if unknown:
        raise ParameterError(f"unknown parameter(s) {sorted(unknown)}")
    impact = carbon.check_params(region, price_per_kwh, pue)   # region, price_per_kwh, pue
    include_default_clock = common.as_bool("include_default_clock", include_default_clock)
    isolate = common.as_bool("isolate", isolate)
    device, dtype = _device_and_dtype(device, dtype)
    params = {
        "models": sweeps.model_specs(list(models) if isinstance(models, tuple) else models, weights, layers),
        "gpu_clocks_mhz": _clock_list("gpu_clocks_mhz", gpu_clocks_mhz, allow_auto=True),
        "n_clocks": common.as_int("n_clocks", n_clocks, minimum=2),
        "include_default_clock": include_default_clock,
        "power_limits_w": _clock_list("power_limits_w", power_limits_w, allow_auto=True, allow_none=True,
                                      example="[250, 200, 150]"),
        "cpu_max_freqs_khz": _clock_list("cpu_max_freqs_khz", cpu_max_freqs_khz, allow_auto=True,
                                         allow_none=True, example="[3000000, 2000000, 1200000]"),
        "input_tokens": common.as_int("input_tokens", input_tokens),
        "output_tokens": common.as_int("output_tokens", output_tokens, minimum=2),
        "batch_size": common.as_int("batch_size", batch_size), "dtype": dtype, "device": device,
        "repeats": sweeps.repeat_policy(repeats or {"min": 3, "max": 10, "ci_rel": 0.05}),
        "warmup": common.as_int("warmup", warmup, minimum=0), "idle_s": common.as_number("idle_s", idle_s),
        "meters": common.as_list("meters", meters) if meters is not None else None,
        "isolate": isolate, "executor": executor, "ray_address": ray_address,
        "alpha": common.as_fraction("alpha", alpha, 1e-6, 0.5),
        "run_dir": common.run_dir(CHAPTER, run_dir),
        "reference": common.reference_runs(common.reference_root(reference_dir), CHAPTER),
        "allow_hardware_settings": as_consent(allow_hardware_settings),
        **impact,
    }
    _check_explicit_clocks(params)
    sweeps.check_configs([sweep_config(params, None, ())])  # models, device, lengths, meters
    return params


def _check_explicit_clocks(params: Mapping[str, Any]) -> None:
    """Clocks listed by hand are a request to lock them: refused where they cannot be, not ignored.

    ``'auto'`` may quietly fall back to the default clock (the chapter says
    why); a list of clocks without consent or without a GPU used to run and
    ignore them, so a reader would take default-clock data for a clock sweep.
    """
    clocks = params["gpu_clocks_mhz"]
    if not isinstance(clocks, list):
        return
    if not params["allow_hardware_settings"]:
        raise ParameterError(
            f"gpu_clocks_mhz={clocks!r} asks to lock the GPU's clocks, which needs "
            "allow_hardware_settings=True (off by default: nrg changes no hardware setting without "
            "consent); set it, or use gpu_clocks_mhz='auto' to measure the default clock only")
    if not str(params["device"]).startswith("cuda"):
        raise ParameterError(
            f"gpu_clocks_mhz={clocks!r} needs a GPU, but device={params['device']!r}; use device='cuda' "
            "on a machine with an NVIDIA GPU, or gpu_clocks_mhz='auto'")


def sweep_config(params: Mapping[str, Any], axis: str | None, values: Sequence[Any]) -> dict[str, Any]:
    """The sweep config of the chapter with ``axis`` over ``values`` (None = default setting)."""
    config = {
        "name": f"{CHAPTER}-{axis or 'base'}", "chapter": CHAPTER, "models": list(params["models"]),
        "batch_sizes": [params["batch_size"]], "input_tokens": [params["input_tokens"]],
        "output_tokens": [params["output_tokens"]], "dtypes": [params["dtype"]],
        "device": params["device"], "repeats": params["repeats"], "warmup": params["warmup"],
        "idle_s": params["idle_s"], "meters": params["meters"], "isolate": params["isolate"],
        "quality": {"items": 0}, "roofline": True,
        "allow_hardware_settings": bool(params.get("allow_hardware_settings", False)),
        "executor": params["executor"], "ray_address": params["ray_address"],
    }
    if axis is not None:
        config["axes"] = {axis: list(values)}
    return config


@dataclass(frozen=True)
class Plan:
    """What the chapter measures live: an axis and its values (None = the default setting), and why."""

    live: bool
    axis: str | None
    values: tuple[Any, ...]
    reason: str

    @property
    def sweeps(self) -> bool:
        """Whether the plan changes a setting (a value other than the default)."""
        return any(v is not None for v in self.values)

    def _repr_markdown_(self) -> str:
        return self.reason


def probe_machine(params: Mapping[str, Any]) -> DvfsProbe:
    """What this machine lets nrg change; writes to the GPU (a test lock) only with consent."""
    from nrg import dvfs

    allowed = bool(params.get("allow_hardware_settings", False))
    return dvfs.probe(test_lock=allowed, allow_hardware_settings=allowed)


def _resolve_clocks(params: Mapping[str, Any], gpu: Any) -> list[int]:
    """``auto``: ``n_clocks`` supported clocks spread over the range; else the list, checked."""
    wanted = params["gpu_clocks_mhz"]
    if wanted == "auto":
        return sorted(gpu.clock_levels(params["n_clocks"]), reverse=True)
    bad = [c for c in wanted if c not in gpu.graphics_clocks_mhz]
    if bad:
        raise ParameterError(f"gpu_clocks_mhz has clock(s) {bad} this GPU does not support; supported "
                             f"(MHz): {', '.join(map(str, gpu.graphics_clocks_mhz))}")
    return list(wanted)


def _nothing_changeable(probe: Any) -> str:
    gpu = probe.gpu.reason if not probe.gpu.available else probe.gpu.permission_reason
    cpu = probe.cpu.reason if not probe.cpu.available else (
        "cpufreq is present" + ("" if probe.cpu.writable else " but not writable"))
    return f"GPU: {gpu}. CPU: {cpu}."


def _default_only(probe: Any, why: str) -> Plan:
    """Measure the default setting only, changing nothing; observe what the hardware chose."""
    seen = (f"the clock and power {probe.gpu.name} chose by itself are sampled during every cell"
            if probe.gpu.available else "no GPU clock can be observed here")
    return Plan(True, "gpu_clock_mhz", (None,),
                f"{why} **Only the default setting is measured** ({seen}); nothing is changed on this machine.")


def _without_consent(probe: Any) -> Plan:
    """No consent: say exactly why clocks were not swept and what consent would do here."""
    why = ("**Clocks were not swept: hardware settings are not allowed** (`allow_hardware_settings=False`, "
           "the default), so nrg changes no clock or power limit.")
    if probe.axes.get("gpu_clock_mhz") or probe.axes.get("power_limit_w"):
        why += (f" On this machine, GPU {probe.gpu.index} ({probe.gpu.name}) reports settings that could be "
                "changed; rerun with `allow_hardware_settings=True` (e.g. `-p allow_hardware_settings True`) "
                "to sweep its clocks (each restored after its cell).")
    else:
        why += f" Nothing could be changed here anyway: {_nothing_changeable(probe)}"
    return _default_only(probe, why)


def plan(params: Mapping[str, Any], probe: Any) -> Plan:
    """Decide from the capability ``probe`` what to sweep; never raises for a missing GPU."""
    if not params.get("allow_hardware_settings", False):
        return _without_consent(probe)
    usable = probe.axes
    default = (None,) if params["include_default_clock"] else ()
    if not any(usable.get(a) for a in ("gpu_clock_mhz", "power_limit_w")):
        return _default_only(probe, "**No frequency can be changed on this machine.** "
                             f"{_nothing_changeable(probe)}")
    if params["device"] not in ("cuda", "cuda:0"):
        return _default_only(probe, f"This machine's GPU settings can be changed, but device="
                             f"{params['device']!r}: a GPU clock cannot change the time of work that does not "
                             "run on GPU 0. Rerun with `device='cuda'` to sweep clocks.")
    if usable.get("gpu_clock_mhz"):
        clocks = _resolve_clocks(params, probe.gpu)
        return Plan(True, "gpu_clock_mhz", default + tuple(clocks),
                    f"The GPU graphics clock of {probe.gpu.name} can be locked: the chapter sweeps "
                    f"{', '.join(map(str, clocks))} MHz" + (" and the default (unlocked) clock." if default else "."))
    limits = tuple(power_limits(params, probe.gpu)[0]) if params["power_limits_w"] else ()
    if limits:
        return Plan(True, "power_limit_w", default + limits,
                    f"Clocks cannot be locked here ({probe.gpu.permission_reason}), but the power limit "
                    f"can be set: the chapter sweeps {', '.join(map(str, limits))} W instead.")
    return _default_only(probe, "**No GPU clock can be locked on this machine** "
                         f"({probe.gpu.permission_reason}); a power limit could be set: pass `power_limits_w`.")


def power_limits(params: Mapping[str, Any], gpu: Any) -> tuple[list[int], list[str]]:
    """The power limits to sweep (``auto``: ``n_clocks`` over the GPU's range) and why there are none.

    A limit outside the GPU's range is a ParameterError naming the range.
    """
    wanted = params["power_limits_w"]
    if gpu.power_limit_range_w is None:
        return [], [f"{gpu.name} reports no power-limit range (power management not supported)"]
    lo, hi = gpu.power_limit_range_w
    if wanted is None:
        return [], [f"no power limits were given (`power_limits_w=None`); {gpu.name} accepts "
                    f"{lo:g}–{hi:g} W: give a list, or `auto` for {params['n_clocks']} limits over that range"]
    if wanted == "auto":
        n = params["n_clocks"]
        return sorted({round(lo + i * (hi - lo) / (n - 1)) for i in range(n)}, reverse=True), []
    bad = [w for w in wanted if not lo <= w <= hi]
    if bad:
        raise ParameterError(f"power_limits_w has limit(s) {bad} outside the range of {gpu.name}; "
                             f"valid: whole watts from {lo:g} to {hi:g}, or 'auto'")
    return list(wanted), []


def measure(params: Mapping[str, Any], the_plan: Plan, progress: bool = True) -> pd.DataFrame:
    """Run (or reuse) the planned sweep; only its rows. Refuses a plan that is not live."""
    if not the_plan.live or the_plan.axis is None:
        raise ParameterError(f"nothing to measure on this machine: {the_plan.reason}")
    config = sweep_config(params, the_plan.axis, the_plan.values)
    from nrg.book.labels import with_model_labels

    return with_model_labels(sweeps.measure([config], Path(params["run_dir"]), progress=progress))


#: The paper's DVFS setting (the ``gpu-paper`` profile's chapter 3): what a GPU owner's clock sweep runs
#: when this chapter was executed on a CPU, whose small models tell nothing about a GPU's clocks.
PAPER_SETTING: dict[str, Any] = {
    "models": [{"name": m, "weights": "random"} for m in ("gpt-neo-2.7b", "gpt-j-6b", "mistral-7b-v0.1")],
    "input_tokens": 256, "output_tokens": 128, "dtype": "bfloat16"}


def reference_sweep_config(params: Mapping[str, Any], clocks: Sequence[int] | None = None) -> dict[str, Any]:
    """The sweep a GPU machine runs to produce this chapter's reference data (device ``cuda``).

    From a chapter run on a CPU it sweeps the paper's models (:data:`PAPER_SETTING`).

    Clocks are the chapter's explicit ``gpu_clocks_mhz``, else ``clocks``;
    with neither (``auto`` on a machine without a GPU) the axis lists only the
    default setting and :func:`reference_sweep_yaml` says which clocks to add.
    """
    wanted = params["gpu_clocks_mhz"]
    chosen = list(wanted) if wanted != "auto" else list(clocks or [])
    default = [None] if params["include_default_clock"] or not chosen else []
    paper = {} if params["device"].startswith("cuda") else PAPER_SETTING   # CPU models mean nothing on a GPU
    config = sweep_config({**params, "dtype": "bfloat16", **paper, "device": "cuda", "isolate": True,
                           "allow_hardware_settings": False}, "gpu_clock_mhz", default + chosen)
    # plain data: the config is shown as YAML for a GPU owner to save and run
    config["models"] = [m.config_entry() if isinstance(m, ModelSpec) else m for m in config["models"]]
    return config


def reference_sweep_yaml(params: Mapping[str, Any], clocks: Sequence[int] | None = None) -> str:
    """:func:`reference_sweep_config` as YAML, with a note when the clocks are still to be chosen."""
    import yaml

    config = reference_sweep_config(params, clocks)
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
    text = text.replace("allow_hardware_settings: false",
                        "allow_hardware_settings: false  # true (or --allow-hardware-settings) lets nrg lock "
                        "the clocks: restored after each cell")
    if params["gpu_clocks_mhz"] == "auto" and not clocks:
        text = (f"# gpu_clocks_mhz is 'auto': on the GPU machine, `nrg dvfs` lists the supported graphics\n"
                f"# clocks; add about {params['n_clocks']} of them, from lowest to highest, to axes.gpu_clock_mhz\n"
                "# (null = the default, unlocked clock).\n") + text
    return text


def no_reference_message(params: Mapping[str, Any], clocks: Sequence[int] | None = None) -> str:
    """Markdown: no reference data is committed, and the commands that would produce it."""
    from nrg.book.reference_section import gpu_owner_text

    return (
        f"No reference data has been committed for this chapter (`results/reference/<gpu-slug>/{CHAPTER}/`). "
        + gpu_owner_text() + "\n\n"
        "Without Jupyter, the same clock sweep is this config (check the GPU with "
        "`nrg dvfs --allow-hardware-settings --test-lock`, save it as `dvfs.yaml`, then "
        f"`nrg sweep dvfs.yaml --allow-hardware-settings --out results/reference/<gpu-slug>/{CHAPTER}`):\n\n"
        f"```yaml\n{reference_sweep_yaml(params, clocks)}```"
    )
