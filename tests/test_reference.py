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

from nrg import reference
from nrg.errors import ParameterError
from nrg.reference_estimate import Estimator, repeats_of
from nrg.reference_parts import OBSERVE_ONLY, PAPER_MODELS, parts
from nrg.sweep.config import parse_config
from nrg.sweep.store import RunStore

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
    assert [p.chapter for p in planned] == ["00_how_energy_is_measured", "02_sequence_length",
                                            "01_model_comparison", "04_network_tickets", "03_dvfs", "06_serving"]
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
])
def test_bad_parameters_are_refused_before_any_work(tmp_path, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        reference.run(out=tmp_path / "out", **{"device": "cpu", **kwargs})
    assert not (tmp_path / "out").exists()


def test_the_gate_starts_only_what_fits_and_bounds_its_time(tmp_path):
    part = parts("cpu")[1]
    est, cell, records = Estimator("cpu"), _cell(), []
    budget = reference.Budget(total_s=1000.0, margin_s=10.0)
    gate = reference._Gate(part, tmp_path, est, budget, records, failed={})
    timeout = gate(cell)
    assert records[-1].decision == "ran" and records[-1].estimate_s <= records[-1].remaining_s - 10.0
    assert timeout == pytest.approx(records[-1].remaining_s - 5.0)   # killed before the budget ends
    gate.current = None
    tight = reference.Budget(total_s=est.estimate(cell).total_s + 9.0, margin_s=10.0)
    gate = reference._Gate(part, tmp_path, est, tight, records, failed={})
    assert gate(cell) is None
    assert records[-1].decision == "not run" and records[-1].reason.startswith("budget: estimated")
    gate = reference._Gate(part, tmp_path, est, budget, records, failed={cell.cell_id: "ValueError: boom"})
    assert gate(cell) is None and records[-1].decision == "reused" and "not retried" in records[-1].reason
    killed = f"{reference.KILLED}=12.0\n..."
    gate = reference._Gate(part, tmp_path, est, budget, records, failed={cell.cell_id: killed})
    assert gate(cell) is not None                                # stopped by an earlier budget: retried


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


def _reference(out: Path, state: Path, budget_s: int, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BARE), str(ROOT / "src")]),
           "NRG_TEST_FAKE_H200": str(state), "NRG_CACHE_DIR": str(tmp_path / "cache"),
           "NRG_STATE_DIR": str(tmp_path / "state")}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nrg", "reference", "--device", "cpu", "--budget-s", str(budget_s),
                           "--out", str(out), "--no-progress", "--archive", str(tmp_path / "ref.tar.gz")],
                          capture_output=True, text=True, env=env, timeout=budget_s + 120)
    return done, time.perf_counter() - start


def _check_decisions(summary: dict) -> None:
    for cell in summary["cells"]:
        if cell["decision"] == "ran":
            assert cell["estimate_s"] <= cell["remaining_s"] - summary["margin_s"] + 1e-6, cell
        elif cell["reason"].startswith("budget"):
            assert cell["estimate_s"] > cell["remaining_s"] - summary["margin_s"], cell


@pytest.mark.slow
def test_a_budgeted_run_on_the_bare_image_writes_the_layout_and_sets_nothing(tmp_path):
    out, state = tmp_path / "ref", tmp_path / "h200.json"
    done, wall_s = _reference(out, state, 60, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert wall_s <= 60 + summary["margin_s"] + 20          # start-up of Python and torch before the clock
    assert summary["elapsed_s"] <= 60
    _check_decisions(summary)
    assert json.loads(state.read_text())["calls"] == []      # nothing was set on the GPU, by any process
    meters = json.loads((out / "00_how_energy_is_measured" / "meters.json").read_text())
    assert meters["status"] == "measured" and meters["gpu"] == "GPU 0 (NVIDIA H200)"
    assert 0.05 < meters["counter_update_period_s"] < 0.2 and meters["idle_power_w"] == pytest.approx(120, rel=0.3)
    assert math.isfinite(meters["agreement_pct_mean"])
    ran = [c for c in summary["cells"] if c["decision"] == "ran" and c["part"] != "meters"]
    assert ran and all(c["result"] in ("ok", "unsupported", "killed") for c in ran)
    rows = pd.concat(pd.read_parquet(p) for p in (out / "02_sequence_length" / "cells").glob("*.parquet"))
    assert (rows["gpu_clock_mhz_observed_mean"] == 1980).all() and rows["gpu_clock_mhz"].isna().all()
    assert (RunStore.at(out / "02_sequence_length").read_manifest() or {})["chapter"] == "02_sequence_length"
    assert any("bitsandbytes" in c["reason"] for c in summary["cells"] if c["part"] == "tickets")
    assert "Not measured, and why" in (out / "summary.md").read_text() and "archive:" in done.stdout
    with tarfile.open(tmp_path / "ref.tar.gz") as tar:
        assert "ref/summary.json" in tar.getnames()

    before = {p.name for p in out.rglob("*.parquet")}
    again, _ = _reference(out, state, 25, tmp_path)            # resumes: nothing measured twice
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads((out / "summary.json").read_text())
    _check_decisions(second)
    reused = [c for c in second["cells"] if c["decision"] == "reused"]
    assert len(reused) >= len(before) + 1                    # every finished cell, and the meters
    assert before <= {p.name for p in out.rglob("*.parquet")}
    assert json.loads(state.read_text())["calls"] == []


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
