"""Chapter 4 (fault tickets): parameter checks, the sweep configs, the analysis and its sections, the notebook."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nrg.book.chapters import validate
from nrg.book.chapters.c04_network_tickets import analysis
from nrg.book.chapters.c04_network_tickets import driver as chapter
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
    ({"isolate": "sometimes"}, "isolate"),
    ({"classifier": {"seed": 1}}, "sweep's seed"),
    ({"colour": "blue"}, "unknown parameter"),
])
def test_bad_parameters_name_the_valid_values(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        validate(chapter.CHAPTER, {"run_dir": str(tmp_path / "run"), **kwargs})
    assert not (tmp_path / "run").exists()


def test_papermill_strings_are_parsed(tmp_path: Path) -> None:
    from nrg.sweep.config import parse_config

    params = chapter.Params(quant='["none", "nf4"]', prune='["none", "2:4"]', w="0.25", repeats="2",
                           classifier='{"epochs": 1, "max_steps": 3}', model_layers='{"response": 2}',
                           n_tickets="40", run_dir=str(tmp_path / "run"))
    root = parse_config(params["configs"]["root_cause"])
    assert dict(root.axes) == {"prune": ("none", "2:4"), "quant": ("none", "nf4")} and params["w"] == 0.25
    assert root.settings.repeats.min_n == root.settings.repeats.max_n == 2
    classifier = root.settings.options["classifier"]
    assert classifier["max_steps"] == 3 and classifier["batch_size"] == 16 and root.settings.options["n_tickets"] == 40
    response = parse_config(params["configs"]["response"])
    assert [m.layers for m in response.models] == [2] and [m.layers for m in root.models] == [None]
    assert dict(response.axes)["quant"] == ("none", "int8-dynamic")  # its own grid
    assert root.settings.workload == "finetune" and root.isolate
    assert not (tmp_path / "run").exists()


def _write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_tickets_path_with_a_missing_column_fails_before_work(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "mine.csv", "body,cause", ['"LOS on port 1",fibre_cut', '"mains down",power_failure'])
    with pytest.raises(ParameterError, match="response_column='response'"):
        chapter.Params(tickets_path=str(path), text_column="body", label_column="cause",
                      run_dir=str(tmp_path / "run"))
    with pytest.raises(ParameterError, match="label_column='label'"):
        chapter.Params(tickets_path=str(path), text_column="body", tasks=["root_cause"],
                      response_column=None, run_dir=str(tmp_path / "run"))
    with pytest.raises(ParameterError, match="response_column is None"):
        chapter.Params(tickets_path=str(path), text_column="body", label_column="cause", response_column=None)
    assert not (tmp_path / "run").exists()


def test_tickets_path_with_own_column_names_is_used(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "mine.csv", "body,cause,fix",
                      ['"LOS on port 1",fibre_cut,"spliced"', '"mains down",power_failure,"generator"',
                       '"BGP down after change",misconfiguration,"rolled back"'])
    params = chapter.Params(tickets_path=str(path), text_column="body", label_column="cause",
                           response_column="fix", run_dir=str(tmp_path / "run"))
    loaded = chapter.tickets(params)
    assert [t.label for t in loaded] == ["fibre_cut", "power_failure", "misconfiguration"]
    assert loaded[2].response == "rolled back"
    assert set(chapter.sample_tickets(params, n=2)["label"]) == {"fibre_cut", "power_failure"}


# ------------------------------------------------------------------ the chapter's sweep, tiny


@pytest.fixture(scope="module")
def tiny_rows(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Root cause only, 1-layer MiniLM, in this process: quant x prune with 3 inference windows each."""
    params = chapter.Params(n_tickets=40, tasks=["root_cause"], quant=["none", "int8-dynamic", "nf4"],
                           prune=["none", "2:4"], repeats=3, classifier={"batch_size": 8, "max_len": 48, "max_steps": 3},
                           model_layers={"root_cause": 1}, isolate=False,
                           run_dir=str(tmp_path_factory.mktemp("tickets") / "run"))
    return chapter.measure(params, progress=False)


def test_the_chapter_measures_its_cells_with_the_sweep_runner(tiny_rows: pd.DataFrame) -> None:
    assert tiny_rows["cell_id"].nunique() == 6 and set(tiny_rows["chapter"]) == {"04_network_tickets"}
    inference = tiny_rows[(tiny_rows["phase"] == "inference") & (tiny_rows["status"] == "ok")]
    assert inference.groupby("cell_id").size().eq(3).all() and inference["repeats_n"].eq(3).all()
    assert set(tiny_rows["model_name"]) == {"minilm-l6"} and set(tiny_rows["layers"]) == {1}
    assert all(m.startswith("minilm-l6 [1/6 layers") for m in tiny_rows["model"])   # the truthful label (nrg.book.labels)
    assert tiny_rows["run_id"].nunique() == 1 and tiny_rows["hostname"].notna().all()
    tuned = tiny_rows[(tiny_rows["phase"] == "finetune") & (tiny_rows["status"] == "ok")]
    assert len(tuned) and tuned["interference"].notna().all()     # fine-tuning windows are checked like the others


