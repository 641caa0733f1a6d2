"""What a measurement window returns: energy per domain in joules, and how each number was got.

Frozen and in SI units only (seconds, joules, watts), unlike Zeus's mutable
``Measurement`` that mixes mJ and J and whose total sums GPUs only. Every domain
carries its ``method`` and ``source`` (the codecarbon habit: a number says how it
was obtained), and the whole measurement says whether it can be trusted
(``valid`` / ``invalid_reason``) and what to be careful about (``warnings``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from nrg.errors import ParameterError


class Method(str, Enum):
    """How an energy figure was obtained, from most to least trustworthy."""

    COUNTER = "counter"          # a hardware energy counter (NVML total energy, RAPL)
    INTEGRATED = "integrated"    # power samples integrated over time
    ESTIMATED = "estimated"      # a model (CPU time x rated power per core)


_METHOD_RANK = {Method.COUNTER: 0, Method.INTEGRATED: 1, Method.ESTIMATED: 2}

#: Domain families, in the order the record columns use them.
DOMAIN_FAMILIES: tuple[str, ...] = ("gpu", "cpu", "dram")


def weakest(methods: Iterable[Method]) -> Method:
    """The least trustworthy of ``methods`` (a sum is only as good as its worst term)."""
    ranked = sorted(methods, key=_METHOD_RANK.__getitem__)
    return ranked[-1] if ranked else Method.ESTIMATED


def domain_family(domain: str) -> str:
    """``"gpu:1"`` -> ``"gpu"``; ``"cpu"`` -> ``"cpu"``."""
    return domain.split(":", 1)[0]


@dataclass(frozen=True)
class DomainEnergy:
    """Gross energy of one domain ("gpu:0", "cpu", "dram") over a window."""

    domain: str
    energy_j: float
    method: Method
    source: str
    idle_power_w: float | None = None

    def net_energy_j(self, elapsed_s: float) -> float:
        """Gross minus the idle baseline over ``elapsed_s``; NaN when no baseline was measured."""
        if self.idle_power_w is None:
            return math.nan
        return self.energy_j - self.idle_power_w * elapsed_s


@dataclass(frozen=True)
class Measurement:
    """Energy of one named window; ``iterations`` > 1 when it is a per-iteration average.

    ``other_cpu_s`` / ``other_cpu_frac``: CPU time other processes used during the
    window, and its share of the machine's CPU capacity; ``foreign_gpu_procs``:
    processes other than this one on the measured GPUs (None when not asked).
    See :mod:`nrg.meters.activity`: how quiet the machine was is part of the result.
    """

    name: str
    elapsed_s: float
    domains: tuple[DomainEnergy, ...]
    valid: bool = True
    invalid_reason: str | None = None
    warnings: tuple[str, ...] = ()
    iterations: int = 1
    other_cpu_s: float = math.nan
    other_cpu_frac: float = math.nan
    foreign_gpu_procs: int | None = None

    def domain_names(self) -> tuple[str, ...]:
        """The names of the measured domains, in the order of ``domains``."""
        return tuple(d.domain for d in self.domains)

    def select(self, domains: Iterable[str] | str | None = None) -> tuple[DomainEnergy, ...]:
        """The domains named (a family name such as "gpu" selects all GPUs); None selects all."""
        if domains is None:
            return self.domains
        if isinstance(domains, str):
            domains = [domains]
        chosen: list[DomainEnergy] = []
        for name in domains:
            found = [d for d in self.domains if d.domain == name or domain_family(d.domain) == name]
            if not found:
                valid = sorted({*self.domain_names(), *(domain_family(n) for n in self.domain_names())})
                raise ParameterError(
                    f"domains={name!r} is not in this measurement; choose from: "
                    + (", ".join(repr(v) for v in valid) or "(none measured)"))
            chosen.extend(d for d in found if d not in chosen)
        return tuple(chosen)

    def total_j(self, domains: Iterable[str] | str | None = None, net: bool = False) -> float:
        """Sum over ``domains`` (all when None); ``net`` subtracts each domain's idle baseline."""
        selected = self.select(domains)
        if net:
            return math.fsum(d.net_energy_j(self.elapsed_s) for d in selected)
        return math.fsum(d.energy_j for d in selected)

    def net_energy_j(self, domain: str) -> float:
        """Gross minus idle_power_w x elapsed_s for one domain (or family); NaN without baseline."""
        return self.total_j([domain], net=True)

    @property
    def method(self) -> Method:
        """The weakest method among the domains: a total is only as good as its worst part."""
        return weakest(d.method for d in self.domains)

    def per_iteration(self, iterations: int) -> Measurement:
        """This window divided by ``iterations`` (the repeat helper's result)."""
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
            raise ParameterError(f"iterations={iterations!r} is not valid; it must be an int >= 1")
        doms = tuple(replace(d, energy_j=d.energy_j / iterations) for d in self.domains)
        return replace(self, elapsed_s=self.elapsed_s / iterations, domains=doms,
                       iterations=self.iterations * iterations,
                       other_cpu_s=self.other_cpu_s / iterations)

    def with_idle(self, idle_power_w: Mapping[str, float]) -> Measurement:
        """This window with a sweep's idle baseline attached to domains that have none.

        Why a copy: the baseline is measured once per sweep, the window many times.
        """
        doms = tuple(replace(d, idle_power_w=idle_power_w[d.domain])
                     if d.idle_power_w is None and d.domain in idle_power_w else d
                     for d in self.domains)
        return replace(self, domains=doms)

    def minus(self, part: Measurement, name: str) -> Measurement:
        """``self - part`` per domain (the former decode = generate - prefill of two runs).

        The sweep now cuts one window instead (``EnergyMonitor.split_window``);
        this stays for comparisons such as ``benchmarks/bench_phases.py``. A
        non-positive difference is kept as measured and warned about: hiding it
        would bias the mean. Other processes' CPU time of a difference is unknown (NaN).
        """
        part_j = {d.domain: d.energy_j for d in part.domains}
        doms = tuple(replace(d, energy_j=d.energy_j - part_j.get(d.domain, math.nan))
                     for d in self.domains)
        reasons = [r for r in (self.invalid_reason, part.invalid_reason) if r]
        elapsed_s = self.elapsed_s - part.elapsed_s
        warnings = list(dict.fromkeys(self.warnings + part.warnings))
        if elapsed_s <= 0:
            warnings.append(f"{name} = {self.name} - {part.name} is {elapsed_s:.3g} s: "
                            "timing noise exceeds this phase")
        return replace(self, name=name, elapsed_s=elapsed_s, domains=doms,
                       valid=self.valid and part.valid, invalid_reason="; ".join(reasons) or None,
                       warnings=tuple(warnings), other_cpu_s=math.nan, other_cpu_frac=math.nan)

    def _family_j(self, family: str) -> float:
        found = [d.energy_j for d in self.domains if domain_family(d.domain) == family]
        return math.fsum(found) if found else math.nan

    def per_gpu_j(self) -> dict[str, float]:
        """``gpu<N>_energy_j`` per GPU domain when a window spans several GPUs (a sharded model)."""
        gpus = [d for d in self.domains if domain_family(d.domain) == "gpu"]
        if len(gpus) < 2:
            return {}
        return {f"gpu{d.domain.split(':', 1)[1]}_energy_j": d.energy_j for d in gpus}

    def to_record(self) -> dict[str, Any]:
        """Flat columns for the results table (see ARCHITECTURE.md, "Result columns")."""
        idle = [d.idle_power_w for d in self.domains if d.idle_power_w is not None]
        has_baseline = bool(self.domains) and len(idle) == len(self.domains)
        energy_j = self.total_j() if self.domains else math.nan
        notes = ([f"invalid: {self.invalid_reason}"] if not self.valid else []) + list(self.warnings)
        return {
            "time_s": self.elapsed_s,
            "energy_j": energy_j,
            "net_energy_j": self.total_j(net=True) if has_baseline else math.nan,
            "gpu_energy_j": self._family_j("gpu"),
            "cpu_energy_j": self._family_j("cpu"),
            "dram_energy_j": self._family_j("dram"),
            "idle_power_w": math.fsum(idle) if has_baseline else math.nan,
            "energy_method": self.method.value if self.domains else None,
            "energy_source": "; ".join(f"{d.domain}={d.source}" for d in self.domains) or None,
            "energy_valid": self.valid,
            "energy_warning": "; ".join(notes) or None,
            "avg_power_w": energy_j / self.elapsed_s if self.elapsed_s > 0 else math.nan,
            **self.per_gpu_j(),
            "other_cpu_s": self.other_cpu_s,
            "other_cpu_frac": self.other_cpu_frac,
            "foreign_gpu_procs": self.foreign_gpu_procs,
        }
