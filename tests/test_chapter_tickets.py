"""Chapter 4 (fault tickets): parameter checks, replication and reuse in the study, the analysis, the notebook."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nrg.chapters import tickets as chapter
from nrg.chapters import tickets_analysis as analysis
from nrg.errors import ParameterError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ parameters


@pytest.mark.parametrize("kwargs, match", [
    ({"quant": ["none", "int2"]}, r"int8-dynamic.*nf4|nf4.*int8-dynamic"),
    ({"response_quant": ["q3"]}, "nf4"),
    ({"prune": ["unstructured:1.5"]}, r"\[0, 1\)"),
    ({"prune": ["structured:-0.1"]}, r"\[0, 1\)"),
    ({"prune": ["magic"]}, "unstructured:<ratio>"),
    ({"w": 1.5}, r"w=.*\[0(\.0)?, 1(\.0)?\]"),
    ({"w": -0.1}, "w="),
    ({"tasks": ["triage"]}, "root_cause"),
    ({"classifier": {"epochs": 1, "lr": 0.1}}, "learning_rate"),
    ({"metrics": {"root_cause": "rouge_l"}}, "macro_f1"),
    ({"repeats": 0}, "repeats"),
    ({"device": "gpu"}, "cuda"),
    ({"colour": "blue"}, "unknown parameter"),
])
def test_bad_parameters_name_the_valid_values(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        chapter.check(run_dir=str(tmp_path / "run"), **kwargs)
    assert not (tmp_path / "run").exists()


def test_papermill_strings_are_parsed(tmp_path: Path) -> None:
    params = chapter.check(quant='["none", "nf4"]', prune='["none", "2:4"]', w="0.25", repeats="2",
                           classifier='{"epochs": 1, "max_steps": 3}', model_layers='{"response": 2}',
                           run_dir=str(tmp_path / "run"))
    root = params["studies"]["root_cause"]
    assert root.quant == ("none", "nf4") and root.prune == ("none", "2:4") and root.w == 0.25
    assert root.repeats == 2 and root.classifier.max_steps == 3 and root.classifier.batch_size == 16
    assert params["studies"]["response"].model_layers == {"response": 2}
    assert params["studies"]["response"].quant == ("none", "int8-dynamic")  # its own grid
    assert not (tmp_path / "run").exists()


def _write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_tickets_path_with_a_missing_column_fails_before_work(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "mine.csv", "body,cause", ['"LOS on port 1",fibre_cut', '"mains down",power_failure'])
    with pytest.raises(ParameterError, match="response_column='response'"):
        chapter.check(tickets_path=str(path), text_column="body", label_column="cause",
                      run_dir=str(tmp_path / "run"))
    with pytest.raises(ParameterError, match="label_column='label'"):
        chapter.check(tickets_path=str(path), text_column="body", tasks=["root_cause"],
                      response_column=None, run_dir=str(tmp_path / "run"))
    with pytest.raises(ParameterError, match="response_column is None"):
        chapter.check(tickets_path=str(path), text_column="body", label_column="cause", response_column=None)
    assert not (tmp_path / "run").exists()


def test_tickets_path_with_own_column_names_is_used(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "mine.csv", "body,cause,fix",
                      ['"LOS on port 1",fibre_cut,"spliced"', '"mains down",power_failure,"generator"',
                       '"BGP down after change",misconfiguration,"rolled back"'])
    params = chapter.check(tickets_path=str(path), text_column="body", label_column="cause",
                           response_column="fix", run_dir=str(tmp_path / "run"))
    loaded = chapter.tickets(params)
    assert [t.label for t in loaded] == ["fibre_cut", "power_failure", "misconfiguration"]
    assert loaded[2].response == "rolled back"
    assert set(chapter.sample_tickets(params, n=2)["label"]) == {"fibre_cut", "power_failure"}


# ------------------------------------------------------------------ the study with tiny models


def tiny_classifier(num_labels: int) -> tuple[object, object]:
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, vocab_size=384, num_labels=num_labels,
                                     max_position_embeddings=128)
    return transformers.BertForSequenceClassification(config), transformers.ByT5Tokenizer()


def run_tiny(out_dir: Path, **kwargs):  # type: ignore[no-untyped-def]
    from nrg.tickets.finetune import TrainSettings
    from nrg.tickets.study import run_ticket_study

    options = dict(n_tickets=40, quant=["none", "int8-dynamic", "nf4"], prune=["none", "2:4"],
                   tasks=["root_cause"], models={"root_cause": tiny_classifier},
                   classifier=TrainSettings(batch_size=8, max_len=48, max_steps=3, learning_rate=5e-3),
                   repeats=3, progress=False)
    options.update(kwargs)
    return run_ticket_study(out_dir, **options)


@pytest.fixture(scope="module")
def tiny_rows(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return run_tiny(tmp_path_factory.mktemp("study"))


def test_inference_windows_and_train_repeats_are_rows(tiny_rows: pd.DataFrame, tmp_path: Path) -> None:
    inference = tiny_rows[(tiny_rows["phase"] == "inference") & (tiny_rows["status"] == "ok")]
    assert inference.groupby("cell_id").size().eq(3).all()
    assert sorted(inference["window"].unique()) == [0, 1, 2]
    assert inference.groupby("cell_id")["repeat"].nunique().eq(3).all()
    assert inference["repeats_n"].eq(3).all() and inference["ci_rel_halfwidth"].notna().all()
    twice = run_tiny(tmp_path, quant=["none"], prune=["none"], repeats=1, train_repeats=2)
    finetune = twice[twice["phase"] == "finetune"]
    assert sorted(finetune["train_repeat"]) == [0, 1] and sorted(finetune["repeat"]) == [0, 1]
    losses = finetune.sort_values("train_repeat")["train_loss_first"].tolist()
    assert losses[0] != losses[1]  # different seeds, different models


def test_rows_of_other_parameters_are_kept_but_not_returned(tiny_rows: pd.DataFrame, tmp_path: Path) -> None:
    run_tiny(tmp_path, quant=["none"], prune=["none"], repeats=1)
    again = run_tiny(tmp_path, quant=["nf4"], prune=["none"], repeats=1)
    assert set(again["quant"]) == {"nf4"}
    assert len(list((tmp_path / "cells").glob("*.parquet"))) == 2


def test_int8_dynamic_reuses_the_float_tuned_model_exactly(tiny_rows: pd.DataFrame, tmp_path: Path) -> None:
    alone = run_tiny(tmp_path, quant=["int8-dynamic"], prune=["none", "2:4"], repeats=1)
    shared = tiny_rows[(tiny_rows["quant"] == "int8-dynamic") & (tiny_rows["phase"] == "inference")]
    for prune in ("none", "2:4"):
        a = alone[(alone["prune"] == prune) & (alone["phase"] == "inference")].iloc[0]
        b = shared[shared["prune"] == prune].iloc[0]
        assert (a["accuracy"], a["macro_f1"]) == (b["accuracy"], b["macro_f1"])
        assert a["finetune_path"] == b["finetune_path"] == "lora-float-then-quantize"


def test_merged_lora_keeps_the_pruning_pattern() -> None:
    from nrg.compress import prune
    from nrg.tickets.cell import reapply_mask
    from nrg.tickets.finetune import TrainSettings, attach_lora

    model, _ = tiny_classifier(3)
    pruned, columns = prune(model, "2:4", sparse_kernels=False)
    tuned = attach_lora(__import__("copy").deepcopy(pruned), "classifier", TrainSettings())
    for name, param in tuned.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param)  # a non-zero update, as after training
    merged = tuned.merge_and_unload()
    query = "bert.encoder.layer.0.attention.self.query"
    assert (merged.get_submodule(query).weight == 0).float().mean() < 0.5   # merging filled zeros in
    reapply_mask(merged, pruned)
    assert (merged.get_submodule(query).weight == 0).float().mean() == pytest.approx(0.5)


# ------------------------------------------------------------------ the analysis


def test_not_run_lists_every_unsupported_phase(tiny_rows: pd.DataFrame) -> None:
    table = analysis.not_run(tiny_rows)
    assert set(zip(table["quant"], table["prune"], table["phase"])) == {
        ("int8-dynamic", "none", "finetune"), ("int8-dynamic", "2:4", "finetune")}
    assert table["reason"].str.contains("LoRA cannot wrap").all()


def test_energy_anova_uses_complete_levels_and_says_so(tiny_rows: pd.DataFrame) -> None:
    result = analysis.energy_anova(tiny_rows, "root_cause")
    assert result.factors == ("quant", "prune", "phase")
    assert any("int8-dynamic is left out" in note for note in result.notes)
    assert "C(quant) * C(prune) * C(phase)" in result.formula  # the interaction was fitted
    quality = analysis.quality_anova(tiny_rows, "root_cause", "macro_f1")
    assert any("tuned model(s) per combination" in n for n in getattr(quality, "notes", ())) \
        or "No ANOVA" in quality._repr_markdown_()


def test_ranking_per_phase_names_the_unranked(tiny_rows: pd.DataFrame) -> None:
    finetune = analysis.ranking(tiny_rows, "root_cause", "finetune", "macro_f1", w=0.5)
    assert "int8-dynamic" not in set(finetune.table["quant"])
    assert sum("not ranked for finetune" in n for n in finetune.notes) == 2
    inference = analysis.ranking(tiny_rows, "root_cause", "inference", "macro_f1", w=1.0)
    assert len(inference.table) == 6 and inference.table["energy_mean"].is_monotonic_increasing
    assert inference.table["pareto"].any()
    with pytest.raises(ParameterError, match="phase"):
        analysis.ranking(tiny_rows, "root_cause", "training", "macro_f1", w=0.5)


def test_kernel_table_says_dense_pruning_saves_nothing_on_cpu(tiny_rows: pd.DataFrame) -> None:
    table = analysis.kernels(tiny_rows)
    assert set(table["prune"]) == {"2:4"} and set(table["kernel"]) == {"dense"}
    assert table["saves_compute"].str.startswith("no").all()
    assert table["time_vs_unpruned"].gt(0).all()
    assert "saved no compute" in analysis.kernel_sentence(table, "cpu")


def test_figures_are_built(tiny_rows: pd.DataFrame) -> None:
    fig = analysis.heatmaps(tiny_rows, "root_cause", "macro_f1")
    assert len(fig.axes) >= 3
    ranked = analysis.ranking(tiny_rows, "root_cause", "inference", "macro_f1", w=0.5)
    pareto = analysis.pareto_figure(ranked, "root_cause", "inference", "macro_f1")
    assert "Pareto front" in [t.get_text() for t in pareto.axes[0].get_legend().get_texts()]


# ------------------------------------------------------------------ the notebook


TINY = {"n_tickets": 24, "quant": '["none", "int8-dynamic"]', "prune": '["none", "2:4"]',
        "response_quant": '["none"]', "response_prune": '["none"]', "repeats": 2, "response_repeats": 2,
        "classifier": '{"epochs": 1, "batch_size": 8, "max_len": 64, "max_steps": 2}',
        "generator": '{"max_steps": 1, "max_len": 96}', "n_generate": 2, "max_new_tokens": 4,
        "model_layers": '{"root_cause": 1, "response": 1}'}


@pytest.mark.slow
def test_notebook_runs_with_tiny_parameters(tmp_path: Path) -> None:
    out = tmp_path / "out.ipynb"
    args = [str(Path(sys.executable).with_name("papermill")), "04_network_tickets.ipynb", str(out),
            "--cwd", "."]
    for name, value in TINY.items():
        args += ["-p", name, str(value)]
    env = {**os.environ, "NRG_RUNS_DIR": str(tmp_path / "runs")}
    result = subprocess.run(args, cwd=ROOT / "notebooks", env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    cells = json.loads(out.read_text())["cells"]
    html = "".join("".join(o.get("data", {}).get("text/html", ""))
                   for c in cells if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "Ranking R = w·φ + (1−w)·ρ" in html and "pareto" in html
    pareto_cells = [c for c in cells if c["cell_type"] == "code" and "show_pareto(" in "".join(c["source"])]
    assert any("image/png" in o.get("data", {}) for c in pareto_cells for o in c.get("outputs", []))
    assert "unsupported" in html  # the table of what did not run
    assert (tmp_path / "runs" / "04_network_tickets" / "cells").is_dir()