# ------------------------------------------------------------------ the analysis


def test_not_run_lists_every_unsupported_phase(tiny_rows: pd.DataFrame) -> None:
    table = analysis.not_run(tiny_rows)
    assert set(zip(table["quant"], table["prune"], table["phase"], strict=True)) == {
        ("int8-dynamic", "none", "finetune"), ("int8-dynamic", "2:4", "finetune")}
    assert table["reason"].str.contains("LoRA cannot wrap").all()


def with_failed_cell(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` plus the one row the runner keeps for a cell that failed as a whole."""
    failed = {"task": "root_cause", "quant": "fp4", "prune": "none", "phase": None, "status": "failed",
              "error": "cell process killed after cell_timeout_s=60", "cell_id": "x"}
    return pd.concat([rows, pd.DataFrame([failed])], ignore_index=True)


def test_a_whole_failed_cell_is_shown_and_named_in_every_ranking(tiny_rows: pd.DataFrame) -> None:
    rows = with_failed_cell(tiny_rows)
    table = analysis.not_run(rows)
    assert ("fp4", analysis.WHOLE_CELL, "failed") in set(zip(table["quant"], table["phase"], table["status"], strict=True))
    for phase in analysis.PHASES:
        ranked = analysis.ranking(rows, "root_cause", phase, "macro_f1", w=0.5)
        assert any(n.startswith("fp4 / none is not ranked") and "cell_timeout_s" in n for n in ranked.notes)


def test_energy_anova_is_per_phase_and_gives_no_p_value_from_single_fine_tunings(tiny_rows: pd.DataFrame) -> None:
    inference = analysis.energy_anova(tiny_rows, "root_cause")          # inference windows: replicated
    assert inference.factors == ("quant", "prune") and "C(quant) * C(prune)" in inference.formula
    finetune = analysis.energy_anova(tiny_rows, "root_cause", phase="finetune")
    assert isinstance(finetune, analysis.NoAnova)                       # one fine-tuning per combination
    assert "one fine-tuning per combination" in finetune.reason and "train_repeats" in finetune.reason
    twice = pd.concat([tiny_rows, tiny_rows[tiny_rows["phase"] == "finetune"].assign(train_repeat=1)])
    repeated = analysis.energy_anova(twice, "root_cause", phase="finetune")   # int8: LoRA cannot wrap it
    assert repeated.factors == ("quant", "prune") and repeated.n_obs == 8     # 4 combinations x 2 tunings
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


def test_sections_are_what_the_page_shows(tiny_rows: pd.DataFrame, tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    from nrg.stats import AnovaResult, RankResult

    params = chapter.Params(tasks=["root_cause"], run_dir=str(tmp_path / "run"))
    table, figure = analysis.combinations_section(tiny_rows, params, "root_cause")
    assert set(table["quant"]) == {"none", "int8-dynamic", "nf4"} and isinstance(figure, Figure)
    skipped = analysis.combinations_section(tiny_rows, params, "response")
    assert len(skipped) == 1 and "was not run" in skipped[0]._repr_markdown_()
    shown = analysis.anova_section(tiny_rows, params, "root_cause")
    assert isinstance(shown[0], analysis.NoAnova)                     # fine-tuning: one run per combination
    assert isinstance(shown[1], AnovaResult) and isinstance(shown[2], analysis.Text)   # inference
    ranked = analysis.rankings(tiny_rows, params, "root_cause")
    assert set(ranked) == {"finetune", "inference"}
    section = analysis.ranking_section(params, "root_cause", ranked)
    assert sum(isinstance(x, RankResult) for x in section) == 2
    assert all(isinstance(f, Figure) for f in analysis.pareto_figures(params, "root_cause", ranked))
    assert analysis.example_responses(tiny_rows) == []
    assert "No committed GPU run" in str(analysis.reference_section({}, params)[0])
    reference = analysis.reference_section({"H100": tiny_rows}, params)
    assert sum(isinstance(x, RankResult) for x in reference) == 2


def test_figures_are_built(tiny_rows: pd.DataFrame) -> None:
    fig = analysis.heatmaps(tiny_rows, "root_cause", "macro_f1")
    assert len(fig.axes) >= 3
    ranked = analysis.ranking(tiny_rows, "root_cause", "inference", "macro_f1", w=0.5)
    pareto = analysis.pareto_figure(ranked, "root_cause", "inference", "macro_f1")
    assert "Pareto front" in [t.get_text() for t in pareto.axes[0].get_legend().get_texts()]


# ------------------------------------------------------------------ the notebook


# The notebook on the tiny profile (ranking, the labelled Pareto column and figures, the table of what
# did not run) is checked on the book build's executed copy: tests/test_book.py,
# test_chapter_4_ranks_configurations_and_lists_what_did_not_run.
