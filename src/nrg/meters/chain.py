"""The fallback chain as data: the best available source per domain, and why not the others.

``CHAIN`` lists, per domain family, the sources from best to worst. Each meter
(``nvml``, ``rapl``, ``estimate``) is probed once; the first source in the chain
that offers a domain is chosen, and every better one is recorded as skipped with
its reason (codecarbon's habit: say how to get a better number).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError, check_positive, choice_error
from nrg.meters.measurement import DOMAIN_FAMILIES, Method, domain_family
from nrg.meters.source import EnergySource, Probe

if TYPE_CHECKING:
    from nrg.meters.nvml import Nvml

#: Meters a user can choose (``--meters nvml,rapl,estimate``).
METERS: tuple[str, ...] = ("nvml", "rapl", "estimate")
#: Best source first, per domain family.
CHAIN: dict[str, tuple[str, ...]] = {
    "gpu": ("nvml-counter", "nvml-sampling"),
    "cpu": ("rapl", "estimate"),
    "dram": ("rapl", "estimate-dram"),
}
#: Which meter provides each source.
SOURCE_METER: dict[str, str] = {
    "nvml-counter": "nvml", "nvml-sampling": "nvml", "rapl": "rapl", "estimate": "estimate",
    "estimate-dram": "estimate",
}
SOURCE_METHOD: dict[str, Method] = {
    "nvml-counter": Method.COUNTER, "nvml-sampling": Method.INTEGRATED,
    "rapl": Method.COUNTER, "estimate": Method.ESTIMATED, "estimate-dram": Method.ESTIMATED,
}


@dataclass(frozen=True)
class ChainDecision:
    """For one domain: the source chosen (None if none), and each better one skipped with why."""

    domain: str
    chosen: str | None
    method: Method | None
    detail: str | None
    skipped: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        """What was chosen for the domain and why each other source was skipped, one line each."""
        head = (f"{self.domain}: {self.detail or self.chosen} [{self.method.value}]"
                if self.chosen and self.method else f"{self.domain}: not measured")
        return "\n".join([head, *(f"  skipped {src}: {why}" for src, why in self.skipped)])


@dataclass
class Chain:
    """Chosen sources (not started), the decisions, and what to release when done."""

    sources: list[EnergySource]
    decisions: tuple[ChainDecision, ...]
    releases: list[Callable[[], None]] = field(default_factory=list)


def check_meters(meters: Sequence[str] | str | None) -> tuple[str, ...]:
    """Validate meter names before probing anything; None means all."""
    if meters is None:
        return METERS
    if isinstance(meters, str):
        meters = [m for m in meters.split(",") if m.strip()]
    names = tuple(m.strip() for m in meters)
    for name in names:
        if name not in METERS:
            raise choice_error("meters", name, METERS)
    if not names:
        raise choice_error("meters", "", METERS)
    return names


def _probe_all(meters: tuple[str, ...], gpus: Sequence[int] | None, sysfs_root: str | Path,
               nvml_module: Nvml | None, sample_period_s: float,
               estimate_options: dict[str, Any]) -> list[Probe]:
    from nrg.meters.estimate import check_estimate_options, probe_estimate
    from nrg.meters.nvml import check_gpu_indices, probe_nvml
    from nrg.meters.rapl import probe_rapl

    check_gpu_indices(gpus)
    check_positive("sample_period_s", sample_period_s)
    if "estimate" in meters:
        check_estimate_options(estimate_options)
    elif estimate_options:
        raise ParameterError(f"estimate options {sorted(estimate_options)} were given but "
                             f"meters={','.join(meters)} leaves out 'estimate'; add it or drop them")
    probes: list[Probe] = []
    try:  # NVML first: on a GPU nothing optional (codecarbon's files, psutil's scan) may stand before it
        if "nvml" in meters:
            probes.append(probe_nvml(gpus, nvml_module, sample_period_s))
        if "rapl" in meters:
            probes.append(probe_rapl(sysfs_root))
        if "estimate" in meters:
            probes.append(probe_estimate(**estimate_options))
    except BaseException:
        for probe in probes:
            if probe.release:
                probe.release()
        raise
    return probes


def _domains(probes: list[Probe]) -> list[str]:
    """Every domain any probe mentions, grouped by family; a family with none appears bare."""
    seen: dict[str, None] = {}
    for probe in probes:
        for domains in probe.offers.values():
            seen.update(dict.fromkeys(domains))
        for _source, domain in probe.reasons:
            seen[domain] = None
    ordered: list[str] = []
    for family in DOMAIN_FAMILIES:
        specific = sorted((d for d in seen if domain_family(d) == family and d != family),
                          key=lambda d: int(d.split(":")[1]) if ":" in d else -1)
        ordered.extend(specific or [family])
    return ordered


def _decide(domain: str, meters: tuple[str, ...], probes: dict[str, Probe]) -> ChainDecision:
    family = domain_family(domain)
    skipped: list[tuple[str, str]] = []
    for source in CHAIN[family]:
        meter = SOURCE_METER[source]
        if meter not in meters:
            skipped.append((source, f"not selected (meters={','.join(meters)})"))
            continue
        probe = probes[meter]
        if domain in probe.offers.get(source, ()):
            return ChainDecision(domain, source, SOURCE_METHOD[source],
                                 probe.details.get(source, source), tuple(skipped))
        why = probe.reasons.get((source, domain)) or probe.reasons.get((source, family))
        skipped.append((source, why or f"does not offer {domain}"))
    return ChainDecision(domain, None, None, None, tuple(skipped))


def choose_sources(meters: Sequence[str] | str | None = None, gpus: Sequence[int] | None = None,
                   sysfs_root: str | Path = "/", nvml_module: Nvml | None = None,
                   sample_period_s: float = 0.1, **estimate_options: Any) -> Chain:
    """Probe the chosen meters and pick the best source per domain (sources not started)."""
    names = check_meters(meters)
    probes = _probe_all(names, gpus, sysfs_root, nvml_module, sample_period_s, estimate_options)
    by_meter = {p.meter: p for p in probes}
    decisions = tuple(_decide(d, names, by_meter) for d in _domains(probes))
    chain = Chain(sources=[], decisions=decisions)
    try:
        for probe in probes:
            used = {s: tuple(d.domain for d in decisions if d.chosen == s)
                    for s in probe.offers}
            for source, domains in used.items():
                if domains and probe.build is not None:
                    chain.sources.append(probe.build(source, domains))
            if probe.release is not None:
                chain.releases.append(probe.release)
    except BaseException:
        for release in chain.releases:
            release()
        raise
    order = [d.domain for d in decisions]
    chain.sources.sort(key=lambda s: min(order.index(d) for d in s.domains))
    return chain
