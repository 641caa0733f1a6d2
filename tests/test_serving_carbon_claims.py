"""Chapter 6's carbon table and claims section, from steady-state serving rows built here.

The rows stand for what the serving workload writes (``phase`` steady / run,
``concurrency``, ``tokens``, ``energy_j``); no engine runs.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nrg.book import claims, display
from nrg.book.chapters.c06_serving import driver as chapter


def _rows(fall: float = 0.5, spread: float = 0.01, method: str = "estimated") -> pd.DataFrame:
    """Energy per token at concurrency 8 is ``fall`` times that at 1 (0.1 J/token at 1), five windows each."""
    rng = np.random.default_rng(0)
    rows = []
    for level, per_token in ((1, 0.1), (8, 0.1 * fall)):
        for block in range(5):
            e = per_token * (1 + rng.normal(0, spread))
            for phase in ("steady", "run"):
                rows.append({"cell_id": "c", "model": "smollm2-135m", "status": "ok", "phase": phase,
                             "repeat": block, "concurrency": level, "tokens": 400, "energy_j": e * 400,
                             "energy_per_token_j": e, "time_s": 4.0, "energy_method": method})
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def _runs_elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Building the Params resolves (and may create) the run folder: never in the checkout."""
    monkeypatch.setenv("NRG_RUNS_DIR", str(tmp_path / "runs"))


def _params(monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> chapter.Params:
    monkeypatch.setattr("nrg.serving.options.default_engine_python", lambda: None)   # nothing would run
    params = chapter.Params(**kwargs)
    assert str(params.run_dir).startswith(os.environ["NRG_RUNS_DIR"])
    return params


def test_the_carbon_table_states_the_assumptions_once_and_marks_estimated_energy(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    params = _params(monkeypatch, region="FRA", pue=1.2)
    page = chapter.carbon_table(_rows(), params)
    assert page.assumptions().startswith("**Assumptions (every row):** grid of France (`FRA`)") and "PUE 1.2" in page.assumptions()
    visible = page.visible()
    assert list(visible["concurrency"]) == [1, 8] and set(visible["per"]) == {"1,000 generated tokens"}
    assert visible["energy_j"].tolist() == pytest.approx([100.0, 50.0], rel=0.02)   # steady windows only
    headers = list(display.table(visible).data.columns)
    assert {"Estimated energy (J)", "Estimated CO₂e (g)", "Estimated cost (USD)"} <= set(headers)
    assert not {"region", "pue", "price_usd_per_kwh"} & set(visible.columns)       # stated above, not repeated
    empty = chapter.carbon_table(pd.DataFrame(), params)
    assert empty.assumptions() == "No energy was measured, so there is nothing to convert."
    with pytest.raises(Exception, match="region='Atlantis'"):
        _params(monkeypatch, region="Atlantis")


def test_the_serving_claim_agrees_only_when_the_whole_interval_falls(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    params = _params(monkeypatch)
    table = claims.section(chapter.CHAPTER, _rows(fall=0.5), params).frame
    (row,) = table.to_dict("records")
    live = next(k for k in row if k.startswith("verdict (this run"))
    assert row["paper"].startswith("falls as the batch grows") and "ML.ENERGY" in row["paper"]
    assert row[live] == claims.AGREES and row[next(k for k in row if k.startswith("this run"))].startswith("-50% (95 % CI")
    flat = claims.section(chapter.CHAPTER, _rows(fall=0.98, spread=0.2), params).frame.iloc[0]
    assert flat[live] == claims.NOT_MEASURED          # the interval straddles zero: no agreement claimed
    rises = claims.section(chapter.CHAPTER, _rows(fall=2.0), params).frame.iloc[0]
    assert rises[live] == claims.DIFFERS
    nothing = claims.section(chapter.CHAPTER, None, params).frame.iloc[0]
    assert nothing[live] == claims.NOT_MEASURED


def _with_latency(rows: pd.DataFrame, itl_at_1: float = 0.02) -> pd.DataFrame:
    return rows.assign(itl_p50_s=[itl_at_1 * (1 if c == 1 else 1.5) for c in rows["concurrency"]],
                       ttft_p50_s=0.1, tokens_per_s=100.0, steady_share=0.8)


def test_the_level_table_and_the_tradeoff_axis_say_estimated() -> None:
    rows = _with_latency(_rows())
    steady, whole = chapter.ok_phase(rows, "steady"), chapter.ok_phase(rows, "run")
    table = chapter.level_table(chapter.pareto(chapter.means(steady)), whole)
    headers = list(display.table(table).data.columns)
    assert "Estimated energy per token (J/token)" in headers and "steady_share" in table.columns
    assert chapter.tradeoff_figure(table).axes[0].get_ylabel() == "estimated energy per token (J/token)"
    measured = chapter.pareto(chapter.means(chapter.ok_phase(_with_latency(_rows(method="counter")), "steady")))
    assert chapter.tradeoff_figure(measured).axes[0].get_ylabel() == "energy per token (J/token)"


def test_a_missing_latency_leaves_no_empty_slot_in_the_box() -> None:
    from nrg.book.chapters.c06_serving.findings import found

    said = found(_with_latency(_rows(), itl_at_1=0.0), {"alpha": 0.05, "skip_reason": None})
    first = next(s for s in said if "changes steady-state energy per token" in s)   # after the estimate's lead
    assert "changes steady-state energy per token by −50%" in first
    assert "the inter-token latency was not recorded at both levels" in first and "nan" not in " ".join(said)
