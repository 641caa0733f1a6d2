"""``nrg meters``: which energy source measures each domain on this machine, and idle power.

Prints the fallback chain (chosen per domain, skipped and why, with how to get a
better source) and an idle power reading with its method.
"""
from __future__ import annotations

import argparse
import sys

from nrg.errors import ParameterError

DEFAULT_IDLE_S = 1.0


def _gpu_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ParameterError(f"--gpus={text!r} is not valid; give GPU indices such as 0,1") from None


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``nrg meters`` on the CLI's subparsers."""
    parser = subparsers.add_parser("meters", help="show this machine's energy sources and idle power",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--idle-s", type=float, default=DEFAULT_IDLE_S, metavar="SECONDS",
                        help=f"idle measurement window (default {DEFAULT_IDLE_S:g} s)")
    parser.add_argument("--gpus", default=None, metavar="0,1", help="GPU indices (default: all)")
    parser.add_argument("--meters", default=None, metavar="nvml,rapl,estimate",
                        help="meters to consider (default: all)")
    parser.add_argument("--sysfs-root", default="/", metavar="PATH",
                        help="root under which sys/class/powercap is read (default /)")
    parser.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    """Probe, print the chain, measure idle power; exit 1 when nothing can be measured."""
    from nrg.errors import check_positive
    from nrg.meters import EnergyMonitor, Method, choose_sources
    from nrg.meters.chain import check_meters

    check_positive("--idle-s", ns.idle_s)
    meters = check_meters(ns.meters) if ns.meters is not None else None
    gpus = _gpu_list(ns.gpus) if ns.gpus is not None else None
    chain = choose_sources(meters, gpus, ns.sysfs_root)
    print("energy sources (best first per domain):")
    for decision in chain.decisions:
        print(decision.describe())
    if not chain.sources:
        for release in chain.releases:
            release()
        print("no energy source available: idle power not measured")
        return 1
    with EnergyMonitor(chain.sources, chain.decisions, releases=chain.releases) as monitor:
        power_w = monitor.measure_idle(ns.idle_s)
        idle = monitor.idle_measurement
    assert idle is not None
    print(f"idle power over {idle.elapsed_s:.2f} s (this process asleep):")
    for domain in idle.domains:
        note = "" if domain.method is not Method.ESTIMATED else (
            " (a constant from the memory size, codecarbon's DIMM rule: not a reading)" if domain.domain == "dram"
            else " (CPU time of this process only: not the machine's idle power)")
        print(f"  {domain.domain}: {power_w[domain.domain]:.3f} W [{domain.method.value}] "
              f"{domain.source}{note}")
    for warning in idle.warnings:
        print(f"  warning: {warning}", file=sys.stderr)
    return 0
