"""A fake ``/proc/stat`` under a temporary root: the machine's CPU time counters, in clock ticks.

It stands in for the kernel, not for nrg. Layout as Linux writes it: an
aggregate ``cpu`` line (user nice system idle iowait irq softirq steal guest
guest_nice) and one ``cpuN`` line per CPU. :meth:`FakeProcStat.add` moves the
aggregate counters; :meth:`run_busy` makes "other processes" burn CPU time at
a given rate from another process, as a neighbour would.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")


class FakeProcStat:
    """``<root>/stat`` with ``cpus`` CPUs; pass ``root`` as ``proc_root``."""

    def __init__(self, root: Path, cpus: int = 2) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cpus = cpus
        self.ticks = dict.fromkeys(FIELDS, 0)
        self.ticks["idle"] = 1_000_000
        self._lock = threading.Lock()
        self._write()

    def _write(self) -> None:
        total = " ".join(str(self.ticks[f]) for f in FIELDS)
        per_cpu = "".join(f"cpu{i} 0 0 0 0 0 0 0 0 0 0\n" for i in range(self.cpus))
        tmp = self.root / ".stat.tmp"
        tmp.write_text(f"cpu  {total}\n{per_cpu}intr 0\nctxt 0\n")
        tmp.replace(self.root / "stat")    # a reader never sees half a file

    def add(self, **ticks: int) -> None:
        """Add clock ticks to aggregate fields, e.g. ``add(user=100, steal=5)``."""
        with self._lock:
            for name, value in ticks.items():
                self.ticks[name] += value
            self._write()

    @contextmanager
    def run_busy(self, ticks_per_ms: int) -> Iterator[None]:
        """Other processes using ``ticks_per_ms`` user ticks every millisecond, until exit.

        The counter is moved by a separate process, as the kernel would: a thread
        of the test process could wait for the GIL through a whole short window. It
        follows the wall clock, so a writer that was not scheduled for a while
        catches up instead of losing the ticks; a window still needs one write inside
        it, so tests that rely on this keep their windows at tens of milliseconds.
        """
        script = (
            "import os, sys, time\n"
            "root, cpus, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
            "ticks = [int(x) for x in sys.argv[4:]]\n"
            "per_cpu = ''.join(f'cpu{i} 0 0 0 0 0 0 0 0 0 0\\n' for i in range(cpus))\n"
            "base, t0 = ticks[0], time.monotonic()\n"
            "while True:\n"
            "    ticks[0] = base + max(1, int(rate * (time.monotonic() - t0) * 1000))\n"
            "    with open(root + '/.stat.tmp', 'w') as f:\n"
            "        f.write('cpu  ' + ' '.join(map(str, ticks)) + '\\n' + per_cpu)\n"
            "    os.replace(root + '/.stat.tmp', root + '/stat')\n"
            "    time.sleep(0.001)\n")
        with self._lock:
            args = [str(self.root), str(self.cpus), str(ticks_per_ms), *(str(self.ticks[f]) for f in FIELDS)]
        proc = subprocess.Popen([sys.executable, "-c", script, *args])
        try:
            deadline = time.monotonic() + 30
            while self._user_ticks() == self.ticks["user"] and time.monotonic() < deadline:
                time.sleep(0.005)           # started: the counter moves
            yield
        finally:
            proc.kill()
            proc.wait()
            with self._lock:
                self.ticks["user"] = self._user_ticks()

    def _user_ticks(self) -> int:
        return int((self.root / "stat").read_text().split()[1])
