"""Run order as an experimental design: blocks interleave the repeats of different cells."""
from __future__ import annotations

import contextlib

import pytest

from nrg.sweep.config import parse_config
from nrg.sweep.run import run_sweep
from nrg.sweep.schedule.blocks import CellRun, Hooks, block_order, record_repeat, run_blocks, schedule

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
    run_blocks(runs, workers.__getitem__, "blocked", seed=1,
               hooks=Hooks(on_done=lambda cid, frame: done.append(cid)))
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

    from nrg.errors import ParameterError
    from nrg.sweep import axes

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


# ------------------------------------------------------------------ resuming from kept repeats

class _Fake:
    """A worker numbering its rows from ``prepare(next_repeat)``; samples from ``draw(cell_id, n)``."""

    def __init__(self, cell_id: str, draw, log: list) -> None:
        self.cell_id, self.draw, self.log = cell_id, draw, log
        self.next = 0

    def prepare(self, next_repeat: int = 0, retries: int = 0) -> None:
        self.next = next_repeat

    def repeat(self, block: int, run_order: int | None) -> tuple[list[dict], float]:
        self.log.append((block, run_order, self.cell_id, self.next))
        rows = [{"repeat": self.next, "phase": "generate", "block": block, "run_order": run_order}]
        self.next += 1
        return rows, self.draw(self.cell_id, self.next - 1)

    def finish(self) -> tuple[dict, list[dict]]:
        self.log.append(("finish", self.cell_id))
        return {}, []


class _Stop(KeyboardInterrupt):
    """Ctrl-C right after a repeat was kept."""


def _measure(runs: dict[str, CellRun], draw, stop_after: int | None = None, run_order: int | None = None):
    """Run the blocks with fake workers; returns (log, kept states, done cells); stops like Ctrl-C."""
    import json

    log: list = []
    kept: dict[str, dict] = {}
    done: list[str] = []
    workers: dict[str, _Fake] = {}

    def worker(cid: str) -> _Fake:
        if cid not in workers:
            workers[cid] = _Fake(cid, draw, log)
            workers[cid].prepare(runs[cid].next_repeat, runs[cid].retries)
        return workers[cid]

    def keep(cid: str, run: CellRun) -> None:
        kept[cid] = json.loads(json.dumps(run.state()))      # as the checkpoint file would hold it
        if stop_after is not None and sum(1 for e in log if e[0] != "finish") >= stop_after:
            raise _Stop()

    hooks = Hooks(checkpoint=keep, on_done=lambda cid, frame: done.append(cid))
    with contextlib.suppress(_Stop):
        run_blocks(runs, worker, "blocked", seed=5, hooks=hooks, run_order=run_order)
    return log, kept, done


def _resumed(cells: dict[str, CellRun], kept: dict[str, dict], done: list[str]) -> dict[str, CellRun]:
    """The runs a rerun starts from: unfinished cells, each with its kept repeats."""
    runs = {cid: CellRun(run.cell) for cid, run in cells.items() if cid not in done}
    for cid, run in runs.items():
        run.restore(kept.get(cid))
    return runs


def test_a_resumed_sweep_continues_the_interrupted_block_in_the_same_order_and_numbering():
    constant = lambda cid, n: 1.0  # noqa: E731
    full, _, _ = _measure(_runs(4, repeats=3), constant)
    assert len(full) == 12 + 4   # 12 repeats, 4 finishes
    for stop_after in (1, 5, 6, 10):
        first = _runs(4, repeats=3)
        log, kept, done = _measure(first, constant, stop_after=stop_after)
        assert sum(state["attempts"] for state in kept.values()) == stop_after   # every repeat kept
        last = max(r["run_order"] for s in kept.values() for r in s["rows"])
        rest, _, _ = _measure(_resumed(first, kept, done), constant, run_order=last + 1)
        repeats = [e for e in log + rest if e[0] != "finish"]
        assert repeats == [e for e in full if e[0] != "finish"], stop_after   # nothing measured twice


def test_the_stop_rule_is_applied_to_the_kept_samples():
    """Adaptive repeats: a steady cell stops at repeats.min, a noisy one at repeats.max, across a stop."""
    cells = parse_config({"models": [TINY], "input_tokens": [4, 5], "output_tokens": [2],
                          "repeats": {"min": 2, "max": 6, "ci_rel": 0.05}}).cells()
    steady, noisy = (c.cell_id for c in cells)
    draw = lambda cid, n: 1.0 if cid == steady else (1.0, 3.0)[n % 2]  # noqa: E731
    first = {c.cell_id: CellRun(c) for c in cells}
    log, kept, done = _measure(first, draw, stop_after=5)
    assert done == [steady] and kept[noisy]["attempts"] == 3
    rest, _, done_rest = _measure(_resumed(first, kept, done), draw)
    measured = [e[2] for e in log + rest if e[0] != "finish"]
    assert measured.count(steady) == 2 and measured.count(noisy) == 6
    assert done_rest == [noisy]
    assert [e[3] for e in log + rest if e[0] != "finish" and e[2] == noisy] == list(range(6))


def test_kept_repeats_that_meet_the_rule_are_finished_without_a_new_repeat():
    """Stopped between the last repeat and writing the cell: the rerun only finishes it."""
    first = _runs(1, repeats=2)
    (cid,) = first
    _log, kept, done = _measure(first, lambda c, n: 1.0, stop_after=2)
    assert kept[cid]["attempts"] == 2 and done == []
    rest, _, done_rest = _measure(_resumed(first, kept, done), lambda c, n: 1.0)
    assert rest == [("finish", cid)] and done_rest == [cid]


def test_next_repeat_and_retries_come_from_the_kept_rows():
    run = next(iter(_runs(1, repeats=5).values()))
    record_repeat(run, [{"repeat": 0, "phase": "generate"}], 1.0)
    record_repeat(run, [{"repeat": 1, "phase": "generate"}, {"repeat": 2, "phase": "generate"}], 1.0)
    assert (run.next_repeat, run.retries) == (3, 1)      # repeat 1 was flagged and redone as 2
    again = CellRun(run.cell)
    again.restore(run.state())
    assert (again.attempts, again.samples, again.next_repeat, again.retries) == (2, [1.0, 1.0], 3, 1)
