"""The run's blocks in the ANOVA: a randomized complete block design when rows come from a blocked run."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nrg import stats
from nrg.errors import ParameterError


def _blocked(seed: int, model_effect: float, drift: float, blocks: int = 5, run_order: bool = True) -> pd.DataFrame:
    """Two models × two tasks, one repeat of each cell per block in a random order; load drifts per block."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(blocks):
        for k, c in enumerate(rng.permutation(4)):
            model, task = "ab"[c % 2], "xy"[c // 2]
            rows.append({"model": model, "task": task, "block": b, "run_id": "run-1",
                         "run_order": b * 4 + k if run_order else None, "status": "ok",
                         "energy_j": 10 + drift * b + model_effect * (model == "b") + rng.normal(0, 0.5)})
    return pd.DataFrame(rows)


def test_rows_of_a_blocked_run_get_the_block_as_an_additive_factor_and_the_page_says_so():
    result = stats.anova(_blocked(1, model_effect=1.0, drift=3.0), "energy_j", ["model", "task"])
    sources = list(result.table["source"])
    assert sources[-2:] == ["block", "Residual"] and result.row("block")["df"] == 4
    assert "+ block" in result.formula
    assert any("Randomized complete block design" in n for n in result.notes)
    assert "model" in result.significant()
    unblocked = stats.anova(_blocked(1, 1.0, 3.0), "energy_j", ["model", "task"], block=None)
    assert "block" not in set(unblocked.table["source"])
    assert result.row("model")["p"] < unblocked.row("model")["p"]     # drift left the error term


def test_sequential_rows_are_not_taken_for_blocks():
    result = stats.anova(_blocked(2, 1.0, 3.0, run_order=False), "energy_j", ["model", "task"])
    assert "block" not in set(result.table["source"])
    assert not any("block" in n for n in result.notes)


def test_blocks_nested_in_a_factor_are_left_out_with_the_reason():
    df = _blocked(3, 1.0, 3.0)
    df["run_id"] = np.where(df["task"] == "x", "run-x", "run-y")     # one sweep per task
    result = stats.anova(df, "energy_j", ["model", "task"])
    assert "block" not in set(result.table["source"])
    assert any("cannot be separated" in n for n in result.notes)
    assert result.row("task")["df"] == 1


def test_robust_table_carries_the_block_too():
    result = stats.anova(_blocked(4, 1.0, 3.0), "energy_j", ["model", "task"], robust="always", robust_draws=199)
    assert list(result.robust_table["source"])[-1] == "block"


def test_a_block_column_that_does_not_exist_is_refused_naming_the_parameter():
    with pytest.raises(ParameterError, match="block="):
        stats.anova(_blocked(5, 0.0, 0.0), "energy_j", ["model"], block="pass")


def test_the_blocked_anova_holds_its_level_under_drift():
    """No model effect, strong drift between blocks: the model is declared significant about α of the time."""
    rejections = [stats.anova(_blocked(seed, 0.0, 5.0), "energy_j", ["model", "task"], robust="never",
                              tukey=False).row("model")["p"] < 0.05 for seed in range(400)]
    assert 0.025 <= np.mean(rejections) <= 0.08
