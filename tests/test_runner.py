"""The runner end to end on tiny models: phases, repeats, sources, tasks, axes, failures, isolation."""
from __future__ import annotations

import contextlib
import math

import pandas as pd
import pytest

from fakes.nvml import FakeGpu, FakeNvml
from fakes.sysfs import FakePowercap
from nrg.errors import ParameterError
from nrg.models import PAPER_MODELS
from nrg.sweep import axes
from nrg.sweep.run import run_sweep
from nrg.sweep.runfolder import store
from nrg.tasks import TASKS

TINY = {"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}


def config(**changes):
    # interference retries off: the repeat counts below must not depend on this machine's load
    cfg = {"name": "t", "chapter": "01", "models": [TINY], "input_tokens": [8], "output_tokens": [4],
           "repeats": 2, "warmup": 0, "idle_s": 0, "isolate": False, "roofline": False,
           "interference": {"max_retries": 0}}
    cfg.update(changes)
    return cfg


def test_rows_per_phase_and_repeat_with_consistent_measures(tmp_path):
    df = run_sweep(config(repeats=3, batch_sizes=[2], output_tokens=[5], roofline=True), tmp_path,
                   progress=False)
    assert (df["status"] == "ok").all()
    assert df["run_id"].nunique() == 1 and (df["chapter"] == "01").all()
    assert sorted(df.groupby("phase").size().items()) == [("decode", 3), ("generate", 3), ("prefill", 3)]
    for measure in ("time_s", "energy_j"):   # one generate cut in two: the parts add up exactly
        wide = df.pivot(index="repeat", columns="phase", values=measure)
        assert (wide["decode"] + wide["prefill"] - wide["generate"]).abs().max() < 1e-9, measure
        assert (wide > 0).all().all(), measure
    assert (df["phase_method"] == "one-pass-hook").all()
    gen = df[df.phase == "generate"]
    assert (gen["tokens"] == 2 * 5).all() and (df[df.phase == "prefill"]["tokens"] == 2 * 8).all()
    assert ((gen["tokens_per_s"] - gen["tokens"] / gen["time_s"]).abs() < 1e-9).all()
    assert ((gen["energy_per_token_j"] - gen["energy_j"] / gen["tokens"]).abs() < 1e-12).all()
    assert (gen["ttft_s"] == df[df.phase == "prefill"]["time_s"].to_numpy()).all()
    assert (df["repeats_n"] == 3).all() and (df["energy_method"] == "estimated").all()
    assert (df["roofline_time_s"] > 0).all()
    assert ((df["roofline_fraction"] - df["roofline_time_s"] / df["time_s"]).abs() < 1e-12).all()
    assert (df["peak_mem_bytes"] > 0).all() and (df["n_params"] > 0).all()
    for col in ("hostname", "torch", "git_sha", "started_at", "cpu_energy_j"):
        assert df[col].notna().all(), col
    assert (df["avg_power_w"] > 0).all()
    decode = df[df.phase == "decode"]
    assert ((decode["tpot_s"] - decode["time_s"] / 4).abs() < 1e-12).all()   # 5 tokens: 4 after the first
    itl = df[["itl_p50_s", "itl_p90_s", "itl_p99_s"]]
    assert (itl.notna().all(axis=None) and (itl["itl_p50_s"] <= itl["itl_p90_s"]).all()
            and (itl["itl_p90_s"] <= itl["itl_p99_s"]).all())
    assert (df["other_cpu_s"] >= 0).all() and (df["other_cpu_frac"] >= 0).all()


def test_adaptive_repeats_stay_within_policy(tmp_path):
    df = run_sweep(config(repeats={"min": 3, "max": 5, "ci_rel": 0.5}), tmp_path, progress=False)
    n = df["repeats_n"].iloc[0]
    assert 3 <= n <= 5 and df["repeat"].nunique() == n
    assert n == 5 or df["ci_rel_halfwidth"].iloc[0] <= 0.5


def test_rerun_skips_finished_cells(tmp_path):
    first = run_sweep(config(input_tokens=[8, 12]), tmp_path, progress=False)
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "cells").iterdir()}
    again = run_sweep(config(input_tokens=[8, 12, 16]), tmp_path, progress=False)
    assert all(p.stat().st_mtime_ns == t for p, t in files.items())      # not rewritten
    assert len(again) == len(first) * 3 // 2
    assert not again.duplicated(["cell_id", "repeat", "phase"]).any()
    assert again["run_id"].nunique() == 1


