"""The chapters' trust report: cells that missed their CI target, repeats flagged for interference."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from nrg.book import quality
from nrg.errors import ParameterError


def sweep_rows() -> pd.DataFrame:
    """Rows as a sweep writes them: three phases per repeat, one interval per cell."""
    cells = [("a", "gpt2", 0.03, 3, [False, False, False]),
             ("b", "smollm2-135m", 0.20, 5, [True, False, False, True, False]),
             ("c", "t5-3b", math.inf, 1, [True])]
    rows = []
    for cell_id, model, ci, n, flags in cells:
        for repeat, flag in enumerate(flags):
            for phase in ("prefill", "decode", "generate"):
                rows.append({"cell_id": cell_id, "status": "ok", "model": model, "task": "qa",
                             "input_tokens": 8, "repeat": repeat, "phase": phase, "repeats_n": n,
                             "ci_rel_halfwidth": ci, "ci_rel_target": 0.05, "interference": flag})
    rows.append({"cell_id": "d", "status": "failed", "model": "falcon-7b", "repeat": None})
    return pd.DataFrame(rows)


def test_missed_ci_lists_cells_wider_than_their_target_widest_first() -> None:
    table = quality.missed_ci(sweep_rows())
    assert table["model"].tolist() == ["t5-3b", "smollm2-135m"]      # inf (no interval) first
    assert table["ci_rel_halfwidth"].tolist()[1] == pytest.approx(0.20)
    assert list(table.columns) == ["model", "task", "input_tokens", "repeats_n", "ci_rel_halfwidth",
                                   "ci_rel_target"]
    assert quality.missed_ci(sweep_rows(), target=0.5)["model"].tolist() == ["t5-3b"]


def test_a_row_without_a_status_counts_as_measured_as_in_every_analysis() -> None:
    """Rows from a store written before ``status`` existed (NaN) count as ok, as ``nrg.stats.ok_rows`` says."""
    rows = sweep_rows()
    rows["status"] = rows["status"].where(rows["cell_id"] != "b", None)
    assert quality.missed_ci(rows)["model"].tolist() == ["t5-3b", "smollm2-135m"]   # b still listed


def test_fixed_repeat_counts_have_no_target_to_miss() -> None:
    rows = sweep_rows().assign(ci_rel_target=float("nan"))
    assert quality.missed_ci(rows).empty


def test_interference_counts_flagged_repeats_not_rows() -> None:
    rows = sweep_rows()
    assert quality.interference_count(rows) == 3          # b: 2 repeats, c: 1; three rows each
    assert quality.interference_count(rows.drop(columns="interference")) == 0


def test_summary_says_both_in_words() -> None:
    text = quality.summary(sweep_rows())
    assert text.startswith("2 of 3 cells missed their 95% CI target (some with fewer than two")
    assert "3 of 9 measured repeats were flagged for interference" in text
    quiet = sweep_rows()
    quiet = quiet[quiet["cell_id"] == "a"]
    assert quality.summary(quiet).startswith("0 of 1 cells missed their 95% CI target.")


def test_rows_with_one_interval_per_phase_and_no_target_column() -> None:
    """The fine-tuning study: its own interval per phase, no ci_rel_target column, no interference."""
    rows = pd.DataFrame([
        {"cell_id": "x", "status": "ok", "task": "rca", "quant": "nf4", "prune": "none", "phase": "finetune",
         "repeats_n": 3, "ci_rel_halfwidth": 0.12},
        {"cell_id": "x", "status": "ok", "task": "rca", "quant": "nf4", "prune": "none", "phase": "inference",
         "repeats_n": 3, "ci_rel_halfwidth": 0.01}])
    with pytest.raises(ParameterError, match="pass target="):
        quality.missed_ci(rows)
    table = quality.missed_ci(rows, target=0.05)
    assert table[["phase", "ci_rel_halfwidth"]].values.tolist() == [["finetune", 0.12]]
    assert quality.interference_count(rows) == 0
    assert "Interference was not recorded" in quality.summary(rows, target=0.05)
    with pytest.raises(ParameterError, match="target=2"):
        quality.missed_ci(rows, target=2)


def test_show_labels_each_run_and_says_when_there_is_none(monkeypatch) -> None:
    import IPython.display

    shown: list[object] = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    quality.show({"Measured live": sweep_rows(), "Reference": None})
    assert len(shown) == 2 and isinstance(shown[0], IPython.display.Markdown)
    assert shown[0].data.startswith("**Measured live**: 2 of 3 cells")
    assert isinstance(shown[1], pd.DataFrame) and len(shown[1]) == 2
    shown.clear()
    quality.show(None)
    assert len(shown) == 1 and "No measured rows" in shown[0].data


def test_the_page_says_in_which_order_the_repeats_ran() -> None:
    rows = sweep_rows()
    ok = rows["status"] == "ok"
    blocked = rows.assign(run_id="r1", block=rows["repeat"], run_order=rows["repeat"].where(ok))
    assert "Repeats ran in 5 blocks" in quality.summary(blocked)
    sequential = blocked.assign(run_order=None)
    assert "one after another" in quality.summary(sequential)
    assert "do not record their run order" in quality.summary(rows)


def test_quality_scoring_rows_are_not_said_to_run_sequentially() -> None:
    """Chapter 1's three quality-scoring rows were said to have run with `order: sequential`, which nobody set."""
    rows = sweep_rows()
    rows = rows[rows["status"] == "ok"].assign(run_id="r", block=0, run_order=range(len(rows) - 1))
    scoring = pd.DataFrame([{"cell_id": c, "status": "ok", "phase": "inference", "repeat": 0, "run_id": "r",
                             "block": None, "run_order": None} for c in ("a", "b", "c")])
    text = quality.run_order(pd.concat([rows, scoring], ignore_index=True))
    assert text.startswith("Repeats ran in 1 blocks") and "sequential" not in text
    assert "Quality was scored once per cell after its repeats (3 row(s))" in text
    whole = rows.assign(block=None, run_order=None)
    assert "order: sequential" not in quality.run_order(whole).split("(as")[0]
    assert "fine-tuning workload" in quality.run_order(whole)


def test_fixed_repeat_counts_are_not_said_to_meet_a_target() -> None:
    text = quality.summary(sweep_rows().assign(ci_rel_target=float("nan")))
    assert text.startswith("These rows record no CI target (a fixed number of repeats)")
