"""The summary page's answer: named "lowest" only when its interval separates, else "not distinguishable".

The rows are built in the test (the columns a sweep stores); the functions
under test are the real ones. The published ML.ENERGY file is the copy in
``data/published``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nrg.book.chapters.summary import driver as summary
from nrg.errors import ParameterError

ROOT = Path(__file__).resolve().parents[1]


def _rows(cells: dict[str, list[float]], chapter_task: str = "qa", tpot_s: float = 0.02,
          method: str = "counter", quality: dict[str, float] | None = None) -> pd.DataFrame:
    """Generation rows (one per repeat) of one model per cell, plus an inference row with its score."""
    records = []
    for model, energies in cells.items():
        for repeat, e in enumerate(energies):
            records.append({"cell_id": model, "status": "ok", "phase": "generate", "model": model,
                            "task": chapter_task, "input_tokens": 32, "output_tokens": 8, "batch_size": 1,
                            "dtype": "float32", "quant": None, "prune": None, "gpu_clock_mhz": None,
                            "power_limit_w": None, "energy_per_token_j": e, "tpot_s": tpot_s, "repeat": repeat,
                            "energy_method": method, "energy_source": "cpu=rapl", "gpu": None, "f1": None})
        if quality and model in quality:
            records.append({**records[-1], "phase": "inference", "f1": quality[model], "energy_per_token_j": None})
    return pd.DataFrame.from_records(records)


def _choose(rows: pd.DataFrame, floor: float = 0.0, target: float = 1.0) -> summary.Choice:
    configs = summary.configurations({"01_model_comparison": rows})
    return summary.choose(configs, floor, "tpot_s", target)


def test_separated_intervals_name_the_least_energy() -> None:
    choice = _choose(_rows({"a": [1.0, 1.01, 0.99], "b": [2.0, 2.02, 1.98]}))
    assert choice.tied.empty
    assert "**a" in choice.sentence and "uses the least energy per token" in choice.sentence


def test_overlapping_intervals_are_not_distinguishable() -> None:
    choice = _choose(_rows({"a": [1.0, 1.4, 0.7], "b": [1.1, 1.5, 0.8]}))
    assert list(choice.tied["configuration"].str.split(" · ").str[0]) == ["b"]
    assert "not distinguishable" in choice.sentence and "uses the least" not in choice.sentence


def test_one_repeat_has_no_interval_so_it_cannot_be_called_lowest() -> None:
    choice = _choose(_rows({"a": [1.0], "b": [3.0]}))
    assert "not distinguishable" in choice.sentence


def test_a_quality_floor_excludes_unscored_and_low_scores() -> None:
    rows = _rows({"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0], "c": [3.0, 3.0, 3.0]}, quality={"b": 0.2, "c": 0.8})
    choice = _choose(rows, floor=0.5)
    assert list(choice.eligible["configuration"].str.split(" · ").str[0]) == ["c"]
    assert "only **c" in choice.sentence and "task score ≥ 0.5" in choice.sentence
    assert "no quality floor" in _choose(rows).sentence


def test_nothing_meets_the_constraints_says_why() -> None:
    rows = _rows({"a": [1.0, 1.0]}, tpot_s=0.5)
    assert "none meets the latency target" in _choose(rows, target=0.1).sentence
    assert "none of them with a task score" in _choose(rows, floor=0.5, target=1.0).sentence


def test_estimated_energy_is_said_to_rank_time() -> None:
    choice = _choose(_rows({"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}, method="estimated"))
    assert "ranking by time" in choice.sentence


def test_frontier_keeps_only_undominated_configurations_per_metric() -> None:
    rows = _rows({"a": [1.0, 1.0], "b": [2.0, 2.0], "c": [3.0, 3.0]}, quality={"a": 0.3, "b": 0.2, "c": 0.9})
    front = summary.frontier(summary.configurations({"01_model_comparison": rows}))
    assert [c.split(" · ")[0] for c in front["configuration"]] == ["a", "c"]      # b is dearer and worse than a
    assert set(front["quality_metric"]) == {"f1"}
    assert summary.frontier(summary.configurations({"x": _rows({"a": [1.0, 1.0]})})).empty


def test_not_measured_names_missing_chapters_estimates_no_gpu_and_unscored() -> None:
    rows = {"01_model_comparison": _rows({"a": [1.0, 1.0]}, method="estimated")}
    configs = summary.configurations(rows)
    gaps = summary.not_measured(rows, {"03_dvfs": "no run folder"}, configs)
    text = " ".join(gaps)
    for part in ("03_dvfs", "estimated", "no GPU", "1 of 1 configurations have no task score"):
        assert part in text, part


def test_published_figures_are_read_as_published_and_kept_apart() -> None:
    pub = summary.published(ROOT)
    assert (ROOT / "data" / "published" / "README.md").read_text().startswith("# Published GPU measurements")
    by_batch = summary.published_by_batch(pub)
    llama = by_batch[(by_batch["model"] == "meta-llama/Llama-3.1-8B-Instruct") & (by_batch["gpu"] == "H100")].iloc[0]
    assert llama["energy_per_token_j_at_smallest"] == pytest.approx(0.455, abs=0.001)   # the README's example
    assert (llama["batch_lowest"], round(llama["energy_per_token_j_lowest"], 3)) == (512, 0.070)
    sentence = summary._published_sentence(pub)
    assert "not nrg's data" in sentence and "H100" in sentence and "B200" in sentence
    mine = _rows({"a": [1.0, 1.0]})
    figure = summary.beside_figure(pub, mine.assign(batch_size=1))
    titles = [ax.get_title() for ax in figure.get_axes()]
    assert titles[-1].startswith("this machine") and all("published" in t for t in titles[:-1])
    assert figure.get_axes()[-1].get_ylabel() == "Energy per token (J/token)"          # counter-measured rows
    estimated = summary.beside_figure(pub, _rows({"a": [1.0, 1.0]}, method="estimated"))
    assert estimated.get_axes()[-1].get_ylabel() == "Estimated energy per token (J/token)"
    assert "model_id" not in summary.configurations({"05_batch_size": mine}).columns   # never mixed in


def test_parameters_are_checked_before_anything_is_read(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="latency_measure"):
        summary.Params(latency_measure="p99")
    with pytest.raises(ParameterError, match="latency_target_s"):
        summary.Params(latency_target_s=0)
    with pytest.raises(ParameterError, match="quality_floor"):
        summary.Params(quality_floor=1.5)
    with pytest.raises(ParameterError, match="chapters"):
        summary.Params(chapters=["07_nope"])
    rows, missing = summary.load_rows(summary.Params(runs_dir=str(tmp_path)))
    assert rows == {} and set(missing) == set(summary.SWEEP_CHAPTERS)


def test_the_answer_names_a_model_as_it_ran(tmp_path: Path) -> None:
    """A random-weight, truncated model is not the published one: the summary's labels say so."""
    from test_batch_reference import _write_run

    _write_run(tmp_path / "05_batch_size")
    rows, missing = summary.load_rows(summary.Params(runs_dir=str(tmp_path), chapters=["05_batch_size"]))
    assert not missing
    configs = summary.configurations(rows, latency_measure="time_s")
    assert configs["configuration"].str.startswith("gpt2 [random, 124 M params] · ").all()
    assert "gpt2 [random, 124 M params]" in summary.choose(configs, 0.0, "time_s", 10.0).sentence