def test_idle_baseline_is_subtracted(tmp_path):
    df = run_sweep(config(idle_s=0.3), tmp_path, progress=False)
    assert (df["idle_power_w"] > 0).all()
    expected = df["energy_j"] - df["idle_power_w"] * df["time_s"]
    assert ((df["net_energy_j"] - expected).abs() < 1e-9).all()


def test_every_paper_architecture_runs_tiny(tmp_path):
    models = [{"name": m, "weights": "random", "layers": 1, "tiny": True} for m in PAPER_MODELS]
    models.append({"name": "smollm2-135m", "weights": "random", "layers": 1, "tiny": True})
    df = run_sweep(config(models=models, repeats=1, output_tokens=[3]), tmp_path, progress=False)
    assert set(df["model"]) == {*PAPER_MODELS, "smollm2-135m"}
    failed = df[df["status"] != "ok"]
    assert failed.empty, failed[["model", "error"]].to_string()


def test_gpu_counter_and_sampling_sources_through_the_runner(tmp_path):
    fake = FakeNvml([FakeGpu(power_mw=100_000), FakeGpu(power_mw=50_000, counter_supported=False)])
    df = run_sweep(config(meters=["nvml", "estimate"]), tmp_path, progress=False,
                   monitor_options={"nvml_module": fake})
    gen = df[df.phase == "generate"]
    assert set(gen["energy_source"].str.split("; ").explode().str.split("=").str[0]) == {"gpu:0", "gpu:1", "cpu", "dram"}
    # 100 W + 50 W of fake GPUs: the GPU energy follows the window's time
    assert ((gen["gpu_energy_j"] / gen["time_s"]) - 150).abs().max() < 15
    assert (gen["energy_method"] == "estimated").all()        # weakest of counter, integrated, estimate


def test_rapl_source_through_the_runner(tmp_path):
    sysfs = FakePowercap(tmp_path / "root")
    package = sysfs.add_package(0)
    dram = sysfs.add_dram(0)
    with sysfs.running({package: 20.0, dram: 5.0}):   # updated every 1 ms like real RAPL counters
        df = run_sweep(config(meters=["rapl"], output_tokens=[64], repeats=2), tmp_path / "run",
                       progress=False, monitor_options={"sysfs_root": tmp_path / "root"})
    gen = df[df.phase == "generate"]
    assert (gen["energy_method"] == "counter").all()
    assert (gen["cpu_energy_j"] > 0).all() and (gen["dram_energy_j"] > 0).all()
    assert (gen["dram_energy_j"] < gen["cpu_energy_j"]).all()


@pytest.fixture(scope="module")
def tiny_real_model(tmp_path_factory):
    """A tiny Llama saved with a byte-level tokenizer: 'real' weights from a local folder, offline."""
    import torch
    import transformers

    folder = tmp_path_factory.mktemp("tiny-real")
    tok = transformers.ByT5Tokenizer()
    cfg = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=1024, eos_token_id=tok.eos_token_id,
                                   pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("task", TASKS)
def test_every_task_is_measured_and_scored(tmp_path, tiny_real_model, task):
    df = run_sweep(config(models=[{"name": tiny_real_model, "weights": "real"}], tasks=[task],
                          input_tokens=[400], output_tokens=[4], repeats=1, quality={"items": 2}),
                   tmp_path, progress=False)
    assert (df["status"] == "ok").all(), df["error"].iloc[0]
    assert (df["weights"] == "real").all() and df["dataset"].notna().all()
    inference = df[df.phase == "inference"]
    assert len(inference) == 1 and inference["tokens"].iloc[0] > 0
    assert df["interference"].map(type).eq(bool).all()      # the quality window is judged too
    metrics = {"generation": "exact_match", "qa": "f1", "summarization": "rouge_l"}[task]
    assert df[metrics].between(0, 1).all()


