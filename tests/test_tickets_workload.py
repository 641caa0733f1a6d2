"""Chapter 4's fine-tuning as a workload of the sweep runner: config, ids, cells, cache, CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nrg.errors import ParameterError
from nrg.sweep.config import KEYS, parse_config
from nrg.sweep.run import run_sweep
from nrg.tickets.options import DEFAULTS

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "notebooks" / "params" / "sweeps"


def tiny(**changes):  # type: ignore[no-untyped-def]
    """A root-cause sweep small enough for a test: 1-layer MiniLM, 24 tickets, 2 training steps."""
    config = {"name": "tiny-tickets", "workload": "finetune", "models": [{"name": "minilm-l6", "layers": 1}],
              "tasks": ["root_cause"], "axes": {"prune": ["none", "2:4"], "quant": ["none", "int8-dynamic"]},
              "repeats": 2, "warmup": 0, "idle_s": 0, "isolate": False,
              "finetune": {"n_tickets": 24, "classifier": {"batch_size": 8, "max_len": 48, "max_steps": 2}}}
    config.update(changes)
    return config


# ------------------------------------------------------------------ config and ids


def test_finetune_section_defaults_are_the_chapter_defaults() -> None:
    options = parse_config(tiny(finetune={})).settings.options
    assert options["n_tickets"] == DEFAULTS.n_tickets == 120 and options["output_tokens"] == 24
    assert options["classifier"] == DEFAULTS.classifier.to_dict()
    assert "workload" in KEYS and "finetune" in KEYS


@pytest.mark.parametrize("changes, match", [
    ({"finetune": {"n_tickest": 10}}, r"n_tickest.*n_tickets"),
    ({"finetune": {"classifier": {"lr": 0.1}}}, "learning_rate"),
    ({"finetune": {"classifier": {"seed": 3}}}, "sweep's seed"),
    ({"finetune": {"n_tickets": 1}}, "n_tickets"),
    ({"finetune": {"eval_fraction": 1.0}}, "eval_fraction"),
    ({"finetune": {"tickets_path": "/no/such/tickets.csv"}}, "no such file"),
    ({"batch_sizes": [4]}, "batch_sizes is not used by workload finetune; set finetune.classifier.batch_size"),
    ({"workload": "training"}, "finetune"),
    ({"workload": "generation"}, "finetune is only valid with workload: finetune"),
])
def test_bad_finetune_configs_fail_before_any_file(tmp_path: Path, changes: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        run_sweep(tiny(**changes), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_ticket_tasks_need_the_finetune_workload(tmp_path: Path) -> None:
    config = {"models": ["gpt2"], "tasks": ["root_cause"], "idle_s": 0}
    with pytest.raises(ParameterError, match="belong to workload 'finetune'; set workload: finetune"):
        run_sweep(config, tmp_path / "run", progress=False)
    with pytest.raises(ParameterError, match="tasks"):
        run_sweep(tiny(tasks=["qa"]), tmp_path / "run", progress=False)
    with pytest.raises(ParameterError, match="encoder-only"):
        run_sweep(tiny(tasks=["response"]), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_cell_id_hashes_only_what_its_task_uses(tmp_path: Path) -> None:
    def ids(**section):  # type: ignore[no-untyped-def]
        return [c.cell_id for c in parse_config(tiny(finetune={"n_tickets": 24, **section})).cells()]

    base = ids()
    assert ids(generator={"max_steps": 3}, output_tokens=8) == base       # response-only settings
    assert ids(classifier={"max_steps": 3}) != base and ids(noise=0.2) != base
    data = tmp_path / "mine.csv"
    data.write_text("text,label\nLOS on port 1,fibre_cut\nmains down,power_failure\n")
    first = ids(tickets_path=str(data))
    data.write_text("text,label\nLOS on port 2,fibre_cut\nmains down,power_failure\n")
    assert ids(tickets_path=str(data)) != first                              # new content, new cells


def test_the_shipped_configs_are_the_chapters_default_sweeps(tmp_path: Path) -> None:
    from nrg.book.chapters.c04_network_tickets import driver as chapter

    params = chapter.Params(run_dir=str(tmp_path / "run"))
    for task, config in params["configs"].items():
        shipped = parse_config(SWEEPS / f"04_network_tickets_{task}.yaml")
        assert [c.cell_id for c in shipped.cells()] == [c.cell_id for c in parse_config(config).cells()]
        assert (shipped.name, shipped.chapter) == (config["name"], "04_network_tickets")


# ------------------------------------------------------------------ cells


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("tickets")
    return out, run_sweep(tiny(), out, progress=False)


def test_rows_per_phase_window_and_train_repeat(tiny_run: tuple[Path, pd.DataFrame]) -> None:
    _, rows = tiny_run
    assert rows["cell_id"].nunique() == 4 and set(rows["phase"]) == {"finetune", "inference"}
    inference = rows[rows["phase"] == "inference"]
    assert set(inference["status"]) == {"ok"} and inference.groupby("cell_id").size().eq(2).all()
    assert sorted(inference["window"].unique()) == [0, 1] and inference["repeats_n"].eq(2).all()
    assert inference.groupby("cell_id")["repeat"].nunique().eq(2).all()
    ok = rows[rows["status"] == "ok"]
    assert (ok["energy_j"] > 0).all() and set(ok["energy_method"]) == {"estimated"}
    assert ok["accuracy"].between(0, 1).all() and ok["macro_f1"].notna().all()
    assert set(rows["model"]) == {"minilm-l6"} and set(rows["layers"]) == {1}   # name + layers column
    assert set(rows["batch_size"]) == {8} and set(rows["input_tokens"]) == {48}
    assert set(rows["dataset"]) == {"synthetic-n24-s0-noise0.1"}
    two_four = ok[ok["prune"] == "2:4"]
    assert two_four["sparsity"].between(0.49, 0.51).all() and set(two_four["kernel"]) == {"dense"}


def test_int8_dynamic_finetune_is_unsupported_and_reuses_the_cached_float_model(
        tiny_run: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    out, rows = tiny_run
    dynamic = rows[rows["quant"] == "int8-dynamic"]
    finetune = dynamic[dynamic["phase"] == "finetune"]
    assert set(finetune["status"]) == {"unsupported"} and finetune["error"].str.contains("LoRA cannot wrap").all()
    assert set(dynamic["finetune_path"]) == {"lora-float-then-quantize"}
    # blocked order (the default) shuffles the cells: an int8 cell reuses the float model its `none`
    # sibling (same pruning and tuned model) trained before it, and trains one itself when it came first
    for _, row in dynamic[dynamic["phase"] == "inference"].iterrows():
        sibling = rows[(rows["quant"] == "none") & (rows["prune"] == row["prune"]) & (rows["phase"] == "finetune")
                       & (rows["train_repeat"] == row["train_repeat"])]
        first = int(sibling["run_order"].iloc[0]) < int(row["run_order"])
        assert row["float_tuned_from"] == ("cache" if first else "trained")
    assert len(list((out / "cache" / "float-tuned").iterdir())) == 2          # one per pruning
    alone = run_sweep(tiny(axes={"prune": ["none", "2:4"], "quant": ["int8-dynamic"]}), tmp_path, progress=False)
    assert set(alone["float_tuned_from"]) == {"trained"}
    for prune in ("none", "2:4"):
        a = alone[(alone["prune"] == prune) & (alone["phase"] == "inference")].iloc[0]
        b = dynamic[(dynamic["prune"] == prune) & (dynamic["phase"] == "inference")].iloc[0]
        assert (a["accuracy"], a["macro_f1"]) == (b["accuracy"], b["macro_f1"])   # the same weights


def test_train_repeats_are_different_seeds_and_rows_carry_the_idle_baseline(tmp_path: Path) -> None:
    rows = run_sweep(tiny(axes={"prune": ["none"], "quant": ["none"]}, repeats=1, idle_s=0.2,
                          finetune={"n_tickets": 24, "train_repeats": 2,
                                    "classifier": {"batch_size": 8, "max_len": 48, "max_steps": 2}}),
                     tmp_path, progress=False)
    finetune = rows[rows["phase"] == "finetune"].sort_values("train_repeat")
    assert finetune["train_repeat"].tolist() == [0, 1] and finetune["repeat"].tolist() == [0, 1]
    losses = finetune["train_loss_first"].tolist()
    assert losses[0] != losses[1]
    assert (rows["idle_power_w"] > 0).all() and (rows["net_energy_j"] < rows["energy_j"]).all()


def _two_cells(**changes):  # type: ignore[no-untyped-def]
    """Two cells of two tuned models each, one inference window per model."""
    return tiny(axes={"prune": ["none", "2:4"], "quant": ["none"]}, repeats=1,
                finetune={"n_tickets": 24, "train_repeats": 2,
                          "classifier": {"batch_size": 8, "max_len": 48, "max_steps": 1}}, **changes)


def test_a_fine_tuning_sweep_runs_its_tuned_models_in_randomized_blocks(tmp_path: Path) -> None:
    rows = run_sweep(_two_cells(order="blocked"), tmp_path / "blocked", progress=False)
    tuned = rows[rows["phase"] == "finetune"]
    assert sorted(tuned["run_order"]) == [0, 1, 2, 3] and (tuned["block"] == tuned["train_repeat"]).all()
    for _, cell in tuned.groupby("cell_id"):   # interleaved: each cell's first model in block 0, not both in a row
        first, second = cell.sort_values("train_repeat")["run_order"].tolist()
        assert first < 2 <= second
    inference = rows[rows["phase"] == "inference"]
    assert (inference.set_index(["cell_id", "train_repeat"])["run_order"]
            == tuned.set_index(["cell_id", "train_repeat"])["run_order"]).all()
    assert not rows.duplicated(["cell_id", "phase", "repeat"]).any() and rows["repeats_n"].eq(2).all()
    whole = run_sweep(_two_cells(order="sequential"), tmp_path / "sequential", progress=False)
    assert "run_order" not in whole or whole["run_order"].isna().all()   # run whole: no blocks to analyse
    assert sorted(whole["cell_id"].unique()) == sorted(rows["cell_id"].unique())


def test_a_stopped_fine_tuning_sweep_continues_with_the_next_tuned_model(tmp_path: Path) -> None:
    from nrg.sweep.runfolder import checkpoints
    from nrg.sweep.schedule.signals import SweepInterrupted

    seen: list[str] = []

    def stop_after_three(cell_id: str) -> None:
        seen.append(cell_id)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(SweepInterrupted) as info:
        run_sweep(_two_cells(), tmp_path, progress=False, on_repeat=stop_after_three)
    assert info.value.cells_done == 0 and info.value.repeats_kept == 3   # stopped before the first was written
    states = [checkpoints.read(tmp_path, cid) for cid in checkpoints.cell_ids(tmp_path)]
    kept = next(s for s in states if s is not None and s["attempts"] == 1)
    assert {r["train_repeat"] for r in kept["rows"]} == {0}
    again: list[str] = []
    rows = run_sweep(_two_cells(), tmp_path, progress=False, on_repeat=again.append)
    assert again == [kept["cell_id"]]                     # only the missing tuned model
    cell = rows[rows["cell_id"] == kept["cell_id"]]
    tuned = cell[cell["phase"] == "finetune"].sort_values("train_repeat")
    assert tuned["train_repeat"].tolist() == [0, 1] and tuned["repeat"].tolist() == [0, 1]
    assert sorted(cell[cell["phase"] == "inference"]["repeat"]) == [0, 1]
    assert tuned["train_loss_first"].iloc[0] != tuned["train_loss_first"].iloc[1]   # seed + 1, not seed again
    assert sorted(rows["run_order"].dropna().astype(int).unique()) == [0, 1, 2, 3]


@pytest.mark.process
def test_an_isolated_fine_tuning_cell_keeps_its_model_in_a_worker_between_blocks(tmp_path: Path) -> None:
    rows = run_sweep(_two_cells(isolate=True), tmp_path,
                     progress=False)
    assert set(rows["status"]) == {"ok"} and sorted(rows[rows["phase"] == "finetune"]["run_order"]) == [0, 1, 2, 3]
    logs = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert len([name for name in logs if name.endswith(".log")]) == 2   # one worker per cell, not per repeat


def test_a_quantization_the_device_cannot_run_is_an_unsupported_cell(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The device (faked: a machine without nf4 kernels) decides; the runner keeps the reason as the row."""
    import nrg.compress.quantization as quantization
    from nrg.book.chapters.c04_network_tickets import analysis

    monkeypatch.setattr(quantization, "support",
                        lambda method, device_type: "no 4-bit kernel on this device" if method == "nf4" else "")
    rows = run_sweep(tiny(axes={"prune": ["none"], "quant": ["nf4"]}), tmp_path, progress=False)
    assert len(rows) == 1 and rows["status"].iloc[0] == "unsupported"
    assert "no 4-bit kernel on this device" in rows["error"].iloc[0]
    assert analysis.not_run(rows)["phase"].tolist() == [analysis.WHOLE_CELL]


