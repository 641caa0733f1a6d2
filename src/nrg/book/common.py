"""Helpers shared by the chapter drivers: parameter parsing, run folders, reference data.

A chapter's parameters arrive three ways: as Python values (a notebook edited
by hand), YAML-parsed (``nrg book run -p``) or as papermill injects them
(``-p isolate false`` gives the *string* ``"false"``, ``-p idle_s nan`` a
float NaN). Every ``as_*`` here reads all three strictly and applies the
shared rule of :mod:`nrg.errors`, so the three ways accept and refuse the
same values.
"""
from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nrg.errors import (
    ParameterError,
    check_device,
    check_int,
    check_number,
    check_writable_dir,
    parse_bool,
)

_INT = re.compile(r"^[+-]?\d+$")


def _yaml(name: str, text: str) -> Any:
    from nrg.sweep import yaml_input  # strict: a key given twice, an oversized value refused

    return yaml_input.load(text, f"{name}={text[:200]!r}")


def as_list(name: str, value: Any) -> list[Any]:
    """A list parameter, given as a list, a scalar, or a YAML/JSON string (papermill -p)."""
    if isinstance(value, str):
        value = _yaml(name, value) if value.strip().startswith("[") else [value]
    if isinstance(value, (list, tuple)):
        if not value:
            raise ParameterError(f"{name} is empty; give at least one value")
        return list(value)
    if value is None:
        raise ParameterError(f"{name}=None is not valid; give a list")
    return [value]


def as_mapping(name: str, value: Any) -> dict[str, Any]:
    """A mapping parameter, given as a dict or a YAML/JSON string."""
    if isinstance(value, str):
        value = _yaml(name, value)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ParameterError(f"{name}={value!r} is not valid; give a mapping such as {{key: value}}")
    return dict(value)


def as_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer parameter in ``[minimum, maximum]`` (a string of digits is read as one)."""
    if isinstance(value, str) and _INT.match(value.strip()):
        value = int(value)
    return check_int(name, value, minimum, maximum)


def as_number(name: str, value: Any, minimum: float = 0.0, inclusive: bool = True) -> float:
    """A finite number ``>= minimum`` (``> minimum`` unless ``inclusive``); inf and NaN refused."""
    if isinstance(value, str):
        value = _yaml(name, value)
    return check_number(name, value, minimum, inclusive)


def as_bool(name: str, value: Any) -> bool:
    """True/False, or a string that spells one (papermill passes ``-p isolate false`` as ``"false"``)."""
    return parse_bool(name, value)


def as_device(name: str, value: Any, allow_auto: bool = False) -> str:
    """``cpu``, ``cuda`` or ``cuda:N`` that exists on this machine (``auto`` when allowed)."""
    if allow_auto and value == "auto":
        return "auto"
    check_device(name, value)
    from nrg.models import check_device_available

    return check_device_available(name, value)


def as_fraction(name: str, value: Any, low: float = 0.0, high: float = 1.0) -> float:
    """A number in [low, high]."""
    if isinstance(value, str):
        value = _yaml(name, value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ParameterError(f"{name}={value!r} is not valid; it must be a number in [{low}, {high}]")
    return float(value)


def runs_root() -> Path:
    """Where chapters keep their measured cells: ``$NRG_RUNS_DIR`` or ``<book>/runs``."""
    env = os.environ.get("NRG_RUNS_DIR")
    if env:
        return Path(env).expanduser().resolve()
    from nrg.book.paths import find_root

    try:
        return find_root() / "runs"
    except ParameterError:
        return Path.cwd().resolve() / "runs"


def run_dir(chapter: str, value: str | None) -> Path:
    """The run folder of a chapter: the ``run_dir`` parameter, else the default (checked writable)."""
    if value is not None and not isinstance(value, (str, Path)):
        raise ParameterError(f"run_dir={value!r} is not valid; give a folder path or None")
    if value:
        return check_writable_dir("run_dir", value).resolve()
    return check_writable_dir("run_dir", runs_root() / chapter)


def reference_root(value: str | None) -> Path | None:
    """The folder of committed GPU reference data, or None if there is none."""
    if value:
        path = Path(value).expanduser()
    else:
        from nrg.book.paths import find_root

        try:
            path = find_root() / "results" / "reference"
        except ParameterError:
            return None
    return path.resolve() if path.is_dir() else None


REFERENCE_BUDGET_S = 480   # what one call of a lent GPU allows (README, "On a GPU machine")


def gpu_slug(name: str) -> str:
    """The folder name of a GPU's reference data: "NVIDIA H200" -> "nvidia-h200"."""
    import re

    slug = re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")
    return slug or "gpu"


def reference_command() -> str:
    """The one command that measures the reference data (all chapters at once) on a GPU machine."""
    return f"nrg reference --budget-s {REFERENCE_BUDGET_S} --out results/reference/<gpu-slug>"


def _is_run(path: Path) -> bool:
    return (path / "manifest.json").is_file()


def reference_runs(root: Path | None, chapter: str) -> dict[str, Path]:
    """Committed runs of ``chapter`` by GPU folder: ``results/reference/<gpu-slug>/<chapter>/``.

    ``nrg reference --out results/reference/<gpu-slug>`` writes exactly that.
    Its ``--archive`` keeps the output folder's own name as the top folder, so
    an archive unpacked *under* ``results/reference/<gpu-slug>/`` gives
    ``<gpu-slug>/<folder>/<chapter>/``: that one extra level is accepted too
    (the run directly under the GPU folder wins when both exist).
    """
    if root is None:
        return {}
    found: dict[str, Path] = {}
    for gpu in sorted(p for p in root.iterdir() if p.is_dir()):
        candidates = [gpu / chapter, *sorted(gpu.glob(f"*/{chapter}"))]
        run = next((c for c in candidates if _is_run(c)), None)
        if run is not None:
            found[gpu.name] = run
    return found


def check_choices(name: str, values: Sequence[Any], valid: Sequence[Any]) -> None:
    """Every value of a list parameter must be one of ``valid``."""
    bad = [v for v in values if v not in valid]
    if bad:
        raise ParameterError(f"{name} has invalid value(s) {bad}; valid: {list(valid)}")


@dataclasses.dataclass(frozen=True)
class Text:
    """Markdown computed from the data, shown as such in the page."""

    text: str

    def _repr_markdown_(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text
