"""``nrg dvfs``: what this machine lets nrg change (GPU clocks, power limit, cpufreq), and recovery.

``nrg dvfs`` prints the capability probe and exits 0 even on a machine with no
GPU and no cpufreq -- saying so is the answer. It only reads: trying whether
the GPU accepts changes (writing its power limit back) and ``--test-lock``
write to the hardware, so they need ``--allow-hardware-settings``.
``--recover`` puts back the values a killed nrg run left changed, from the
marker: restoring a setting nrg itself changed needs no consent (every sweep
and chapter does it at its start too).
"""
from __future__ import annotations

import argparse
import json
from typing import Any


def _recover(ns: argparse.Namespace) -> int:
    """Put back what a killed nrg run left changed: no consent needed, the same rule as every sweep's start.

    Restoring only writes back the value the hardware had before nrg changed
    it (recorded in the marker), so it undoes nrg's own change rather than
    making a new one; a sweep or chapter does the same at its start.
    """
    from nrg import dvfs
    from nrg.dvfs import marker
    from nrg.dvfs.common import marker_path

    entries = marker.read_entries(marker_path())
    if entries:
        print(f"restoring {len(entries)} setting(s) that nrg itself left changed ({marker_path()}); this "
              "needs no --allow-hardware-settings: it only puts back the values recorded before nrg "
              "changed them")
    report = dvfs.recover(force=ns.force)
    print(report.summary())
    return 0 if report.ok else 1


def _run(ns: argparse.Namespace) -> int:
    from nrg import dvfs

    current = dvfs.settings()  # keep an NVML module injected by a test or notebook
    dvfs.configure(gpu_index=ns.gpu, nvml_module=current.nvml_module, sysfs_root=ns.sysfs_root,
                   marker_path=ns.marker if ns.marker is not None else current.marker_path,
                   sample_interval_s=current.sample_interval_s)
    if ns.recover:
        return _recover(ns)
    result = dvfs.probe(test_lock=ns.test_lock, allow_hardware_settings=ns.allow_hardware_settings)
    if ns.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.summary())
    return 0


def add_command(subparsers: Any) -> None:
    """Register ``nrg dvfs``."""
    parser = subparsers.add_parser(
        "dvfs", help="show which GPU clocks / power limits / CPU frequencies can be set; recover",
        description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", type=int, default=0, help="GPU index (default 0)")
    parser.add_argument("--sysfs-root", default="/", help="root of the sysfs tree (default /)")
    parser.add_argument("--marker", default=None,
                        help="marker file (default $NRG_STATE_DIR or ~/.cache/nrg/dvfs-applied.json)")
    parser.add_argument("--allow-hardware-settings", action="store_true",
                        help="consent to write to the hardware: try permission by writing the power "
                             "limit back, and allow --test-lock (off by default)")
    parser.add_argument("--recover", action="store_true",
                        help="restore settings a killed nrg run left changed (recorded in the marker); "
                             "needs no consent: it only undoes nrg's own change")
    parser.add_argument("--force", action="store_true",
                        help="with --recover: also restore entries whose process looks alive")
    parser.add_argument("--test-lock", action="store_true",
                        help="actually lock the GPU clock once and reset it, to test permission "
                             "(needs --allow-hardware-settings)")
    parser.add_argument("--json", action="store_true", help="print the probe as JSON")
    parser.set_defaults(func=_run)
