"""Errors raised for bad parameters, before any work starts.

One exception type so notebooks, the CLI and papermill runs can tell a user
mistake (fix your parameters) from a failure of the machine (recorded per cell).
"""
from __future__ import annotations

from collections.abc import Iterable


class ParameterError(ValueError):
    """A parameter value is not valid; the message names it and the valid choices."""


def choice_error(parameter: str, value: object, valid: Iterable[object]) -> ParameterError:
    """Build the standard message for a value outside a known set of choices."""
    choices = ", ".join(repr(v) for v in valid)
    return ParameterError(f"{parameter}={value!r} is not valid; choose one of: {choices}")


def check_choice(parameter: str, value: object, valid: Iterable[object]) -> None:
    """Raise :class:`ParameterError` unless ``value`` is one of ``valid``."""
    valid = list(valid)
    if value not in valid:
        raise choice_error(parameter, value, valid)


def check_positive(parameter: str, value: float) -> None:
    """Raise :class:`ParameterError` unless ``value`` is a number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ParameterError(f"{parameter}={value!r} is not valid; it must be a number > 0")
