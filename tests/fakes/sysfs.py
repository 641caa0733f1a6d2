"""Build a fake ``/sys/class/powercap`` tree under a temporary root.

Layout as on a Linux host with intel_rapl: the control-type directory
``intel-rapl``, zones ``intel-rapl:N`` (``name`` = ``package-N`` or ``psys``) and
sub-zones ``intel-rapl:N:M`` (``name`` = ``core``, ``uncore`` or ``dram``), each
with ``energy_uj`` and ``max_energy_range_uj``. Tests move the counters with
:meth:`FakePowercap.set_energy` / :meth:`advance` (which wraps like hardware).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

#: A typical max_energy_range_uj (about 262 kJ).
MAX_RANGE_UJ = 262_143_328_850


class FakePowercap:
    """A powercap tree rooted at ``root`` (pass ``root`` as ``sysfs_root``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.base = self.root / "sys" / "class" / "powercap"
        (self.base / "intel-rapl").mkdir(parents=True, exist_ok=True)
        (self.base / "intel-rapl" / "enabled").write_text("1\n")

    def add_zone(self, dirname: str, name: str, energy_uj: int = 0,
                 max_energy_range_uj: int | None = MAX_RANGE_UJ) -> Path:
        zone = self.base / dirname
        zone.mkdir(parents=True, exist_ok=True)
        (zone / "name").write_text(f"{name}\n")
        (zone / "enabled").write_text("1\n")
        (zone / "energy_uj").write_text(f"{energy_uj}\n")
        if max_energy_range_uj is not None:
            (zone / "max_energy_range_uj").write_text(f"{max_energy_range_uj}\n")
        return zone

    def add_package(self, index: int, energy_uj: int = 0, **kw: int) -> Path:
        return self.add_zone(f"intel-rapl:{index}", f"package-{index}", energy_uj, **kw)

    def add_dram(self, package: int, sub: int = 0, energy_uj: int = 0, **kw: int) -> Path:
        return self.add_zone(f"intel-rapl:{package}:{sub}", "dram", energy_uj, **kw)

    @staticmethod
    def energy_uj(zone: Path) -> int:
        return int((zone / "energy_uj").read_text())

    @staticmethod
    def set_energy(zone: Path, energy_uj: int) -> None:
        """Replace the value atomically: a sysfs read never sees a half-written number."""
        tmp = zone / ".energy_uj.tmp"
        tmp.write_text(f"{energy_uj}\n")
        tmp.replace(zone / "energy_uj")

    def advance(self, zone: Path, delta_uj: int) -> None:
        """Add ``delta_uj``, wrapping at max_energy_range_uj as the hardware counter does."""
        limit = int((zone / "max_energy_range_uj").read_text())
        self.set_energy(zone, (self.energy_uj(zone) + delta_uj) % limit)

    @contextmanager
    def running(self, watts: Mapping[Path, float], period_s: float = 0.001) -> Iterator[None]:
        """Advance each zone at its power (W) every ``period_s`` in a thread, as RAPL counters move."""
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(period_s):
                for zone, power_w in watts.items():
                    self.advance(zone, round(power_w * period_s * 1e6))

        thread = threading.Thread(target=tick, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    @staticmethod
    def make_unreadable(zone: Path) -> None:
        """Replace energy_uj by a directory: reading fails even as root (IsADirectoryError)."""
        (zone / "energy_uj").unlink()
        (zone / "energy_uj").mkdir()

    @staticmethod
    def deny(zone: Path) -> None:
        """chmod 000 energy_uj, as on kernels since CVE-2020-8694 (root still reads it)."""
        (zone / "energy_uj").chmod(0)
