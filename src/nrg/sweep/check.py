"""Everything that can be wrong with a sweep, found before any work or file write.

:func:`nrg.sweep.parse_config` checks keys, types and ranges without heavy
imports; this module checks the config against the machine: its meters, each
extra axis' values (and the consent to change hardware settings), and -- through
the workload registry, the same way for every workload -- the workload's own
check of its models, tasks and data (the generation workload's is
:mod:`nrg.workloads.generation_check`).
"""
from __future__ import annotations

from nrg.errors import ParameterError
from nrg.sweep.config import Cell, SweepConfig
from nrg.workloads import registry as workloads


def check(cfg: SweepConfig) -> list[Cell]:
    """Raise :class:`~nrg.errors.ParameterError` on the first problem; return the grid's cells."""
    from nrg.meters.chain import check_meters

    check_meters(cfg.settings.meters)
    check_axes(cfg)
    workloads.check(cfg)
    return cfg.cells()


def check_axes(cfg: SweepConfig) -> None:
    """Each extra axis' values and the consent to change them (what a config adds to one already checked)."""
    from nrg.dvfs.mapping import GPU_GLOBAL_AXES
    from nrg.sweep import axes

    for name, values in cfg.axes:  # every consent first: validating may read the device
        axes.require_consent(axes.get(name), values, cfg.allow_hardware_settings)
    for name, values in cfg.axes:
        if cfg.settings.device == "auto" and name in GPU_GLOBAL_AXES and any(v is not None for v in values):
            raise ParameterError(f"{name}={list(values)!r} is not valid with device='auto': clocks and "
                                 "power limits are set on one GPU, a sharded model runs on several; "
                                 "use device='cuda' (or None values)")
        axes.get(name).validate(list(values))
