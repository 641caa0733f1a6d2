"""``nrg reference --plan``: what a budget buys on a given GPU -- nothing run, nothing written."""
from __future__ import annotations

import json

import pytest

from nrg.commands.cli import main
from nrg.errors import ParameterError
from nrg.reference import plan as reference_plan
from nrg.reference import state as reference_state
from nrg.reference.estimate import Estimator
from nrg.reference.parts import parts
from nrg.sweep.config import parse_config


def _snapshot(folder):
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")} if folder.exists() else None


def test_the_plan_walks_the_rounds_within_the_budget_and_writes_nothing(tmp_path):
    result = reference_plan.plan(200, device="cuda", out=tmp_path / "none", gpu_name="NVIDIA H200",
                                 memory_gib=141)
    assert not (tmp_path / "none").exists()
    rows = result["rows"]
    ran = [r for r in rows if r["decision"] == "would run"]
    assert ran[0]["part"] == "meters"
    assert [r["part"] for r in ran[1:5]] == ["sequence_length", "model_comparison", "tickets", "dvfs"]  # one each
    assert all(r["reason"] == "first round: one cell per part" for r in ran[1:5])
    assert ran[-1]["ends_at_s"] == pytest.approx(result["would_run_s"])
    assert result["would_run_s"] <= 200 - result["margin_s"]
    assert result["everything_s"] > result["would_run_s"]                    # 200 s does not buy everything
    assert any(r["decision"] == "not run: budget" for r in rows)
    assert result["gpu"]["bandwidth_bytes_per_s"] == 4.8e12 and "data sheet" in result["gpu"]["source"]
    text = reference_plan.plan_text(result)
    assert "NVIDIA H200, 141 GiB, 4.80 TB/s" in text and "nothing is run or written" in text


def test_memory_and_bandwidth_change_the_plan(tmp_path):
    small = reference_plan.plan(10_000, device="cuda", gpu_name="NVIDIA L4", memory_gib=8)
    flagged = {r["name"].split()[0] for r in small["rows"] if r["decision"] == "not run: memory"}
    assert "mistral-7b-v0.1" in flagged and "gpt2" not in flagged
    h100 = reference_plan.plan(10_000, device="cuda", gpu_name="NVIDIA H100 80GB HBM3", memory_gib=80)
    h200 = reference_plan.plan(10_000, device="cuda", gpu_name="NVIDIA H200", memory_gib=141)
    assert h200["everything_s"] < h100["everything_s"]                         # decode is bandwidth-bound
    slow = reference_plan.plan(10_000, device="cuda", gpu_name="NVIDIA H200", memory_gib=141, bandwidth_gbs=500)
    assert slow["everything_s"] > h200["everything_s"] and "bandwidth: given" in slow["gpu"]["source"]


def test_an_earlier_run_folder_informs_the_plan_and_is_left_as_it_was(tmp_path):
    out = tmp_path / "ref"
    out.mkdir()
    cell = parse_config(parts("cuda")[1].configs[0]).cells()[0]
    fresh = Estimator("cuda", peak_bandwidth_bytes_per_s=4.8e12)
    slower = Estimator("cuda", ratios={"load": [3.0], "prefill": [3.0], "tpot": [3.0]}, overheads_s=[40.0])
    state = reference_state.State("cuda:NVIDIA H200", slower.corrections(),
                                  {f"02_sequence_length/{cell.cell_id}": {"name": "x"}})
    reference_state.save(out, state)
    before = _snapshot(out)
    result = reference_plan.plan(300, device="cuda", out=out, gpu_name="NVIDIA H200", memory_gib=141)
    assert _snapshot(out) == before
    assert "1 cells of earlier runs" in result["estimator_from"]
    first = next(r for r in result["rows"] if r["decision"] == "would run")
    assert first["reason"] == "stopped in an earlier run: first"
    assert first["estimate_s"] > fresh.estimate(cell).total_s + 25              # the folder's corrections count
    other = reference_plan.plan(300, device="cuda", out=out, gpu_name="NVIDIA H100 80GB HBM3", memory_gib=80)
    assert "not used" in other["estimator_from"]                               # another GPU: priors again


@pytest.mark.parametrize("kwargs, message", [
    ({"budget_s": 0}, "budget_s=0"), ({"budget_s": 60, "memory_gib": -1}, "memory_gib=-1"),
    ({"budget_s": 60, "bandwidth_gbs": "fast"}, "bandwidth_gbs='fast'"), ({"budget_s": 60, "device": "tpu"}, "tpu"),
])
def test_bad_plan_parameters_are_refused(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        reference_plan.plan(**{"gpu_name": "NVIDIA H200", **kwargs})


def test_the_cli_plans_without_out_and_refuses_gpu_options_outside_a_plan(tmp_path, capsys):
    assert main(["reference", "--plan", "--budget-s", "120", "--device", "cpu"]) == 0
    assert "plan for nrg reference on cpu: the CPU" in capsys.readouterr().out
    assert main(["reference", "--budget-s", "120", "--device", "cpu"]) == 2
    assert "--out is required" in capsys.readouterr().err
    assert main(["reference", "--budget-s", "120", "--device", "cpu", "--out", str(tmp_path / "o"),
                 "--gpu-name", "NVIDIA H200"]) == 2
    assert "only valid with --plan" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert json.dumps(reference_plan.plan(60, device="cpu"), default=str)      # the plan is plain data


def test_chapters_plan_only_their_parts_and_a_wrong_one_is_named_with_the_valid(capsys):
    """``--chapters``: only the named chapters' parts, in the usual order (e.g. to fill in one chapter)."""
    every = {r["part"] for r in reference_plan.plan(10_000, device="cpu")["rows"]}
    assert {"meters", "sequence_length", "model_comparison"} <= every
    one = reference_plan.plan(10_000, device="cpu", chapters=["02_sequence_length"])
    assert {r["part"] for r in one["rows"]} == {"sequence_length"} and one["chapters"] == ["02_sequence_length"]
    assert "only the parts of 02_sequence_length" in reference_plan.plan_text(one)
    two = parts("cpu", ["02_sequence_length", "00_how_energy_is_measured"])
    assert [p.name for p in two] == ["meters", "sequence_length"]          # priority order, not the given one
    assert main(["reference", "--plan", "--budget-s", "60", "--device", "cpu", "--chapters", "nope"]) == 2
    err = capsys.readouterr().err
    assert "chapters='nope' is not valid" in err and "'02_sequence_length'" in err
