"""A blocked sweep stopped half-way keeps every finished repeat, and a rerun continues from them.

In-process sweeps of tiny random-weight cells; the kill -9 and signal versions
with real processes are in ``tests/faults``.
"""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from nrg.sweep.run import run_sweep
from nrg.sweep.runfolder import checkpoints, store
from nrg.sweep.schedule.signals import SweepInterrupted

TINY = {"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}


def _config(**changes) -> dict:
    cfg = {"name": "resume", "models": [TINY], "input_tokens": [4, 5, 6], "output_tokens": [2], "repeats": 3,
           "warmup": 0, "idle_s": 0, "isolate": False, "roofline": False, "quality": {"items": 0},
           "meters": ["estimate"], "interference": {"max_retries": 0}, "seed": 11, "order": "blocked"}
    cfg.update(changes)
    return cfg


def _stop_after(n: int):
    """An ``on_repeat`` that stops the sweep like Ctrl-C once ``n`` repeats were kept."""
    seen: list[str] = []

    def on_repeat(cell_id: str) -> None:
        seen.append(cell_id)
        if len(seen) == n:
            raise KeyboardInterrupt

    return on_repeat


def _no_duplicates(df) -> None:
    assert not df.duplicated(["cell_id", "repeat", "phase"]).any()


def test_a_stopped_blocked_sweep_keeps_its_repeats_and_the_rerun_measures_only_the_rest(tmp_path, capsys):
    with pytest.raises(SweepInterrupted) as info:
        run_sweep(_config(), tmp_path, progress=False, on_repeat=_stop_after(5))
    assert info.value.cells_done == 0 and info.value.repeats_kept == 5
    assert "0 cells done and 5 repeats of unfinished cells kept" in info.value.message
    assert store.load(tmp_path).empty                       # kept repeats are not results yet
    kept = {cid: checkpoints.read(tmp_path, cid) for cid in checkpoints.cell_ids(tmp_path)}
    assert sum(s["attempts"] for s in kept.values()) == 5

    measured: list[str] = []
    df = run_sweep(_config(), tmp_path, progress=True, on_repeat=measured.append)
    assert len(measured) == 9 - 5                           # no kept repeat measured again
    _no_duplicates(df)
    gen = df[df["phase"] == "generate"].sort_values("run_order")
    assert list(gen["run_order"]) == list(range(9)) and sorted(gen["block"].unique()) == [0, 1, 2]
    for cid, state in kept.items():                         # the kept rows are the rows of the result
        for row in state["rows"]:
            got = df[(df["cell_id"] == cid) & (df["repeat"] == row["repeat"]) & (df["phase"] == row["phase"])]
            assert got["energy_j"].tolist() == [row["energy_j"]]
    assert checkpoints.cell_ids(tmp_path) == [] and not list((tmp_path / "claims").iterdir())
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert "9 repeats in" in summary and "(3/3 cells done; 5 repeats kept from an earlier run)" in summary


def test_the_resumed_order_is_the_uninterrupted_order(tmp_path):
    full = run_sweep(_config(), tmp_path / "full", progress=False)
    with pytest.raises(SweepInterrupted):
        run_sweep(_config(), tmp_path / "run", progress=False, on_repeat=_stop_after(4))
    resumed = run_sweep(_config(), tmp_path / "run", progress=False)
    cols = ["cell_id", "repeat", "phase", "block", "run_order"]
    assert (resumed[cols].sort_values(cols).reset_index(drop=True)
            .equals(full[cols].sort_values(cols).reset_index(drop=True)))


def test_a_worker_reloaded_to_make_room_continues_its_repeat_numbers(tmp_path, monkeypatch):
    """With room for one model only, every visit reloads a cell: its rows must not restart at repeat 0."""
    from nrg.sweep.schedule import interleave

    monkeypatch.setattr(interleave.WorkerPool, "_fits", lambda self: False)
    df = run_sweep(_config(input_tokens=[4, 5], repeats=2), tmp_path, progress=False)
    _no_duplicates(df)
    gen = df[df["phase"] == "generate"]
    assert sorted(gen.groupby("cell_id")["repeat"].apply(sorted).tolist()) == [[0, 1], [0, 1]]


def test_an_unreadable_checkpoint_is_named_and_its_cell_measured_from_the_start(tmp_path):
    with pytest.raises(SweepInterrupted):
        run_sweep(_config(input_tokens=[4]), tmp_path, progress=False, on_repeat=_stop_after(2))
    (cid,) = checkpoints.cell_ids(tmp_path)
    checkpoints.path(tmp_path, cid).write_text('{"format": 1, "cell_id": "')     # cut short
    leftover = tmp_path / "repeats" / f"{cid}.json{store.TMP_MARK}abc"           # a writer killed mid-write
    leftover.write_text("{")
    measured: list[str] = []
    with pytest.warns(UserWarning, match=f"ignored kept repeats .*{cid}.json: cannot be read"):
        df = run_sweep(_config(input_tokens=[4]), tmp_path, progress=False, on_repeat=measured.append)
    assert len(measured) == 3 and len(df[df["phase"] == "generate"]) == 3
    _no_duplicates(df)
    assert not leftover.exists() and checkpoints.cell_ids(tmp_path) == []


def test_leftovers_beside_finished_cells_are_removed_at_start(tmp_path):
    """A checkpoint of a written cell (killed in between) and a dead sweep's claim go; the cell file stays."""
    df = run_sweep(_config(input_tokens=[4]), tmp_path, progress=False)
    cid = df["cell_id"].iloc[0]
    checkpoints.keep(tmp_path, {"cell_id": cid, "attempts": 1, "samples": [1.0],
                                "rows": [{"repeat": 7, "phase": "generate", "energy_j": -1.0}]})
    dead = {"pid": 2 ** 22 + 12345, "hostname": socket.gethostname(), "boot_id": None,
            "proc_start": None, "token": "x"}
    (tmp_path / "claims" / cid).write_text(json.dumps(dead))
    again = run_sweep(_config(input_tokens=[4]), tmp_path, progress=False)
    assert again.equals(df)                                  # the cell file is the truth
    assert checkpoints.cell_ids(tmp_path) == [] and not list((tmp_path / "claims").iterdir())


def test_kept_repeats_are_never_loaded_as_results(tmp_path: Path):
    with pytest.raises(SweepInterrupted):
        run_sweep(_config(input_tokens=[4, 5]), tmp_path, progress=False, on_repeat=_stop_after(3))
    assert store.load(tmp_path).empty and store.load(tmp_path, all_columns=True).empty
    assert store.RunStore.at(tmp_path).finished() == {}


@pytest.mark.process
def test_the_interference_cap_holds_across_a_stop(tmp_path):
    """Redone (flagged) tries count against ``max_retries`` whether or not the sweep was stopped."""
    from fakes.procfs import FakeProcStat

    proc = FakeProcStat(tmp_path / "proc")
    cfg = _config(input_tokens=[8], output_tokens=[32],      # windows of tens of ms: the fake
                  interference={"max_retries": 2})               # counter moves inside each
    options = {"proc_root": proc.root}
    with proc.run_busy(ticks_per_ms=1):                   # every try is flagged
        with pytest.raises(SweepInterrupted):
            run_sweep(cfg, tmp_path / "run", progress=False, monitor_options=options,
                      on_repeat=_stop_after(1))
        df = run_sweep(cfg, tmp_path / "run", progress=False, monitor_options=options)
    gen = df[df["phase"] == "generate"]
    assert gen["repeat"].tolist() == [0, 1, 2, 3, 4]       # 1st repeat redone twice, then no more redos
    assert (df["interference_retries"] == 2).all() and (df["repeats_n"] == 3).all()
    _no_duplicates(df)


@pytest.mark.process
def test_an_isolated_worker_continues_the_kept_repeats(tmp_path):
    """The worker process gets the next repeat index: kept rows and new rows never share one."""
    cfg = _config(input_tokens=[4], repeats=2, isolate=True)
    with pytest.raises(SweepInterrupted):
        run_sweep(cfg, tmp_path, progress=False, on_repeat=_stop_after(1))
    df = run_sweep(cfg, tmp_path, progress=False)
    assert df[df["phase"] == "generate"]["repeat"].tolist() == [0, 1] and (df["status"] == "ok").all()
    _no_duplicates(df)
