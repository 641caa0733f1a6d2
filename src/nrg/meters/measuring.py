"""``nrg.measure()``: energy of a block or a function in one line, over :meth:`EnergyMonitor.auto`.

Why a shortcut: ``EnergyMonitor.auto()`` with ``window()`` is the full API
(overlapping windows, idle baseline, per-domain decisions); most library
users want "how many joules did this take", as with zeus's
``begin_window``/``end_window`` or codecarbon's tracker. So::

    with nrg.measure("generate") as m:
        model.generate(...)
    print(m.measurement.total_j(), m.measurement.method)

    @nrg.measure("train_step")
    def step(batch): ...
    step(batch); step.last_measurement

Each use opens a monitor, measures one window and closes the monitor (NVML
handles, sampling threads) again; the energy sources and their methods are
those ``nrg meters`` shows. Heavy imports (the meters) happen on first use,
so ``import nrg`` stays light.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import ContextDecorator, ExitStack
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from nrg.meters import EnergyMonitor, Measurement

F = TypeVar("F", bound=Callable[..., Any])


class measure(ContextDecorator):  # used like a function: nrg.measure("name")
    """Measure the energy of a ``with`` block, or of every call of a decorated function.

    Arguments go to :meth:`nrg.meters.EnergyMonitor.auto` (``meters``,
    ``gpus``, ``sync``, ...); ``gpus=[0]`` on a machine without that GPU
    raises :class:`~nrg.errors.ParameterError` instead of measuring the CPU
    alone. ``idle_s`` > 0 first measures idle power for that long, so
    :meth:`Measurement.net_energy_j` subtracts the baseline.
    After the block, :attr:`measurement` holds the
    :class:`~nrg.meters.Measurement`; a decorated function keeps its last one
    in ``function.last_measurement`` (its return value is unchanged).
    """

    def __init__(self, name: str = "measure", *, meters: Sequence[str] | str | None = None,
                 gpus: Sequence[int] | None = None, idle_s: float = 0.0, **monitor_options: Any) -> None:
        from nrg.errors import ParameterError, check_number

        if not isinstance(name, str) or not name:
            raise ParameterError(f"name={name!r} is not valid; give a non-empty window name")
        self.name = name
        self.idle_s = check_number("idle_s", idle_s, 0.0)
        self._options = {"meters": meters, "gpus": gpus, **monitor_options}
        self.measurement: Measurement | None = None
        self.monitor: EnergyMonitor | None = None
        self._stack: ExitStack | None = None

    def __enter__(self) -> measure:
        from nrg.meters import EnergyMonitor

        stack = ExitStack()
        self.monitor = stack.enter_context(EnergyMonitor.auto(**self._options))
        try:
            if self.idle_s > 0:
                self.monitor.measure_idle(self.idle_s)
            self.measurement = None
            self.monitor.begin_window(self.name)
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.monitor is not None and self._stack is not None
        try:
            self.measurement = self.monitor.end_window(self.name)
        finally:
            self._stack.close()
            self._stack = None

    def __call__(self, func: F) -> F:
        """Decorate ``func``: each call is measured; ``func.last_measurement`` holds the latest."""
        @functools.wraps(func)
        def measured(*args: Any, **kwargs: Any) -> object:
            try:
                with self:
                    return func(*args, **kwargs)
            finally:
                measured.last_measurement = self.measurement  # type: ignore[attr-defined]

        measured.last_measurement = None  # type: ignore[attr-defined]
        return measured  # type: ignore[return-value]


def measure_call(func: Callable[..., Any], *args: Any, name: str | None = None,
                 **monitor_options: Any) -> tuple[Any, Measurement]:
    """``func(*args)`` measured: its return value and the :class:`~nrg.meters.Measurement`."""
    with measure(name or str(getattr(func, "__name__", "call")), **monitor_options) as m:
        value = func(*args)
    assert m.measurement is not None
    return value, m.measurement
