"""Run order as an experimental design: blocks interleave the repeats of different cells."""
from __future__ import annotations

import pytest

from nrg.sweep.blocks import CellRun, block_order, record_repeat, run_blocks, schedule
from nrg.sweep.config import parse_config
from nrg.sweep.run import run_sweep

TINY = {"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}


def _runs(n_cells: int, repeats: int) -> dict[str, CellRun]:
    cells = parse_config({"models": [TINY], "input_tokens": [4 + i for i in range(n_cells)],
                          "output_tokens": [2], "repeats": repeats}).cells()
    return {c.cell_id: CellRun(c) for c in cells}


class _Counting:
    """A worker that measures nothing: one fake row per repeat, a constant sample."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def repeat(self, block: int, run_order: int) -> tuple[list[dict], float]:
        self.calls.append((block, run_order))
        return [{"block": block, "run_order": run_order}], 1.0

    def finish(self) -> tuple[dict, list[dict]]:
        return {}, []


def _drive(runs: dict[str, CellRun], order: str, seed: int) -> list[tuple[int, str]]:
    """The schedule, with one finite sample recorded per visit (it reads the runs lazily)."""
    out = []
    for block, cid in schedule(runs, order, seed):
        record_repeat(runs[cid], [], 1.0)
        out.append((block, cid))
        assert len(out) < 1000, "the schedule does not end"
    return out


def test_a_block_visits_every_unfinished_cell_once_in_a_seeded_shuffled_order():
    runs = _runs(4, repeats=3)
    order = _drive(runs, "blocked", seed=7)
    assert len(order) == 12
    for block in range(3):
        assert sorted(cid for b, cid in order if b == block) == sorted(runs)   # each cell once per block
    per_block = [[cid for b, cid in order if b == block] for block in range(3)]
    assert per_block[0] == block_order(list(runs), 7, 0)
    assert _drive(_runs(4, 3), "blocked", seed=7) == order                    # reproducible
    assert len({tuple(p) for p in per_block}) > 1 or len(runs) < 3             # reshuffled per block


def test_sequential_order_runs_every_repeat_of_a_cell_before_the_next():
    runs = _runs(3, repeats=2)
    order = [cid for _, cid in _drive(runs, "sequential", seed=0)]
    assert order == [cid for cid in runs for _ in range(2)]


def test_a_cell_leaves_the_blocks_once_its_policy_is_met():
    runs = _runs(2, repeats=2)
    workers = {cid: _Counting() for cid in runs}
    done: list[str] = []
    run_blocks(runs, workers.__getitem__, "blocked", seed=1, on_done=lambda cid, frame: done.append(cid))
    assert sorted(done) == sorted(runs)
    run_orders = sorted(o for w in workers.values() for _, o in w.calls)
    assert run_orders == list(range(4))                        # one global run order
    assert all(len(r.samples) == 2 for r in runs.values())


def test_record_repeat_counts_finite_samples_only():
    run = next(iter(_runs(1, repeats=3).values()))
    record_repeat(run, [{"x": 1}], float("nan"))
    record_repeat(run, [{"x": 2}], 2.0)
    assert run.attempts == 2 and run.samples == [2.0] and len(run.rows) == 2


def test_a_real_sweep_interleaves_cells_and_rows_carry_block_and_run_order(tmp_path):
    cfg = {"name": "blocks", "models": [TINY], "input_tokens": [4, 6], "output_tokens": [2], "repeats": 3,
           "warmup": 0, "idle_s": 0, "isolate": False, "roofline": False, "quality": {"items": 0},
           "interference": {"max_retries": 0}, "seed": 3, "order": "blocked"}
    df = run_sweep(cfg, tmp_path, progress=False)
    gen = df[df["phase"] == "generate"].sort_values("run_order")
    assert list(gen["run_order"]) == list(range(6))
    assert sorted(gen["block"].unique()) == [0, 1, 2]
    assert all(gen.groupby("block")["cell_id"].nunique() == 2)      # both cells in every block
    first_cell = gen["cell_id"].iloc[0]
    assert (gen["cell_id"].iloc[:3] != first_cell).any()             # not all repeats of one cell first


@pytest.mark.process
def test_isolated_workers_keep_their_model_between_blocks(tmp_path):
    cfg = {"name": "blocks-isolated", "models": [TINY], "input_tokens": [4, 6], "output_tokens": [2],
           "repeats": 2, "warmup": 0, "idle_s": 0, "isolate": True, "roofline": False,
           "quality": {"items": 0}, "interference": {"max_retries": 0}, "order": "blocked"}
    df = run_sweep(cfg, tmp_path, progress=False)
    gen = df[df["phase"] == "generate"]
    assert set(df["status"]) == {"ok"} and len(gen) == 4
    assert gen.groupby("cell_id")["load_time_s"].nunique().max() == 1   # loaded once per cell
    assert sorted(gen["block"].unique()) == [0, 1]


def test_blocked_is_the_default_order_and_sequential_rows_carry_no_run_order(tmp_path):
    assert parse_config({"models": [TINY], "input_tokens": [4], "output_tokens": [2]}).order == "blocked"
    cfg = {"name": "seq", "models": [TINY], "input_tokens": [4, 6], "output_tokens": [2], "repeats": 2,
           "warmup": 0, "idle_s": 0, "isolate": False, "roofline": False, "quality": {"items": 0},
           "interference": {"max_retries": 0}, "order": "sequential"}
    seen: list[str] = []
    df = run_sweep(cfg, tmp_path, progress=False, on_repeat=seen.append)
    gen = df[df["phase"] == "generate"]
    assert seen == sorted(seen, key=seen.index) and seen[0] == seen[1] and seen[2] == seen[3]  # whole cells
    assert gen["run_order"].isna().all()          # the analysis must not take repeats for blocks


def test_a_sweep_that_changes_device_settings_runs_whole_cells_never_side_by_side(tmp_path, monkeypatch):
    """A setting is held for a cell's life and acts on the whole device: such cells are not interleaved."""
    from contextlib import contextmanager

    from nrg import axes
    from nrg.errors import ParameterError

    live: list[object] = []
    overlaps: list[list[object]] = []

    @contextmanager
    def setting(value):
        live.append(value)
        if len(live) > 1 and any(v is not None for v in live):   # a set device shared with another cell
            overlaps.append(list(live))
        try:
            yield lambda: {}
        finally:
            live.remove(value)

    def validate(values):
        if any(v not in (None, 1, 2) for v in values):
            raise ParameterError("knob: choose 1 or 2")

    axes.registered()  # providers first, so the test axis is removed again after the test
    monkeypatch.setitem(axes._REGISTRY, "knob_test",
                        axes.Axis("knob_test", None, validate, environment=setting, doc="test device setting"))
    cfg = {"name": "knob", "models": [TINY], "input_tokens": [4], "output_tokens": [2], "repeats": 3,
           "warmup": 0, "idle_s": 0, "isolate": False, "roofline": False, "quality": {"items": 0},
           "interference": {"max_retries": 0}, "axes": {"knob_test": [1, 2, None]}}
    df = run_sweep(cfg, tmp_path, progress=False)
    gen = df[df["phase"] == "generate"]
    assert len(gen) == 9 and gen["run_order"].isna().all()     # run as whole cells, one after another
    assert overlaps == []
    quiet = {**cfg, "name": "knob-default", "axes": {"knob_test": [None]}, "input_tokens": [4, 6]}
    gen = run_sweep(quiet, tmp_path / "b", progress=False).query("phase == 'generate'")
    assert gen["run_order"].notna().all() and overlaps == []   # nothing set: interleaved
