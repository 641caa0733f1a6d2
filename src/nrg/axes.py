"""Sweep axes beyond the built-in ones, as data.

The runner knows the built-in factors (model, task, batch size, lengths, dtype).
Other factors -- GPU clock, power limit, quantization, pruning -- are registered
here by the module that owns them, so adding an axis never edits the runner.

An axis has two optional hooks:

* ``environment(value)`` -- a context manager entered around a cell's measured
  work (e.g. lock a GPU clock); it yields a callable returning extra observed
  columns (e.g. the clock actually seen), read after the work.
* ``transform(loaded_model, value)`` -- applied once to a freshly loaded model
  before warm-up (e.g. quantize or prune); returns the model to use and extra
  columns (e.g. sparsity reached).

``validate(values)`` runs before any work starts and raises
:class:`nrg.errors.ParameterError` naming the axis and the valid values.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from nrg.errors import choice_error

ObservedColumns = Callable[[], dict[str, Any]]


@dataclass(frozen=True)
class Axis:
    """One registered sweep factor; ``default`` is the value meaning 'leave as is'."""

    name: str
    default: Any
    validate: Callable[[Sequence[Any]], None]
    environment: Callable[[Any], AbstractContextManager[ObservedColumns]] | None = None
    transform: Callable[[Any, Any], tuple[Any, dict[str, Any]]] | None = None
    doc: str = ""


_REGISTRY: dict[str, Axis] = {}

# Modules that register axes when imported; imported lazily so that
# ``import nrg.axes`` stays cheap and free of torch / NVML imports.
PROVIDERS: tuple[str, ...] = ("nrg.dvfs", "nrg.compress")


def register(axis: Axis) -> Axis:
    """Add ``axis`` to the registry (re-registering the same name replaces it)."""
    _REGISTRY[axis.name] = axis
    return axis


def _load_providers() -> None:
    for module in PROVIDERS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:  # provider not written yet / optional
            if exc.name != module:
                raise


def registered() -> dict[str, Axis]:
    """All registered axes by name."""
    _load_providers()
    return dict(_REGISTRY)


def get(name: str) -> Axis:
    """The axis called ``name``; an unknown name lists the known ones."""
    axes = registered()
    if name not in axes:
        raise choice_error("axis", name, sorted(axes))
    return axes[name]

