"""Chapter 0's part of ``nrg reference``: the meters, first of all (NVML counter against integrated power samples).

Every other reference number rests on how the GPU's energy is read, so this
part comes first (:data:`PRIORITY`); it measures no sweep but the meters plan
of :mod:`nrg.reference.meters`. The chapter shows its reference data itself
(no key table here).
"""
from __future__ import annotations

from nrg.book.chapters.c00_how_energy_is_measured.driver import CHAPTER
from nrg.reference.meters import MetersPlan
from nrg.reference.parts import Part

#: Place in ``nrg reference``'s priority order (lowest first).
PRIORITY = 0


def reference_part(device: str) -> Part:
    """The meters on ``device`` ("cuda", "cuda:N" or "cpu"): idle power and windows of several lengths."""
    gpu = device.startswith("cuda")
    index = int(device.split(":")[1]) if ":" in device else 0
    meters = (MetersPlan(device, idle_s=3.0, windows_s=(0.5, 1.0, 2.0, 4.0), poll_s=2.0, gpu_index=index) if gpu
              else MetersPlan("cpu", idle_s=0.5, windows_s=(0.3, 0.6), poll_s=0.5))
    return Part("meters", CHAPTER, "NVML counter vs power sampling, update period, idle power", meters=meters)
