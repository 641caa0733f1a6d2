"""What ``nrg reference`` keeps between runs of one folder: ``<out>/reference-state.json``.

Why a file of its own: a lent GPU comes back for a second short turn, and the
second run must start where the first ended -- with the estimator's
corrections measured on that machine (so it does not re-learn them from the
modest priors and leave cells out that fit), and with the cells the budget
stopped listed, so they run first. Which cells were stopped is recorded here
by the run that gave them their time (a failed cell that used all the time it
was allowed), never inferred from an error message. Corrections are kept per
machine (device kind and GPU or CPU name): another machine starts from the
priors again, and says so.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE = "reference-state.json"
VERSION = 1


@dataclass
class State:
    """The folder's memory: the machine the corrections belong to, the corrections, the stopped cells."""

    machine: str
    corrections: dict[str, Any] = field(default_factory=dict)
    stopped: dict[str, dict[str, Any]] = field(default_factory=dict)   # cell id -> part, name, allowed_s
    note: str = ""                                                     # what was (not) taken from the file

    def to_dict(self) -> dict[str, Any]:
        """The JSON written to the folder."""
        return {"version": VERSION, "machine": self.machine, "corrections": self.corrections,
                "stopped": self.stopped}


def machine_key(device: str, gpu_name: str | None = None) -> str:
    """``cuda:<GPU name>`` or ``cpu:<CPU model>``: whose speed the corrections describe."""
    if device.startswith("cuda"):
        if gpu_name is None:
            import torch

            gpu_name = torch.cuda.get_device_name(int(device.split(":")[1]) if ":" in device else 0)
        return f"cuda:{gpu_name}"
    from nrg.meters.estimate import cpu_model_name

    return f"cpu:{cpu_model_name()}"


def read(out_dir: str | Path) -> dict[str, Any] | None:
    """The state file's content, or None when absent or unreadable (a damaged file is not fatal)."""
    path = Path(out_dir) / STATE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == VERSION else None


def load(out_dir: str | Path, machine: str) -> State:
    """The folder's state for ``machine``: stopped cells always, corrections only from the same machine."""
    data = read(out_dir)
    if data is None:
        return State(machine, note="no earlier run in this folder: the estimator starts from its priors")
    stopped = {str(k): dict(v) for k, v in (data.get("stopped") or {}).items() if isinstance(v, dict)}
    if data.get("machine") != machine:
        return State(machine, stopped=stopped, note=f"corrections of {data.get('machine')!r} not used "
                                                     f"on {machine!r}: the estimator starts from its priors")
    found = data.get("corrections")
    corrections: dict[str, Any] = found if isinstance(found, dict) else {}
    cells = len(corrections.get("overheads_s") or [])
    return State(machine, corrections, stopped, note=f"corrections of {cells} cells of earlier runs on this machine")


def save(out_dir: str | Path, state: State) -> None:
    """Write the state atomically (a kill between two cells leaves the old or the new file, whole)."""
    path = Path(out_dir) / STATE
    tmp = path.with_name(f".{STATE}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(state.to_dict(), indent=2))
    tmp.replace(path)