def test_the_float_cache_round_trips_and_refuses_other_parameters(tmp_path: Path) -> None:
    from nrg.tickets.float_tuned import FloatCache

    cache = FloatCache.for_run(str(tmp_path))
    trained = torch.nn.Linear(4, 2)
    cache.save("k", trained, {"what": "test"})
    cache.save("k", torch.nn.Linear(4, 2), {})           # an existing entry is kept, not replaced
    fresh = torch.nn.Linear(4, 2)
    assert cache.load("k", fresh) and torch.equal(fresh.weight, trained.weight)
    assert not cache.load("k", torch.nn.Linear(4, 3))    # other shapes: train instead
    assert not cache.load("missing", fresh) and not FloatCache.for_run(None).load("k", fresh)
    assert [p.name for p in (tmp_path / "cache" / "float-tuned").iterdir()] == ["k"]   # no temporary left


def test_merged_lora_keeps_the_pruning_pattern() -> None:
    import copy

    transformers = pytest.importorskip("transformers")
    from nrg.compress import prune
    from nrg.tickets.finetune import TrainSettings, attach_lora
    from nrg.tickets.float_tuned import reapply_mask

    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, vocab_size=384, num_labels=3)
    pruned, _ = prune(transformers.BertForSequenceClassification(config), "2:4", sparse_kernels=False)
    tuned = attach_lora(copy.deepcopy(pruned), "classifier", TrainSettings())
    for name, param in tuned.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param)  # a non-zero update, as after training
    merged = tuned.merge_and_unload()
    query = "bert.encoder.layer.0.attention.self.query"
    assert (merged.get_submodule(query).weight == 0).float().mean() < 0.5   # merging filled zeros in
    reapply_mask(merged, pruned)
    assert (merged.get_submodule(query).weight == 0).float().mean() == pytest.approx(0.5)


