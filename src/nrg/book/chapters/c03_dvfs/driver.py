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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nrg.book import sweeps
from nrg.book.chapters.c03_dvfs.params import CHAPTER, Params
from nrg.errors import ParameterError
from nrg.models.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

    from nrg.dvfs.probe import DvfsProbe

__all__ = ["CHAPTER", "PAPER_SETTING", "Params", "Plan", "measure", "no_reference_message", "plan", "power_limits",
           "probe_machine", "reference_sweep_config", "reference_sweep_yaml"]


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


def probe_machine(params: Params) -> DvfsProbe:
    """What this machine lets nrg change; writes to the GPU (a test lock) only with consent."""
    from nrg import dvfs

    allowed = params.allow_hardware_settings
    return dvfs.probe(test_lock=allowed, allow_hardware_settings=allowed)


def _resolve_clocks(params: Params, gpu: Any) -> list[int]:
    """``auto``: ``n_clocks`` supported clocks spread over the range; else the list, checked."""
    wanted = params.gpu_clocks_mhz
    if wanted == "auto":
        return sorted(gpu.clock_levels(params.n_clocks), reverse=True)
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


def plan(params: Params, probe: Any) -> Plan:
    """Decide from the capability ``probe`` what to sweep; never raises for a missing GPU."""
    if not params.allow_hardware_settings:
        return _without_consent(probe)
    usable = probe.axes
    default = (None,) if params.include_default_clock else ()
    if not any(usable.get(a) for a in ("gpu_clock_mhz", "power_limit_w")):
        return _default_only(probe, "**No frequency can be changed on this machine.** "
                             f"{_nothing_changeable(probe)}")
    if params.device not in ("cuda", "cuda:0"):
        return _default_only(probe, f"This machine's GPU settings can be changed, but device="
                             f"{params.device!r}: a GPU clock cannot change the time of work that does not "
                             "run on GPU 0. Rerun with `device='cuda'` to sweep clocks.")
    if usable.get("gpu_clock_mhz"):
        clocks = _resolve_clocks(params, probe.gpu)
        return Plan(True, "gpu_clock_mhz", default + tuple(clocks),
                    f"The GPU graphics clock of {probe.gpu.name} can be locked: the chapter sweeps "
                    f"{', '.join(map(str, clocks))} MHz" + (" and the default (unlocked) clock." if default else "."))
    limits = tuple(power_limits(params, probe.gpu)[0]) if params.power_limits_w else ()
    if limits:
        return Plan(True, "power_limit_w", default + limits,
                    f"Clocks cannot be locked here ({probe.gpu.permission_reason}), but the power limit "
                    f"can be set: the chapter sweeps {', '.join(map(str, limits))} W instead.")
    return _default_only(probe, "**No GPU clock can be locked on this machine** "
                         f"({probe.gpu.permission_reason}); a power limit could be set: pass `power_limits_w`.")


def power_limits(params: Params, gpu: Any) -> tuple[list[int], list[str]]:
    """The power limits to sweep (``auto``: ``n_clocks`` over the GPU's range) and why there are none.

    A limit outside the GPU's range is a ParameterError naming the range.
    """
    wanted = params.power_limits_w
    if gpu.power_limit_range_w is None:
        return [], [f"{gpu.name} reports no power-limit range (power management not supported)"]
    lo, hi = gpu.power_limit_range_w
    if wanted is None:
        return [], [f"no power limits were given (`power_limits_w=None`); {gpu.name} accepts "
                    f"{lo:g}–{hi:g} W: give a list, or `auto` for {params.n_clocks} limits over that range"]
    if wanted == "auto":
        n = params.n_clocks
        return sorted({round(lo + i * (hi - lo) / (n - 1)) for i in range(n)}, reverse=True), []
    bad = [w for w in wanted if not lo <= w <= hi]
    if bad:
        raise ParameterError(f"power_limits_w has limit(s) {bad} outside the range of {gpu.name}; "
                             f"valid: whole watts from {lo:g} to {hi:g}, or 'auto'")
    return list(wanted), []


def measure(params: Params, the_plan: Plan, progress: bool = True) -> pd.DataFrame:
    """Run (or reuse) the planned sweep; only its rows. Refuses a plan that is not live."""
    if not the_plan.live or the_plan.axis is None:
        raise ParameterError(f"nothing to measure on this machine: {the_plan.reason}")
    config = params.sweep_config(the_plan.axis, the_plan.values)
    from nrg.book.labels import with_model_labels

    assert params.run_dir is not None   # resolved when the parameters were built
    checked = sweeps.check_variant(config, params.checked[0])   # the base config was checked with params
    return with_model_labels(sweeps.measure_checked([checked], params.run_dir, progress=progress))


#: The paper's DVFS setting (the ``gpu-paper`` profile's chapter 3): what a GPU owner's clock sweep runs
#: when this chapter was executed on a CPU, whose small models tell nothing about a GPU's clocks.
PAPER_SETTING: dict[str, Any] = {
    "models": [{"name": m, "weights": "random"} for m in ("gpt-neo-2.7b", "gpt-j-6b", "mistral-7b-v0.1")],
    "input_tokens": 256, "output_tokens": 128, "dtype": "bfloat16"}


def reference_sweep_config(params: Params, clocks: Sequence[int] | None = None) -> dict[str, Any]:
    """The sweep a GPU machine runs to produce this chapter's reference data (device ``cuda``).

    From a chapter run on a CPU it sweeps the paper's models (:data:`PAPER_SETTING`).

    Clocks are the chapter's explicit ``gpu_clocks_mhz``, else ``clocks``;
    with neither (``auto`` on a machine without a GPU) the axis lists only the
    default setting and :func:`reference_sweep_yaml` says which clocks to add.
    """
    wanted = params.gpu_clocks_mhz
    chosen = list(wanted) if isinstance(wanted, tuple) else list(clocks or [])
    default = [None] if params.include_default_clock or not chosen else []
    config = params.sweep_config("gpu_clock_mhz", default + chosen)
    config.update(dtypes=["bfloat16"], device="cuda", isolate=True, allow_hardware_settings=False)
    if not params.device.startswith("cuda"):   # CPU models mean nothing on a GPU
        config.update(models=list(PAPER_SETTING["models"]), input_tokens=[PAPER_SETTING["input_tokens"]],
                      output_tokens=[PAPER_SETTING["output_tokens"]], dtypes=[PAPER_SETTING["dtype"]])
    # plain data: the config is shown as YAML for a GPU owner to save and run
    config["models"] = [m.config_entry() if isinstance(m, ModelSpec) else m for m in config["models"]]
    return config


def reference_sweep_yaml(params: Params, clocks: Sequence[int] | None = None) -> str:
    """:func:`reference_sweep_config` as YAML, with a note when the clocks are still to be chosen."""
    import yaml

    config = reference_sweep_config(params, clocks)
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
    text = text.replace("allow_hardware_settings: false",
                        "allow_hardware_settings: false  # true (or --allow-hardware-settings) lets nrg lock "
                        "the clocks: restored after each cell")
    if params.gpu_clocks_mhz == "auto" and not clocks:
        text = (f"# gpu_clocks_mhz is 'auto': on the GPU machine, `nrg dvfs` lists the supported graphics\n"
                f"# clocks; add about {params.n_clocks} of them, from lowest to highest, to axes.gpu_clock_mhz\n"
                "# (null = the default, unlocked clock).\n") + text
    return text


def no_reference_message(params: Params, clocks: Sequence[int] | None = None) -> str:
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
