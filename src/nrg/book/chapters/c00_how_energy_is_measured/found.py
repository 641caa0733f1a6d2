"""Chapter 0's "What this chapter found": what energy means here and the most efficient matrix size.

From the calibration windows (matrix multiplications of several sizes) the chapter measured.
Its sentences are computed from the measured rows (nothing typed by hand);
:func:`nrg.book.found.block` shows them at the top of the page.
"""
from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from nrg.book.found import framing, interval

_METHOD_WORDS = {"counter": "read from hardware energy counters", "integrated": "integrated from power readings",
                 "estimated": "estimated from CPU time and a rated power (no energy counter here)"}


def findings(calib: Any, params: Mapping[str, Any]) -> list[str]:
    """Chapter 0: what energy means here, whether it follows the work, and the most efficient size (if any)."""
    from nrg.book.findings import num
    from nrg.book.statement import Finding, say, separated

    methods = sorted(map(str, calib["energy_method"].dropna().unique()))
    out = framing(calib)
    if not out:
        out.append("Energy was " + " and ".join(_METHOD_WORDS.get(m, m) for m in methods)
                   + " (the table of energy sources below says which source, for which part of the machine).")
    out.append(_follows_work(calib))
    sizes = {size: interval(part["gflop_per_j"]) for size, part in calib.groupby("matrix_size")}
    order = sorted(sizes, key=lambda k: -sizes[k][0])
    if len(order) >= 2:
        best, runner = order[0], order[1]
        values = {"best": best, "value": num(sizes[best][0]), "runner": runner, "runner_value": num(sizes[runner][0])}
        out += say([Finding("The most efficient size is {best} ({value} GFLOP/J), clearly above {runner} "
                            "({runner_value} GFLOP/J).", values,
                            (separated(sizes[best][1:], sizes[runner][1:], f"size {best}", f"size {runner}"),),
                            fallback="Size {best} ({value} GFLOP/J) is the most efficient on average, but it "
                                     "is not distinguishable from size {runner} ({runner_value} GFLOP/J): "
                                     "their 95 % intervals overlap.")])
    n = int(calib.groupby("matrix_size").size().min())
    out.append(f"These calibration windows are not checked for interference and have no CI target: {n} "
               "windows per size, whose spread shows in the intervals of the table.")
    return out


def _follows_work(calib: Any) -> str:
    """Whether energy per multiplication rises with the size; a fall is called spread only within the spread."""
    from nrg.book.statement import separated

    energy = {size: interval(part["energy_j"]) for size, part in calib.groupby("matrix_size")}
    sizes = sorted(energy)
    falls = [(a, b) for a, b in itertools.pairwise(sizes) if energy[b][0] <= energy[a][0]]
    if not falls:
        return "Energy per multiplication rises with the work at every matrix size."
    beyond = [f"{a} → {b}" for a, b in falls if separated(energy[a][1:], energy[b][1:], str(a), str(b)).passed]
    if beyond:
        return ("Energy per multiplication falls with more work, by more than the windows' spread (95 % intervals "
                f"apart), from size {', '.join(beyond)}: the energy reported here does not follow the work.")
    return ("Energy per multiplication does not rise with the work at every size, but where it falls ("
            + ", ".join(f"{a} → {b}" for a, b in falls) + ") the difference is within the windows' spread "
            "(95 % intervals overlap).")
