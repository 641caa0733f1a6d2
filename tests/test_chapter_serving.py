"""Chapter 6's analysis on synthetic steady-state rows: means, Pareto front, guarded findings, shapes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nrg.book.chapters.c06_serving import beside
from nrg.book.chapters.c06_serving import driver as chapter
from nrg.book.chapters.c06_serving.findings import serving_findings
from nrg.errors import ParameterError


def rows(energy: dict[int, float], itl: dict[int, float], spread: float, blocks: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    out = []
    for b in range(blocks):
        for c, e in energy.items():
            out.append({"model": "m", "concurrency": c, "block": b, "status": "ok", "phase": "steady",
                        "energy_per_token_j": e * (1 + spread * rng.standard_normal()),
                        "itl_p50_s": itl[c], "ttft_p50_s": 0.1, "tokens_per_s": 10.0 * c, "batch_mean": c,
                        "avg_power_w": 30.0, "energy_method": "estimated"})
    return pd.DataFrame(out)


def test_a_clear_fall_is_reported_with_its_size_and_the_lowest_level_named() -> None:
    steady = rows({1: 1.0, 4: 0.4, 16: 0.1}, {1: 0.05, 4: 0.06, 16: 0.09}, spread=0.01)
    table = chapter.pareto(chapter.means(steady))
    assert table["pareto"].all()   # each level trades energy for latency: all on the front
    text = str(serving_findings(table, steady))
    assert "from concurrency 1 to 16" in text and "−90%" in text
    assert "concurrency 16 has the lowest energy per token" in text
    assert "estimated from CPU time" in text


def test_overlapping_intervals_never_name_a_lowest_level() -> None:
    steady = rows({1: 1.0, 2: 0.99, 4: 0.98}, {1: 0.05, 2: 0.05, 4: 0.05}, spread=0.2)
    text = str(serving_findings(chapter.pareto(chapter.means(steady)), steady))
    assert "cannot be told apart" in text and "no single level has the lowest" in text
    assert "has the lowest" not in text.replace("no single level has the lowest", "")


def test_a_level_worse_on_both_counts_is_off_the_pareto_front() -> None:
    steady = rows({1: 1.0, 2: 1.2, 4: 0.5}, {1: 0.05, 2: 0.07, 4: 0.06}, spread=0.0)
    table = chapter.pareto(chapter.means(steady)).set_index("concurrency")
    assert list(table["pareto"]) == [True, False, True]


def test_shapes_divide_each_curve_by_its_own_first_point_and_keep_the_published_figures() -> None:
    pub = beside.published()
    llama = pub[(pub["model_id"] == "meta-llama/Llama-3.1-8B-Instruct") & (pub["gpu_model"] == "H100")]
    assert llama.set_index("max_num_seqs").loc[8, "energy_per_token_j"] == pytest.approx(0.455, abs=0.001)
    means = chapter.means(rows({1: 2.0, 8: 0.5}, {1: 0.05, 8: 0.06}, spread=0.0))
    shape = beside.shape_table(means, pd.DataFrame(), pub, "cpu")
    ours = shape[shape["curve"].str.contains("this machine")]
    assert list(ours["relative"]) == [1.0, 0.25]
    theirs = shape[shape["curve"] == "Llama-3.1-8B-Instruct, vLLM, H100 (ML.ENERGY v3)"]
    assert theirs["relative"].iloc[0] == 1.0 and theirs["relative"].min() == pytest.approx(0.070 / 0.455, rel=0.02)
    assert not beside.shape_table(None, pd.DataFrame(), pub, "cpu").empty


def test_check_refuses_bad_levels_and_says_why_nothing_is_measured_without_an_engine(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ([4], [2, 2], [0, 1]):
        with pytest.raises(ParameterError, match="concurrency"):
            chapter.check(concurrency=bad)
    monkeypatch.setattr("nrg.serving.options.default_engine_python", lambda: None)
    params = chapter.check()
    assert params["configs"] == [] and "make engine" in params["skip_reason"]
    assert chapter.measure(params).empty


def test_nrg_reference_lists_the_serving_part_as_not_run_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from nrg.reference.parts import parts

    monkeypatch.setattr("nrg.serving.options.default_engine_python", lambda: None)
    serving = {p.chapter: p for p in parts("cpu")}["06_serving"]
    assert serving.configs == () and "no serving engine is installed" in serving.left_out[0][1]


def test_the_findings_box_says_why_nothing_was_measured_and_summarizes_what_was() -> None:
    from nrg.book.chapters.c06_serving.findings import found

    assert "no engine here" in found(pd.DataFrame(), {"skip_reason": "no engine here", "alpha": 0.05})[0]
    steady = rows({1: 1.0, 4: 0.4, 16: 0.1}, {1: 0.05, 4: 0.06, 16: 0.09}, spread=0.01)
    text = " ".join(found(steady, {"skip_reason": None, "alpha": 0.05}))
    assert "−90%" in text and "Concurrency" in text
