"""Ctrl-C in the middle of a blocked sweep: what is kept, and what the rerun costs.

A blocked sweep (``--cells`` tiny random-weight cells x ``--repeats``; every
cell finishes in the last block) runs once whole, and once more in another
folder, stopped by SIGINT when half of its repeats are kept, then rerun. The
script reports the repeats kept at the stop, the rerun's time against the
whole sweep's, duplicated rows, and whether the stopped-and-resumed run has
the same order (``block``, ``run_order``) as the whole one.

Times include each ``nrg sweep`` process' start-up (Python, torch) and, on a
shared machine, everyone else's load: compare them on a quiet machine.

Run: ``python benchmarks/bench_resume.py [--cells 6] [--repeats 4] [--isolated] [--out DIR]``.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

from nrg.sweep.runfolder import store  # noqa: E402

TINY = {"name": "gpt2", "weights": "random", "tiny": True, "layers": 1}


def _config(cells: int, repeats: int, isolated: bool) -> dict:
    return {"name": "resume", "models": [TINY], "input_tokens": list(range(8, 8 + cells)),
            "output_tokens": [32], "repeats": repeats, "warmup": 0, "idle_s": 0, "roofline": False,
            "meters": ["estimate"], "interference": {"max_retries": 0}, "order": "blocked",
            "isolate": isolated}


def _kept(run: Path) -> int:
    total = 0
    for path in run.glob("repeats/*.json"):
        try:
            total += int(json.loads(path.read_text())["attempts"])
        except (OSError, ValueError, KeyError):
            continue
    return total


def _sweep(cfg: Path, run: Path, stop_at_kept: int | None = None) -> tuple[int, float, str]:
    """Run ``nrg sweep``; with ``stop_at_kept``, SIGINT once that many repeats are kept."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "nrg", "sweep", str(cfg), "--out", str(run), "--no-progress"]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while stop_at_kept is not None and proc.poll() is None and _kept(run) < stop_at_kept:
        time.sleep(0.05)
    if stop_at_kept is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    last = err.strip().splitlines()[-1] if err.strip() else ""
    return proc.returncode, time.monotonic() - started, last


def _order(run: Path):
    df = store.load(run)
    cols = ["cell_id", "repeat", "phase", "block", "run_order"]
    return df, df[cols].sort_values(cols).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--isolated", action="store_true", help="one worker process per cell")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-resume-"))
    out.mkdir(parents=True, exist_ok=True)
    import yaml

    cfg = out / "sweep.yaml"
    cfg.write_text(yaml.safe_dump(_config(args.cells, args.repeats, args.isolated)))
    total = args.cells * args.repeats
    rc, whole_s, _ = _sweep(cfg, out / "whole")
    print(f"whole sweep: exit {rc}, {whole_s:.1f} s, {total} repeats")
    rc, stopped_s, said = _sweep(cfg, out / "run", stop_at_kept=total // 2)
    kept = _kept(out / "run")
    cells = len(store.RunStore.at(out / "run").finished())
    print(f"SIGINT after {stopped_s:.1f} s: exit {rc}, {cells}/{args.cells} cells done, {kept} repeats kept "
          f"({said!r})")
    rc, resume_s, _ = _sweep(cfg, out / "run")
    df, resumed = _order(out / "run")
    _, whole = _order(out / "whole")
    print(f"rerun: exit {rc}, {resume_s:.1f} s ({resume_s / whole_s:.0%} of the whole sweep), "
          f"measured {total - kept - cells * args.repeats} of {total} repeats; "
          f"{int(df.duplicated(['cell_id', 'repeat', 'phase']).sum())} duplicated rows; "
          f"same order as the whole sweep: {resumed.equals(whole)}")


if __name__ == "__main__":
    main()
