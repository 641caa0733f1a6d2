"""CPU package and DRAM energy from RAPL counters under ``/sys/class/powercap``.

Zones ``intel-rapl:N`` named ``package-N`` and sub-zones ``intel-rapl:N:M`` named
``dram`` (Intel; AMD Zen kernels expose package zones under the same names, usually
without DRAM). ``energy_uj`` is a wrapping counter: a reading below the previous
one means it wrapped by ``max_energy_range_uj``. A poll thread reads the counters
every few seconds so that wraps inside long windows are not missed. The sysfs root
is a parameter so tests build a fake tree under ``tmp_path``.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from nrg.meters.measurement import Method
from nrg.meters.source import MeterReadError, Poller, Probe

RAPL = "rapl"
RAPL_UPDATE_PERIOD_S = 0.001     # Intel SDM: the energy status counters update about every 1 ms
DEFAULT_POLL_S = 5.0             # far below the fastest wrap (~60 s at 4 kW on a 262 kJ range)
POWERCAP = Path("sys/class/powercap")
_ZONE = re.compile(r"^intel-rapl:(\d+)$")
_SUBZONE = re.compile(r"^intel-rapl:(\d+):(\d+)$")


def permission_hint(path: Path) -> str:
    """How to grant read access to RAPL counters (root-only since CVE-2020-8694)."""
    return (f"permission denied reading {path}: grant read access with "
            "`sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj "
            "/sys/class/powercap/intel-rapl:*:*/energy_uj` (until reboot) or a udev rule, e.g. "
            "ACTION==\"add\", SUBSYSTEM==\"powercap\", RUN+=\"/bin/chmod a+r /sys%p/energy_uj\"")


@dataclass(frozen=True)
class RaplZone:
    """One counter: which domain it adds to, and its wrap range."""

    domain: str                 # "cpu" (a package) or "dram"
    path: Path                  # the zone directory
    max_energy_range_uj: int | None


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _zone_reason(path: Path) -> str | None:
    """None if ``energy_uj`` reads as an integer, else why not."""
    try:
        _read_int(path / "energy_uj")
    except PermissionError:
        return permission_hint(path / "energy_uj")
    except (OSError, ValueError) as exc:
        return f"cannot read {path / 'energy_uj'} ({type(exc).__name__}: {exc})"
    return None


def _max_range(path: Path) -> int | None:
    try:
        return _read_int(path / "max_energy_range_uj")
    except (OSError, ValueError):
        return None


def find_zones(root: Path) -> tuple[list[RaplZone], dict[str, str]]:
    """Readable package and DRAM zones under ``root``, and why a domain has none."""
    zones: list[RaplZone] = []
    problems: dict[str, str] = {}
    for path in sorted(root.iterdir()):
        if not (_ZONE.match(path.name) or _SUBZONE.match(path.name)):
            continue
        try:
            name = (path / "name").read_text().strip()
        except OSError:
            continue
        domain = "cpu" if name.startswith("package-") else "dram" if name == "dram" else None
        if domain is None:
            continue
        reason = _zone_reason(path)
        if reason is not None:
            problems.setdefault(domain, reason)
            continue
        zones.append(RaplZone(domain, path, _max_range(path)))
    return zones, problems


def probe_rapl(sysfs_root: str | Path = "/", poll_s: float | None = DEFAULT_POLL_S) -> Probe:
    """Which of cpu/dram RAPL can measure under ``sysfs_root``, and why not the others."""
    root = Path(sysfs_root) / POWERCAP
    probe = Probe(meter="rapl")
    if not root.is_dir():
        reason = (f"{root} absent: no RAPL powercap interface (not Linux, kernel without "
                  "intel_rapl, or a VM/container that hides it)")
        probe.reasons.update({(RAPL, "cpu"): reason, (RAPL, "dram"): reason})
        return probe
    zones, problems = find_zones(root)
    defaults = {"cpu": f"no readable package-N zone under {root}",
                "dram": f"no readable dram zone under {root} (common on AMD and client CPUs)"}
    for domain in ("cpu", "dram"):
        if not any(z.domain == domain for z in zones):
            probe.reasons[(RAPL, domain)] = problems.get(domain, defaults[domain])
    offered = tuple(d for d in ("cpu", "dram") if any(z.domain == d for z in zones))
    probe.offers = {RAPL: offered}
    probe.details = {RAPL: f"rapl ({root})"}
    probe.build = lambda _source, domains: RaplSource(
        [z for z in zones if z.domain in domains], poll_s=poll_s, description=f"rapl ({root})")
    return probe


class RaplSource:
    """Cumulative joules per domain (packages summed into "cpu"), wrap-arounds unrolled."""

    name = RAPL
    method = Method.COUNTER
    update_period_s = RAPL_UPDATE_PERIOD_S

    def __init__(self, zones: list[RaplZone], poll_s: float | None = DEFAULT_POLL_S,
                 description: str = RAPL) -> None:
        self._zones = list(zones)
        self.domains = tuple(dict.fromkeys(z.domain for z in self._zones))
        self.description = description
        self._lock = threading.Lock()
        self._last_uj: dict[Path, int] = {}
        self._total_uj: dict[Path, int] = {z.path: 0 for z in self._zones}
        self._errors: list[str] = []
        self._poller = Poller(self._poll, poll_s, "nrg-rapl-poll") if poll_s else None

    def start(self) -> None:
        """Read every zone once (the origin) and start the wrap-around poller when one is configured."""
        self._update()
        if self._poller is not None:
            self._poller.start()

    def _poll(self) -> None:
        try:
            self._update()
        except MeterReadError as exc:
            with self._lock:
                self._errors.append(exc.reason)

    def _update(self) -> None:
        """Read every zone; add the increase since the last read, unrolling one wrap."""
        errors: list[str] = []
        with self._lock:
            for zone in self._zones:
                path = zone.path / "energy_uj"
                try:
                    now_uj = _read_int(path)
                except PermissionError:
                    errors.append(permission_hint(path))
                    continue
                except (OSError, ValueError) as exc:
                    errors.append(f"cannot read {path} ({type(exc).__name__}: {exc})")
                    continue
                last_uj = self._last_uj.get(zone.path, now_uj)
                delta_uj = now_uj - last_uj
                if delta_uj < 0:
                    if zone.max_energy_range_uj is None:
                        errors.append(f"{path} went backwards and max_energy_range_uj is unreadable")
                        delta_uj = 0
                    else:
                        delta_uj += zone.max_energy_range_uj
                self._total_uj[zone.path] += delta_uj
                self._last_uj[zone.path] = now_uj
        if errors:
            raise MeterReadError("; ".join(errors))

    def read_j(self) -> dict[str, float]:
        """Cumulative joules per domain, counter wrap-arounds included; poller errors raise here."""
        error: MeterReadError | None = None
        try:
            self._update()
        except MeterReadError as exc:
            error = exc
        with self._lock:
            values = {d: 0.0 for d in self.domains}
            for zone in self._zones:
                values[zone.domain] += self._total_uj[zone.path] / 1e6
            pending, self._errors = self._errors, []
        reasons = pending + ([error.reason] if error else [])
        if reasons:
            raise MeterReadError("; ".join(dict.fromkeys(reasons)), values)
        return values

    def close(self) -> None:
        """Stop the wrap-around poller."""
        if self._poller is not None:
            self._poller.stop()
