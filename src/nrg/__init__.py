"""nrg: measure and explain the energy cost of LLM inference and fine-tuning.

The package does the work; the book's notebooks only call it and show results.
Every number it produces records how it was obtained (``counter``, ``integrated``
or ``estimated``), on which hardware, and with how many repeats.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "measure"]


def __getattr__(name: str) -> object:
    """``nrg.measure`` on first use: ``import nrg`` stays light (the meters load then)."""
    if name == "measure":
        from nrg.meters.measuring import measure

        return measure
    raise AttributeError(f"module 'nrg' has no attribute {name!r}")
