"""The reference data that codecarbon ships in its wheel, read as files (codecarbon is not imported).

Why files, not codecarbon's API: importing codecarbon loads its tracker, pandas and
a logger at start-up, and its lookups are private methods. The data files are
the maintained part (grid intensity per country and per cloud region, rated
power per CPU model); nrg reads them directly and says which codecarbon release
they came from.
"""
from __future__ import annotations

import csv
import importlib.util
import json
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

#: The files nrg reads, relative to the codecarbon package folder.
ENERGY_MIX = "data/private_infra/global_energy_mix.json"
CLOUD_IMPACT = "data/cloud/impact.csv"
INTENSITY_PER_SOURCE = "data/private_infra/carbon_intensity_per_source.json"
CPU_POWER = "data/hardware/cpu_power.csv"


class CodecarbonDataMissing(RuntimeError):
    """codecarbon (a dependency of an installed nrg, absent on the lent GPU image) is not here: no data files.

    Meters catch it and fall back to the constants nrg carries; carbon figures cannot.
    """


def short_reason(exc: CodecarbonDataMissing) -> str:
    """The first sentence of the error, for a source string (the hint is for error messages)."""
    return str(exc).split(". ", 1)[0]


@lru_cache(maxsize=1)
def package_dir() -> Path:
    """The installed codecarbon package folder, found without importing codecarbon."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        raise CodecarbonDataMissing(
            "codecarbon is not installed (the lent GPU image lacks it), so its data files cannot be read. "
            "Energy needs none of them (the CPU and DRAM estimates fall back to constants nrg carries); "
            "grid-intensity figures do: compute them on a machine where the project is installed "
            "(make install, or pip install -c constraints.txt codecarbon)")
    return Path(next(iter(spec.submodule_search_locations)))


def data_file(relative: str) -> Path:
    """Path of one of codecarbon's data files (see the constants above)."""
    path = package_dir() / relative
    if not path.is_file():
        raise CodecarbonDataMissing(f"codecarbon {version()} has no {relative} (looked in {path})")
    return path


@lru_cache(maxsize=1)
def version() -> str:
    """The installed codecarbon's version, for the source strings of every figure taken from it."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("codecarbon")
    except PackageNotFoundError:
        return "unknown"


def cite(relative: str) -> str:
    """``"codecarbon 3.3.2 data/..."``: how a figure's source names the file it came from."""
    return f"codecarbon {version()} {relative}"


@cache
def read_json(relative: str) -> dict[str, Any]:
    """One of codecarbon's JSON files (each is an object at the top), parsed once per process."""
    data: dict[str, Any] = json.loads(data_file(relative).read_text(encoding="utf-8"))
    return data


@cache
def read_csv(relative: str) -> tuple[dict[str, str], ...]:
    """One of codecarbon's CSV files as rows of strings (its files start with a UTF-8 BOM)."""
    with data_file(relative).open(encoding="utf-8-sig", newline="") as handle:
        return tuple(dict(row) for row in csv.DictReader(handle))
