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
An axis whose environment changes the machine's settings (clocks, power
limit, cpufreq) also has ``changes(values)``: what applying ``values`` would
change and on which device (None: nothing, e.g. only the default). A sweep
runs such values only with ``allow_hardware_settings`` (:func:`require_consent`).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from nrg.errors import ParameterError, choice_error

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
    changes: Callable[[Sequence[Any]], str | None] | None = None


_REGISTRY: dict[str, Axis] = {}

# Modules that register axes when imported; imported lazily so that
# ``import nrg.sweep.axes`` stays cheap and free of torch / NVML imports.
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


def require_consent(axis: Axis, values: Sequence[Any], allowed: bool) -> None:
    """Refuse values of ``axis`` that would change hardware settings unless ``allowed``.

    Called before any work (and before the axis' own ``validate`` talks to the
    device), so a refused sweep leaves the machine and the disk untouched.
    """
    if allowed or axis.changes is None:
        return
    change = axis.changes(list(values))
    if change:
        raise ParameterError(
            f"{axis.name}={list(values)!r} would {change}; nrg changes hardware settings only with "
            "consent and allow_hardware_settings is off (the default). To opt in: "
            "`allow_hardware_settings: true` in the sweep config, or `--allow-hardware-settings` on "
            "`nrg sweep` (every change is restored after each cell). Without it, give only null "
            "(leave as is) to observe the default setting")

