"""Configuration and failure types shared by the GPU and CPU halves of :mod:`nrg.dvfs`.

Why a module-level configuration: the runner reaches the DVFS axes through
``nrg.sweep.axes`` with only a value (``environment(1410)``), so the GPU index, the
NVML module and the sysfs root must come from somewhere the notebook or a test
can set once -- :func:`configure` -- rather than from arguments.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError

if TYPE_CHECKING:
    from nrg.meters.nvml import Nvml

MARKER_NAME = "dvfs-applied.json"
PERMISSION_HINT = "needs root or `nvidia-smi -acp UNRESTRICTED`"
CONSENT_KEY = "allow_hardware_settings"
HOW_TO_CONSENT = ("to opt in: `allow_hardware_settings: true` in the sweep config, "
                  "`--allow-hardware-settings` on the command line (`nrg sweep`, `nrg dvfs`), or "
                  "`allow_hardware_settings=True` as a chapter parameter")


class DvfsError(RuntimeError):
    """A DVFS setting could not be read, applied or restored on this machine."""


class DvfsUnavailableError(DvfsError):
    """No device to act on: no NVML library / driver / GPU, or no cpufreq directory."""


class DvfsPermissionError(DvfsError, PermissionError):
    """The device exists but this process may not change the setting."""


class DvfsUnsupportedError(DvfsError):
    """The device or driver does not support the setting (or a hypervisor blocks it)."""


@dataclass(frozen=True)
class DvfsConfig:
    """Where DVFS acts: which GPU, through which NVML module, on which sysfs tree."""

    gpu_index: int = 0
    nvml_module: Nvml | None = None          # None: ``import pynvml`` when first needed
    sysfs_root: Path = Path("/")
    marker_path: Path | None = None  # None: $NRG_STATE_DIR or ~/.cache/nrg
    sample_interval_s: float = 0.1


_CONFIG = DvfsConfig()


def configure(gpu_index: int = 0, nvml_module: Nvml | None = None, sysfs_root: str | Path = "/",
              marker_path: str | Path | None = None, sample_interval_s: float = 0.1) -> DvfsConfig:
    """Set the target of every later DVFS call; calling it with no argument restores defaults."""
    if isinstance(gpu_index, bool) or not isinstance(gpu_index, int) or gpu_index < 0:
        raise ParameterError(f"gpu_index={gpu_index!r} is not valid; it must be an integer >= 0")
    if not isinstance(sample_interval_s, (int, float)) or not sample_interval_s > 0:
        raise ParameterError(f"sample_interval_s={sample_interval_s!r} is not valid; it must be > 0")
    global _CONFIG
    _CONFIG = DvfsConfig(gpu_index=gpu_index, nvml_module=nvml_module, sysfs_root=Path(sysfs_root),
                         marker_path=Path(marker_path) if marker_path is not None else None,
                         sample_interval_s=float(sample_interval_s))
    return _CONFIG


def settings() -> DvfsConfig:
    """The configuration in force."""
    return _CONFIG


def default_marker_path() -> Path:
    """``$NRG_STATE_DIR/dvfs-applied.json``, else ``~/.cache/nrg/dvfs-applied.json``."""
    state_dir = os.environ.get("NRG_STATE_DIR")
    base = Path(state_dir) if state_dir else Path.home() / ".cache" / "nrg"
    return base / MARKER_NAME


def marker_path(path: str | Path | None = None) -> Path:
    """The marker file to use: the argument, else the configured one, else the default."""
    if path is not None:
        return Path(path)
    return _CONFIG.marker_path or default_marker_path()


def as_consent(value: Any, parameter: str = CONSENT_KEY) -> bool:
    """``value`` as a consent flag: True/False (or the strings true/false from papermill -p).

    Why strict: changing a shared machine's clocks is not something a typo such
    as ``"yes please"`` or ``1`` should switch on; anything else is refused.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ParameterError(f"{parameter}={value!r} is not valid; choose one of: True, False")


def consent_error(change: str) -> ParameterError:
    """The refusal when ``change`` (what, on which device) was asked without consent.

    Why a refusal rather than a warning: on a shared server a locked clock or a
    lowered power limit slows everyone's work, and the GPU rules of a lent
    machine forbid it; nrg changes hardware settings only when the user opted in.
    """
    return ParameterError(f"allow_hardware_settings is off (the default), so nrg will not {change}; "
                          f"{HOW_TO_CONSENT} (every change is restored afterwards)")


def load_nvml(nvml_module: Nvml | None = None) -> Nvml:
    """The NVML module: the one given, the configured one, or ``pynvml`` (imported lazily)."""
    from nrg.meters.nvml import load_nvml as load_nvml_module  # the one loader of the package

    try:
        return load_nvml_module(nvml_module if nvml_module is not None else _CONFIG.nvml_module)
    except ImportError as exc:  # pragma: no cover - nvidia-ml-py is a dependency
        raise DvfsUnavailableError("no NVML: the package nvidia-ml-py is not installed") from exc
