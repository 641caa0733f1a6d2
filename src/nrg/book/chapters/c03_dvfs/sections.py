"""Chapter 3's power-limit and CPU-frequency sections: sweep where allowed and consented, else say why not.

The chapter's main sweep locks GPU clocks. Two other settings are axes of
``nrg sweep`` too: the GPU board power limit (``power_limit_w``) and a cap on
every CPU's cpufreq ``scaling_max_freq`` (``cpu_max_freq_khz``). Each gets a
section of its own that sweeps it only when this machine has the hardware, the
process may write the setting, the work can feel it and the user consented
(``allow_hardware_settings=True``). Otherwise the section names every reason
that applies -- no GPU, no cpufreq, no permission, no consent, no values --
and the command that would run it, and nothing is written to the hardware.
What is measured goes through the same
:func:`nrg.book.chapters.c03_dvfs.analysis.analyse` as the clock sweep.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nrg.book import sweeps
from nrg.book.chapters.c03_dvfs.driver import CHAPTER, power_limits
from nrg.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd
    from IPython.display import Markdown

    from nrg.book.chapters.c03_dvfs.params import Params

RUN = f"nrg book run {CHAPTER} out.ipynb"
CONSENT = "`allow_hardware_settings=False` (the default): nrg changes no hardware setting without consent"


@dataclass(frozen=True)
class Section:
    """What one section sweeps (``values``; None = the default setting) or why it does not (``reasons``)."""

    title: str
    axis: str
    values: tuple[Any, ...]
    reasons: tuple[str, ...]
    command: str
    unit: str

    @property
    def runs(self) -> bool:
        """Whether the section measures: a setting other than the default is swept."""
        return not self.reasons and any(v is not None for v in self.values)

    def text(self) -> str:
        """Markdown: what is swept, or every reason it is not and the command that would sweep it."""
        if self.runs:
            shown = ", ".join("the default" if v is None else f"{v} {self.unit}" for v in self.values)
            return f"**{self.title} is swept on this machine:** {shown}; each setting is restored after its cell."
        why = "; ".join(self.reasons)
        return (f"**{self.title} was not swept:** {why}. Nothing was changed on this machine. "
                f"Where it can run: `{self.command}`")

    def _repr_markdown_(self) -> str:
        return self.text()


def power_limit(params: Params, probe: Any) -> Section:
    """The power-limit section's plan from the capability ``probe``; every reason it cannot run."""
    g = probe.gpu
    command = f"{RUN} -p allow_hardware_settings True -p device cuda -p power_limits_w '[250, 200, 150]'"
    default = (None,) if params.include_default_clock else ()
    if not g.available:
        why = g.reason if "GPU" in g.reason else f"no usable GPU: {g.reason}"
        return Section("The GPU power limit", "power_limit_w", (), (why,), command, "W")
    reasons = []
    if params.device not in ("cuda", "cuda:0"):
        reasons.append(f"`device={params.device!r}`: a GPU power limit cannot change work that does not run "
                       "on GPU 0")
    if not params.allow_hardware_settings:
        reasons.append(CONSENT)
    elif not g.can_set_power_limit:
        reasons.append(f"this process may not set the power limit of {g.name} ({g.permission_reason})")
    limits, why = power_limits(params, g)
    reasons += why
    return Section("The GPU power limit", "power_limit_w", default + tuple(limits), tuple(reasons), command, "W")


def _listed_khz() -> tuple[int, ...]:
    """scaling_available_frequencies where the cpufreq driver lists them (else empty)."""
    from nrg.dvfs import cpu
    from nrg.dvfs.common import DvfsError

    try:
        return cpu.cpufreq_info().available_khz
    except DvfsError:
        return ()


def _freqs_khz(params: Params, cpu: Any) -> list[int]:
    """The CPU caps to sweep (``auto``: ``n_clocks`` over cpuinfo's range, on listed frequencies if any)."""
    wanted = params.cpu_max_freqs_khz
    lo, hi = cpu.min_khz, cpu.max_khz
    if wanted is None:
        return []
    if wanted == "auto":
        n = params.n_clocks
        levels = [lo + i * (hi - lo) / (n - 1) for i in range(n)]
        listed = [f for f in _listed_khz() if lo <= f <= hi]
        if listed:  # the driver accepts only these: the nearest to each level
            return sorted({min(listed, key=lambda f: abs(f - x)) for x in levels}, reverse=True)
        return sorted({int(round(x, -3)) for x in levels}, reverse=True)
    bad = [f for f in wanted if not lo <= f <= hi]
    if bad:
        raise ParameterError(f"cpu_max_freqs_khz has value(s) {bad} outside this CPU's range; "
                             f"valid: whole kHz from {lo} to {hi}, or 'auto'")
    return list(wanted)