# ------------------------------------------------------------------ nrg sweep, isolated cells


def _shrunk(name: str, out: Path, **changes) -> Path:  # type: ignore[no-untyped-def]
    config = yaml.safe_load((SWEEPS / name).read_text())
    config.update(changes)
    path = out / name
    path.write_text(yaml.safe_dump(config))
    return path


def _nrg_sweep(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "nrg", "sweep", *args, "--no-progress"], env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.process
@pytest.mark.timeout(1800)   # several `nrg sweep` runs of up to 900 s each
def test_nrg_sweep_runs_chapter_4_with_isolated_cells_timeouts_and_resume(tmp_path: Path) -> None:
    """The shipped configs, shrunk: a cell per process; a timeout is a failed row; --retry-failed reruns it."""
    from nrg.book.chapters.c04_network_tickets import analysis
    from nrg.sweep.runfolder import store

    small = {"n_tickets": 24, "classifier": {"batch_size": 8, "max_len": 48, "max_steps": 1},
             "generator": {"batch_size": 2, "max_len": 96, "max_steps": 1}, "n_generate": 2, "output_tokens": 2}
    root = _shrunk("04_network_tickets_root_cause.yaml", tmp_path, models=[{"name": "minilm-l6", "layers": 1}],
                   axes={"prune": ["none"], "quant": ["none", "int8-dynamic"]}, repeats=1, warmup=0,
                   finetune=small, cell_timeout_s=0.5)
    response = _shrunk("04_network_tickets_response.yaml", tmp_path, models=[{"name": "smollm2-135m", "layers": 1}],
                       axes={"prune": ["none"], "quant": ["none"]}, repeats=1, warmup=0, finetune=small)
    out = tmp_path / "run"
    first = _nrg_sweep(str(root), "--out", str(out))
    assert first.returncode == 1, first.stderr[-2000:]            # every cell killed after 0.5 s
    failed = store.load(out)
    assert set(failed["status"]) == {"failed"} and failed["error"].str.contains("cell_timeout_s=0.5").all()
    root.write_text(root.read_text().replace("cell_timeout_s: 0.5", "cell_timeout_s: 600"))
    again = _nrg_sweep(str(root), "--out", str(out), "--retry-failed")
    assert again.returncode == 0, again.stderr[-2000:]
    done = _nrg_sweep(str(response), "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    rows = store.load(out)
    assert rows["cell_id"].nunique() == 3 and set(rows["task"]) == {"root_cause", "response"}
    assert set(rows["chapter"]) == {"04_network_tickets"} and rows["hostname"].notna().all()
    assert len(list((out / "logs").glob("*.log"))) == 3             # each cell ran in its own process
    tuned = rows[(rows["task"] == "root_cause") & (rows["phase"] == "finetune")].set_index("quant")
    first = tuned.loc["none", "run_order"] < tuned.loc["int8-dynamic", "run_order"]   # blocked order decides
    assert set(rows.loc[rows["quant"] == "int8-dynamic", "float_tuned_from"].dropna()) == {
        "cache" if first else "trained"}
    assert set(analysis.not_run(rows)["phase"]) == {"finetune"}    # only int8-dynamic's fine-tuning
    responses = rows[(rows["task"] == "response") & (rows["phase"] == "inference")]
    assert responses["rouge_l"].notna().all() and responses["energy_per_token_j"].notna().all()
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.parquet")}
    assert _nrg_sweep(str(root), "--out", str(out)).returncode == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.parquet")} == stamps   # resumed
    assert json.loads((out / "manifest.json").read_text())["chapter"] == "04_network_tickets"
