"""The run manifest: run_id, the configs a folder has seen, one entry per sweep session.

Why each rule:

* read-modify-write happens under the run's lock (:func:`nrg.sweep.runfolder.files.locked`) and
  the file is replaced atomically: without the lock, concurrent sessions lost
  142 of 200 records in a race test.
* a missing or unreadable manifest is rebuilt from the cell files, with the
  ``run_id`` their rows carry -- a fresh run_id would disagree with the data.
  An unreadable one is kept beside it (``manifest.json.corrupt-<time>``).
* configs are a list (``config_id``, ``first_seen``, ``config``): a folder
  reused with a changed config keeps the record of the earlier one (its cells
  are still there), instead of overwriting it.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import socket
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nrg.sweep.runfolder.files import CELLS, MANIFEST, DamagedCellError, atomic_write_bytes, cell_files, read_cell

VERSION = 2


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def config_id(config: Mapping[str, Any]) -> str:
    """A stable short hash of a config mapping (same config, same id)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ManifestError(ValueError):
    """The manifest exists but is not a manifest nrg can use."""


def parse(text: str) -> dict[str, Any]:
    """A manifest from its JSON text; :class:`ManifestError` when it is not one."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ManifestError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("run_id"), str) or not data["run_id"]:
        raise ManifestError("no run_id")
    return data


def read(path: Path) -> dict[str, Any] | None:
    """The manifest at ``path``; None when missing or unreadable (with a warning naming it)."""
    try:
        return parse(path.read_text(errors="replace"))
    except FileNotFoundError:
        return None
    except (ManifestError, OSError) as exc:
        warnings.warn(f"nrg: manifest {path} is unreadable ({exc}); a sweep rebuilds it", stacklevel=3)
        return None


def _run_id_of_rows(run_dir: Path) -> str | None:
    """The run_id most rows of the folder carry (None without usable cells)."""
    counts: collections.Counter[str] = collections.Counter()
    for path in cell_files(run_dir / CELLS):
        try:
            table = read_cell(path, columns=["run_id"])
        except (DamagedCellError, FileNotFoundError, PermissionError):
            continue
        if "run_id" in table.column_names:
            counts.update(str(v) for v in table.column("run_id").to_pylist() if v)
    if not counts:
        return None
    best = max(counts.values())
    return sorted(k for k, v in counts.items() if v == best)[0]


def _load_or_rebuild(run_dir: Path, name: str) -> dict[str, Any]:
    """The manifest to update: the file, or one rebuilt from the cells (caller holds the lock)."""
    path = run_dir / MANIFEST
    try:
        return parse(path.read_text(errors="replace"))
    except FileNotFoundError:
        reason = "missing"
    except (ManifestError, OSError) as exc:
        reason = f"unreadable ({exc})"
        os.replace(path, path.with_name(f"{MANIFEST}.corrupt-{_now()}"))
    run_id = _run_id_of_rows(run_dir)
    if run_id is None:
        return {"version": VERSION, "run_id": f"{name}-{_now()}", "created_at": _now()}
    warnings.warn(f"nrg: manifest of {run_dir} was {reason}; rebuilt from the cell files "
                  f"with their run_id {run_id!r}", stacklevel=4)
    return {"version": VERSION, "run_id": run_id, "rebuilt": [{"at": _now(), "reason": reason}]}


def _configs(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The config list; a manifest of version 1 had a single overwritten ``config``."""
    configs = [dict(c) for c in manifest.get("configs", [])]
    old = manifest.get("config")
    if not configs and isinstance(old, Mapping):
        first = (manifest.get("sessions") or [{}])[0].get("started_at")
        configs.append({"config_id": config_id(old), "first_seen": first, "config": dict(old)})
    return configs


def open_session(run_dir: Path, name: str, chapter: str, config: Mapping[str, Any],
                 provenance: Mapping[str, Any]) -> str:
    """Add this session (and its config, when new) to the manifest; the run_id (caller holds the lock)."""
    manifest = _load_or_rebuild(run_dir, name)
    now = _now()
    cid = config_id(config)
    configs = _configs(manifest)
    if cid not in {c.get("config_id") for c in configs}:
        configs.append({"config_id": cid, "first_seen": now, "config": dict(config)})
    sessions = list(manifest.get("sessions", []))
    sessions.append({"started_at": now, "config_id": cid, "pid": os.getpid(),
                     "hostname": socket.gethostname(), "provenance": dict(provenance)})
    manifest.pop("config", None)
    manifest.update({"version": VERSION, "configs": configs, "sessions": sessions})
    manifest.setdefault("name", name)
    manifest.setdefault("chapter", chapter)
    data = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
    atomic_write_bytes(run_dir / MANIFEST, data)
    return str(manifest["run_id"])