def cpu_frequency(params: Params, probe: Any) -> Section:
    """The CPU-frequency section's plan from the capability ``probe``; every reason it cannot run."""
    c = probe.cpu
    command = f"{RUN} -p allow_hardware_settings True -p cpu_max_freqs_khz auto"
    default = (None,) if params.include_default_clock else ()
    if not c.available:
        detail = c.reason.removeprefix("no cpufreq: ")
        return Section("The CPU frequency cap", "cpu_max_freq_khz", (), (f"this machine exposes no cpufreq: {detail}",),
                       command, "kHz")
    reasons = []
    if params.cpu_max_freqs_khz is None:
        reasons.append(f"no CPU frequencies were given (`cpu_max_freqs_khz=None`); these CPUs run "
                       f"{c.min_khz}–{c.max_khz} kHz: give a list, or `auto`")
    if not params.allow_hardware_settings:
        reasons.append(CONSENT)
    if not c.writable:
        reasons.append(f"this process may not write cpufreq ({c.reason}; run as root)")
    freqs = _freqs_khz(params, c) if params.cpu_max_freqs_khz is not None else []
    return Section("The CPU frequency cap", "cpu_max_freq_khz", default + tuple(freqs), tuple(reasons), command,
                   "kHz")


def plan(params: Params, probe: Any) -> tuple[Section, Section]:
    """Both sections' plans (power limit, CPU frequency); writes nothing."""
    return power_limit(params, probe), cpu_frequency(params, probe)


def measure(params: Params, section: Section, progress: bool = True) -> pd.DataFrame | None:
    """Run (or reuse) the section's sweep; None when it does not run (its text says why)."""
    if not section.runs:
        return None
    config = params.sweep_config(section.axis, section.values)
    assert params.run_dir is not None   # resolved when the parameters were built
    checked = sweeps.check_variant(config, params.checked[0])   # the base config was checked with params
    return sweeps.measure_checked([checked], params.run_dir, progress=progress)


def analyse(params: Params, section: Section, progress: bool = True) -> dict[str, dict[str, Any]]:
    """The section's live sweep analysed like the clock sweep ({} when it does not run)."""
    from nrg.book.chapters.c03_dvfs import analysis as dvfs_analysis

    rows = measure(params, section, progress=progress)
    return dvfs_analysis.analyse_all(rows, {}, alpha=params.alpha) if rows is not None else {}


SHOWN: tuple[tuple[str, str | None], ...] = (
    ("findings", None), ("observed", None), ("figures", "energy_j"), ("figures", "time_s"),
    ("figures", "avg_power_w"), ("summary", None), ("optimal", None), ("anova", None), ("anova_findings", None),
)


def show(params: Params, section: Section, keys: Sequence[tuple[str, str | None]] = SHOWN) -> None:
    """Display the section: why not, or what is swept, then energy, time and power per setting and the ANOVA."""
    from IPython.display import Markdown, display

    from nrg.book.chapters.c03_dvfs import analysis as dvfs_analysis

    display(Markdown(section.text()))
    analyses = analyse(params, section)
    for key, figure in keys if analyses else ():
        dvfs_analysis.show(analyses, key, figure)


def not_measured(the_plan: Any, sections: Sequence[Section]) -> Markdown | None:
    """The box that opens chapter 3 when a setting could not be swept: what was not measured, and why.

    Without consent or hardware the chapter measures the default setting only;
    a reader must learn that before any number, or the decode shares and model
    differences that follow read as DVFS results. Returns Markdown (a MyST
    admonition), or None when every setting was swept.
    """
    from IPython.display import Markdown

    from nrg.book.reference_section import gpu_owner_text

    items = []
    if not the_plan.sweeps:
        reason = the_plan.reason
        items.append(reason if "not swept" in reason else f"**GPU clocks were not swept.** {reason}")
    items += [s.text() for s in sections if not s.runs]
    if not items:
        return None
    body = "\n".join(f"- {item}" for item in items)
    return Markdown(":::{admonition} What could not be measured here, and why\n:class: warning\n\n"
                    "This chapter's question -- what a lower clock or power limit saves -- needs a setting "
                    "that was changed; " + ("none was" if not the_plan.sweeps else "some were not")
                    + ". The numbers below are for the settings as they were, so they compare models and "
                    "phases, not clocks.\n\n" + body + "\n\n" + gpu_owner_text() + "\n:::\n")


def show_swept(analyses: Mapping[str, Mapping[str, Any]], key: str, figure: str | None = None) -> None:
    """Like :func:`nrg.book.chapters.c03_dvfs.analysis.show`, for items that compare settings.

    An analysis that measured one setting only gets one line instead of an
    empty figure, a figure of a factor with one level, or an empty table.
    """
    from IPython.display import Markdown, display

    from nrg.book.chapters.c03_dvfs import analysis as dvfs_analysis

    for label, result in analyses.items():
        rows, axis = result.get("rows"), result.get("axis")
        levels = rows[axis].nunique(dropna=False) if rows is not None and axis in getattr(rows, "columns", ()) else 0
        if levels < 2:
            display(Markdown(f"**{label}**: one setting only, so there is nothing to compare here (see *What "
                             "could not be measured here* at the top)."))
        else:
            dvfs_analysis.show({label: result}, key, figure)
    if not analyses:
        dvfs_analysis.show(analyses, key, figure)
