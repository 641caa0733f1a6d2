"""Errors raised for bad parameters, before any work starts, and the one rule per shared check.

One exception type so notebooks, the CLI and papermill runs can tell a user
mistake (fix your parameters) from a failure of the machine (recorded per cell).

Each check that several modules need is written once here, so a sweep config,
``nrg book run -p`` and a papermill-injected value are held to the same rule:
:func:`check_device` (syntax of ``cpu`` / ``cuda`` / ``cuda:N``),
:func:`check_int` (whole numbers, never ``True``), :func:`check_number` and
:func:`check_positive` (finite numbers: ``inf`` and ``NaN`` are refused, NaN
would silently turn a timeout off) and :func:`check_bool` / :func:`parse_bool`
(``"false"`` is not ``True``) and :func:`check_writable_dir` (an output
folder, checked before anything is written). Whether a device exists on this
machine is :func:`nrg.models.check_device_available`.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path

DEVICE_CHOICES = "'cpu', 'cuda', 'cuda:N' (N = GPU index)"
_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")
_TRUE = ("true", "yes", "on")
_FALSE = ("false", "no", "off")


class ParameterError(ValueError):
    """A parameter value is not valid; the message names it and the valid choices."""


def choice_error(parameter: str, value: object, valid: Iterable[object]) -> ParameterError:
    """Build the standard message for a value outside a known set of choices."""
    choices = ", ".join(repr(v) for v in valid)
    return ParameterError(f"{parameter}={value!r} is not valid; choose one of: {choices}")


def check_choice(parameter: str, value: object, valid: Iterable[object]) -> None:
    """Raise :class:`ParameterError` unless ``value`` is one of ``valid``."""
    valid = list(valid)
    try:
        found = value in valid
    except TypeError:  # an unhashable value compared with a set-like ``valid``
        found = False
    if not found:
        raise choice_error(parameter, value, valid)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_number(parameter: str, value: object, minimum: float = 0.0, inclusive: bool = True) -> float:
    """A finite number ``>= minimum`` (``> minimum`` unless ``inclusive``), as a float.

    ``inf`` and ``NaN`` are refused: an infinite idle time never ends and a NaN
    compares false with everything, so a NaN timeout would never fire.
    """
    ok = _is_number(value) and math.isfinite(float(value))  # type: ignore[arg-type]
    if ok:
        number = float(value)  # type: ignore[arg-type]
        ok = number >= minimum if inclusive else number > minimum
    if not ok:
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise ParameterError(f"{parameter}={value!r} is not valid; it must be a finite number {bound}")
    return float(value)  # type: ignore[arg-type]


def check_positive(parameter: str, value: object) -> float:
    """Raise :class:`ParameterError` unless ``value`` is a finite number > 0; return it as a float."""
    return check_number(parameter, value, 0.0, inclusive=False)


def check_int(parameter: str, value: object, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number in ``[minimum, maximum]``; ``True``, ``2.0`` and ``"2"`` are refused."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum  # type: ignore[operator]
    if not ok:
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ParameterError(f"{parameter}={value!r} is not valid; it must be an integer {bound}")
    return value  # type: ignore[return-value]


def check_bool(parameter: str, value: object) -> bool:
    """``True`` or ``False`` only: ``bool("false")`` is True, so strings are never truth values here."""
    if not isinstance(value, bool):
        raise ParameterError(f"{parameter}={value!r} is not valid; choose one of: True, False")
    return value


def parse_bool(parameter: str, value: object) -> bool:
    """A bool, or a string that spells one exactly (papermill's ``-p isolate false`` injects ``"false"``).

    Accepted spellings, in any case: true/false, yes/no, on/off (YAML 1.1's
    words); anything else -- numbers included -- is refused rather than guessed.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return check_bool(parameter, value)


def check_device(parameter: str, value: object, allow_auto: bool = False) -> str:
    """The syntax of a device string: ``cpu``, ``cuda`` or ``cuda:N`` (N >= 0).

    ``auto`` (a model sharded over the cell's GPUs) passes where the caller allows it.
    """
    if allow_auto and value == "auto":
        return "auto"
    if not isinstance(value, str) or not _DEVICE_RE.match(value):
        choices = DEVICE_CHOICES + (", 'auto' (sharded over the GPUs)" if allow_auto else "")
        raise ParameterError(f"{parameter}={value!r} is not valid; choose one of: {choices}")
    return value


def device_index(device: str) -> int | None:
    """The GPU index of ``cuda:N`` (``None`` for ``cpu`` and plain ``cuda``)."""
    return int(device.split(":", 1)[1]) if device.startswith("cuda:") else None


def check_writable_dir(parameter: str, value: str | Path) -> Path:
    """An output folder that exists or can be created, and is writable -- before anything is written.

    Refused: a file, a path under a file, a folder this user may not write to
    (tried by creating and removing an empty folder, so root on a read-only
    mount is refused too).
    """
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise ParameterError(f"{parameter}={str(value)!r} is not valid; it is a file, give a folder")
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ParameterError(f"{parameter}={str(value)!r} is not valid; {str(existing)!r} is a file, "
                             "so no folder can be created under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ParameterError(f"{parameter}={str(value)!r} is not valid; {str(existing)!r} is not "
                             "writable by this user")
    _probe_writable(parameter, str(value), existing)
    return path


def _probe_writable(parameter: str, value: str, existing: Path) -> None:
    """Create and remove an empty folder in ``existing``, to be sure something can be written there.

    ``os.access`` says yes to root on a read-only mount or in ``/proc``, where
    the first real write would then fail mid-run.
    """
    import tempfile

    try:
        os.rmdir(tempfile.mkdtemp(prefix=".nrg-write-probe-", dir=existing))
    except OSError as exc:
        raise ParameterError(f"{parameter}={value!r} is not valid; nothing can be created in "
                             f"{str(existing)!r} ({exc.strerror or exc})") from None
