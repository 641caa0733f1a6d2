"""Chapter 3's GPU reference: the default clock, observed (``nrg reference`` never sets one), and the clock sweep.

:func:`reference_part` is what ``nrg reference`` measures for the chapter;
:func:`key_table` is what the chapter's reference section shows of it. The
clocks themselves are swept only by :data:`CLOCK_SWEEP_COMMAND`, which a GPU's
owner runs with consent: :data:`OWNER_CONSENT` puts it, and what it changes,
into every chapter's text for GPU owners (:func:`nrg.book.reference_section.gpu_owner_text`).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nrg.book.chapters.c03_dvfs.driver import CHAPTER
from nrg.book.reference_section import ok_phase
from nrg.errors import ParameterError
from nrg.reference.parts import Part, config

if TYPE_CHECKING:
    import pandas as pd

#: Place in ``nrg reference``'s priority order (lowest first).
PRIORITY = 4

#: The chapter 3 clock sweep a consenting GPU owner runs: the gpu-paper profile's paper models over the
#: GPU's supported clocks (``gpu_clocks_mhz: auto``), written where the chapters read reference data.
CLOCK_SWEEP_COMMAND = ("nrg book run 03_dvfs dvfs-run.ipynb --profile gpu-paper -p allow_hardware_settings true "
                       "-p run_dir results/reference/<gpu-slug>/03_dvfs")
#: The consented command and the sentence that offers it to a GPU's owner.
OWNER_CONSENT = (CLOCK_SWEEP_COMMAND, "Only if the GPU's owner agrees to its clocks being locked (each restored "
                 f"after its cell): `{CLOCK_SWEEP_COMMAND}` sweeps the GPU's supported clocks with the paper's "
                 "models into the same folder.")


def reference_part(device: str) -> Part:
    """Three paper models at the clock the GPU chose by itself (one small model on a CPU)."""
    gpu = device.startswith("cuda")
    return Part("dvfs", CHAPTER, "the default clock, observed (no clock is ever set)",
                configs=(config(f"{CHAPTER}-default", CHAPTER, device,
                                ["gpt-neo-2.7b", "gpt-j-6b", "mistral-7b-v0.1"] if gpu else ["gpt-neo-2.7b"],
                                input_tokens=[256] if gpu else [16], output_tokens=[128] if gpu else [8]),))



def _setting(value: Any, unit: str) -> str:
    """A setting's label: its value with its unit, or 'default' where nothing was set."""
    import pandas as pd

    return "default" if pd.isna(value) else f"{float(value):g} {unit}"


def key_table(rows: pd.DataFrame, params: Mapping[str, Any]) -> list[Any]:
    """Per model and setting (clock, else power limit): energy per token, time, power, observed clock."""
    gen = ok_phase(rows, "generate")
    if gen.empty:
        raise ParameterError("no successful generation rows")
    swept = {a: a in gen.columns and bool(gen[a].notna().any()) for a in ("gpu_clock_mhz", "power_limit_w")}
    axis, unit = ("power_limit_w", "W") if swept["power_limit_w"] and not swept["gpu_clock_mhz"] \
        else ("gpu_clock_mhz", "MHz")
    values = gen[axis] if axis in gen.columns else [None] * len(gen)
    gen = gen.assign(setting=[_setting(v, unit) for v in values])
    measures = [c for c in ("energy_per_token_j", "time_s", "avg_power_w", "gpu_clock_mhz_observed_mean",
                            "gpu_power_w_observed_mean") if c in gen.columns]
    return [gen.groupby(["model", "setting"], sort=True)[measures].mean()]
