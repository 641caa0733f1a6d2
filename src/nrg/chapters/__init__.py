"""Chapter drivers: what each notebook's parameters mean, checked before any work.

A notebook's ``parameters`` cell declares plain values; papermill's ``-p`` passes
lists and mappings as strings, so every driver reads them through
:func:`nrg.chapters.common.as_list` / ``as_mapping``.  :func:`validate` is what
``nrg book`` calls before executing a chapter, and what each notebook calls
first, so a bad value fails before any measurement and nothing is written.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from nrg.errors import choice_error

# notebook stem -> driver module (under nrg.chapters)
DRIVERS: dict[str, str] = {
    "00_how_energy_is_measured": "measurement",
    "01_model_comparison": "model_comparison",
    "02_sequence_length": "sequence_length",
    "03_dvfs": "dvfs",
    "04_network_tickets": "tickets",
}


def driver(chapter: str) -> Any:
    """The driver module of ``chapter``."""
    if chapter not in DRIVERS:
        raise choice_error("chapter", chapter, sorted(DRIVERS))
    return importlib.import_module(f"nrg.chapters.{DRIVERS[chapter]}")


def validate(chapter: str, params: Mapping[str, Any]) -> None:
    """Raise :class:`nrg.errors.ParameterError` if any value of ``params`` is bad."""
    driver(chapter).check(**dict(params))