@pytest.mark.parametrize("task", TASKS)
def test_input_too_short_for_the_prompt_template_is_refused_up_front(tmp_path, tiny_real_model, task):
    """The check's minimum is exactly what the cell needs: one token less is refused, nothing written."""
    import transformers

    from nrg.tasks import get_task

    tok = transformers.AutoTokenizer.from_pretrained(tiny_real_model)
    t = get_task(task)
    item = t.items(None, seed=0)[0]
    need = t.min_input_tokens(item, tok)
    assert need > 1 and len(t.prompt_ids(item, tok, need)) == need
    model = [{"name": tiny_real_model, "weights": "real"}]
    short = tmp_path / "short"
    with pytest.raises(ParameterError, match=rf"input_tokens={need - 1} is too small for task "
                                             rf"'{task}'.*input_tokens >= {need}"):
        run_sweep(config(models=model, tasks=[task], input_tokens=[need - 1, 400], output_tokens=[2],
                         repeats=1, quality={"items": 0}), short, progress=False)
    assert not short.exists()
    df = run_sweep(config(models=model, tasks=[task], input_tokens=[need], output_tokens=[2],
                          repeats=1, quality={"items": 0}), tmp_path / "ok", progress=False)
    assert (df["status"] == "ok").all(), df["error"].iloc[0]


def _failing_axis(name: str, calls: list[str]) -> axes.Axis:
    def transform(loaded, value):
        if value == "broken":
            raise RuntimeError("cannot apply 'broken' to this model")
        return loaded, {f"{name}_applied": value}

    @contextlib.contextmanager
    def environment(value):
        calls.append(f"enter {value}")
        yield lambda: {f"{name}_observed": f"seen {value}"}
        calls.append(f"exit {value}")

    return axes.Axis(name, "none", validate=lambda values: None, environment=environment,
                     transform=transform)


def test_failed_cell_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(axes._REGISTRY, "test_mode", _failing_axis("test_mode", calls))
    df = run_sweep(config(axes={"test_mode": ["none", "broken", "fine"]}), tmp_path, progress=False)
    by_status = df.drop_duplicates("cell_id").set_index("test_mode")["status"].to_dict()
    assert by_status == {"none": "ok", "broken": "failed", "fine": "ok"}
    broken = df[df.test_mode == "broken"]
    assert len(broken) == 1 and "cannot apply 'broken'" in broken["error"].iloc[0]
    assert broken["model"].iloc[0] == "gpt2" and math.isnan(broken["time_s"].iloc[0])
    fine = df[df.test_mode == "fine"]
    assert (fine["test_mode_applied"] == "fine").all()
    assert (fine["test_mode_observed"] == "seen fine").all()
    # an environment is entered around each repeat (and warm-up) and left right after: never nested,
    # never left set while another cell measures
    assert calls[0::2] == [c.replace("exit", "enter") for c in calls[1::2]]
    assert all(c.startswith("enter") for c in calls[0::2])
    assert {c.split()[1] for c in calls} == {"none", "fine"}


@pytest.mark.process
def test_isolated_cells_record_crashes_and_model_errors(tmp_path):
    # a sliding window of 0 tokens passes every check but fails inside attention: a model error
    broken = {"name": "mistral-7b-v0.1", "weights": "random", "layers": 1, "tiny": True,
              "overrides": {"sliding_window": 0}}
    df = run_sweep(config(models=[TINY, broken], isolate=True), tmp_path, progress=False)
    status = df.drop_duplicates("cell_id").set_index("model")["status"].to_dict()
    assert status == {"gpt2": "ok", "mistral-7b-v0.1": "failed"}
    assert "RuntimeError" in df[df.model == "mistral-7b-v0.1"]["error"].iloc[0]
    assert (tmp_path / "logs").is_dir()


@pytest.mark.process
def test_isolated_cell_past_its_timeout_is_killed_and_recorded(tmp_path):
    df = run_sweep(config(isolate=True, cell_timeout_s=0.5), tmp_path, progress=False)
    assert df["status"].tolist() == ["failed"]
    assert "cell_timeout_s=0.5" in df["error"].iloc[0]


def test_monitor_options_need_in_process_cells(tmp_path):
    with pytest.raises(ParameterError, match="isolate=False"):
        run_sweep(config(isolate=True), tmp_path / "x", monitor_options={"sysfs_root": tmp_path})
    assert not (tmp_path / "x").exists()


def test_load_matches_what_run_sweep_returned(tmp_path):
    df = run_sweep(config(), tmp_path, progress=False)
    pd.testing.assert_frame_equal(df, store.load(tmp_path))