def test_two_cells_with_one_label_each_name_what_tells_them_apart() -> None:
    """Cells of one chapter that differ only in a factor the label leaves out must not read alike."""
    rows = _rows({"a": [1.0, 1.0], "b": [2.0, 2.0], "c": [3.0, 3.0]})
    rows["model"] = "gpt2"
    rows.loc[rows["cell_id"] == "b", "dtype"] = "bfloat16"
    rows.loc[rows["cell_id"] == "c", "dtype"] = "bfloat16"            # b and c differ in nothing the label knows
    rows["cpu_max_freq_khz"] = None
    configs = summary.configurations({"03_dvfs": rows}).set_index("cell_id")["configuration"]
    base = "gpt2 · qa · in 32/out 8 tokens · batch 1"
    assert configs["a"] == f"{base} · dtype float32"
    assert configs["b"] == f"{base} · dtype bfloat16 · cell b" and configs["c"] == f"{base} · dtype bfloat16 · cell c"
    capped = _rows({"x": [1.0, 1.0], "y": [2.0, 2.0]}).assign(model="gpt2")
    capped["cpu_max_freq_khz"] = [None, None, 800_000.0, 800_000.0]
    named = summary.configurations({"03_dvfs": capped}).set_index("cell_id")["configuration"]
    assert named["x"].endswith("· cpu_max_freq_khz none") and named["y"].endswith("· cpu_max_freq_khz 800000")
    # the same label in two chapters is not a clash: each row names its chapter
    apart = summary.configurations({"01_model_comparison": _rows({"m": [1.0, 1.0]}),
                                    "02_sequence_length": _rows({"m": [2.0, 2.0]})})
    assert list(apart["configuration"]) == ["m · qa · in 32/out 8 tokens · batch 1"] * 2
