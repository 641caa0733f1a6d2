"""The report of ``nrg reference``: ``summary.json`` / ``summary.md``, and the archive of the folder.

Why apart from the run: the summary is what someone reads after a lent GPU
is gone -- what ran, what was reused, what did not run and why, how far the
estimator's corrections came -- and the archive is the one file that comes
back from the machine, so it must fit the limit on what comes back.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError

if TYPE_CHECKING:
    from nrg.reference.estimate import Estimator
    from nrg.reference.parts import Part
    from nrg.reference.run import Budget, CellRecord

#: A cell's result when the budget stopped it (it failed having used all the time it was allowed).
STOPPED = "stopped"
ARCHIVE_LIMIT_BYTES = 16 * 2**20


def write_summary(out_dir: Path, params: dict[str, Any], budget: Budget, estimator: Estimator,
                  planned: list[Part], records: list[CellRecord]) -> dict[str, Any]:
    """``summary.json`` and ``summary.md``: what ran, what was reused, what did not and why."""
    from nrg.meters.hardware import provenance

    summary = {
        "device": params["device"], "budget_s": params["budget_s"], "margin_s": params["margin_s"],
        "elapsed_s": budget.elapsed_s(), "settings_changed": "none: clocks, power limit and cpufreq observed only",
        "parts": [{"name": p.name, "chapter": p.chapter, "what": p.what} for p in planned],
        "retry_failed": params.get("retry_failed", False), "one_per_part": params.get("one_per_part", False),
        "chapters": params.get("chapters"),
        "cells": [asdict(r) for r in records],
        "estimator": {**estimator.to_dict(), "from": params.get("estimator_from", "")},
        "provenance": provenance(),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out_dir / "summary.md").write_text(summary_text(summary))
    return summary


def summary_text(summary: dict[str, Any]) -> str:
    """The summary as Markdown: counts per part, then every cell that did not run and why."""
    lines = [f"# nrg reference on {summary['device']}: {summary['elapsed_s']:.0f} s of "
             f"{summary['budget_s']:.0f} s (margin {summary['margin_s']:.0f} s)", "",
             f"Settings changed: {summary['settings_changed']}.", ""]
    estimator = summary.get("estimator") or {}
    if estimator.get("from"):
        lines += [f"Estimator: {estimator.get('cells_observed', 0)} cells observed in all ({estimator['from']}).", ""]
    if summary.get("chapters"):
        lines += [f"Only the parts of {', '.join(summary['chapters'])} (`--chapters`); the other chapters' "
                  "were not planned.", ""]
    for part in summary["parts"]:
        cells = [c for c in summary["cells"] if c["part"] == part["name"]]
        counts: dict[str, int] = {}
        for c in cells:
            key = c["decision"] + (f" ({c['result']})" if c["result"] else "")
            counts[key] = counts.get(key, 0) + 1
        listed = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing planned"
        lines.append(f"- **{part['chapter']}** ({part['what']}): {listed}")
    missing = [c for c in summary["cells"] if c["decision"] == "not run" or c["result"] in ("failed", STOPPED)]
    if missing:
        lines += ["", "Not measured, and why:", ""]
        lines += [f"- {c['part']}: {c['name']}: {c['reason']}" for c in missing]
    return "\n".join(lines) + "\n"


def archive(out_dir: str | Path, path: str | Path, limit_bytes: int = ARCHIVE_LIMIT_BYTES) -> dict[str, Any]:
    """Pack ``out_dir`` into one ``.tar.gz`` of at most ``limit_bytes``; cell logs go first if it is too big."""
    import tarfile

    source, target = Path(out_dir), Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    for keep_logs in (True, False):
        with tarfile.open(tmp, "w:gz") as tar:
            for item in sorted(source.rglob("*")):
                if item.is_file() and (keep_logs or "logs" not in item.relative_to(source).parts):
                    tar.add(item, arcname=str(Path(source.name) / item.relative_to(source)))
        size = tmp.stat().st_size
        if size <= limit_bytes:
            tmp.replace(target)
            return {"path": str(target), "bytes": size, "logs": keep_logs}
    tmp.unlink(missing_ok=True)
    raise ParameterError(f"the archive of {source} would be {size / 2**20:.1f} MiB even without logs, over "
                         f"the {limit_bytes / 2**20:.0f} MiB limit; copy the folder instead")
