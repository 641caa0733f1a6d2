"""Chapter 6's analysis on synthetic steady-state rows: means, Pareto front, guarded findings, shapes."""
from __future__ import annotations

from pathlib import Path

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


def test_params_refuse_bad_levels_and_say_why_nothing_is_measured_without_an_engine(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NRG_RUNS_DIR", str(tmp_path / "runs"))
    for bad in ([4], [2, 2], [0, 1], "[1, 1]"):
        with pytest.raises(ParameterError, match="concurrency"):
            chapter.Params(concurrency=bad)
    monkeypatch.setattr("nrg.serving.options.default_engine_python", lambda: None)
    params = chapter.Params()
    assert params["configs"] == [] and params.checked == () and "make engine" in (params.skip_reason or "")
    assert chapter.measure(params).empty
    assert not (tmp_path / "runs" / chapter.CHAPTER / "cells").exists()   # nothing measured, nothing written


def test_papermill_strings_are_parsed_into_the_serving_config(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    """``-p concurrency '[4, 1]'`` and friends: the one config holds the parsed values, levels sorted."""
    from nrg.models.spec import ModelSpec
    from nrg.sweep.repeats import RepeatPolicy

    monkeypatch.setattr("nrg.serving.options.default_engine_python", lambda: None)
    params = chapter.Params(models="[gpt2]", concurrency="[4, 1]", output_tokens="8", requests_per_client="2",
                            warmup_requests="0", repeats="2", idle_s="0.5", start_timeout_s="60",
                            engine_args="[]", run_dir=str(tmp_path / "run"), batch_run_dir=str(tmp_path / "batch"))
    assert params.models == (ModelSpec("gpt2", "real"),) and params.concurrency == (1, 4)
    assert params.repeats == RepeatPolicy(min_n=2, max_n=2, ci_rel=None) and params.engine_args == ()
    assert (params.output_tokens, params.idle_s, params.start_timeout_s) == (8, 0.5, 60.0)
    config = params.config()
    assert config["serving"] == {"concurrency": [1, 4], "requests_per_client": 2, "warmup_requests": 0,
                                 "start_timeout_s": 60.0, "engine_args": []}
    assert params.run_dir == (tmp_path / "run").resolve() and params.batch_run_dir == (tmp_path / "batch").resolve()


@pytest.mark.parametrize("given, names", [
    ({"dtype": "float64"}, ("dtype=", "'bfloat16'")),
    ({"device": "tpu"}, ("device=", "'cuda:N'")),
    ({"output_tokens": 1}, ("output_tokens", ">= 2")),
    ({"engine_args": "[1, 2]"}, ("engine_args", "list of strings")),
    ({"region": "Atlantis"}, ("region='Atlantis'",)),
])
def test_a_bad_value_names_the_parameter_even_without_an_engine(
        given: dict[str, object], names: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NRG_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr("nrg.serving.options.default_engine_python", lambda: None)
    with pytest.raises(ParameterError) as info:
        chapter.Params(**given)   # type: ignore[arg-type]
    assert all(n in str(info.value) for n in names), str(info.value)
    assert not (tmp_path / "runs").exists()   # refused before any folder was made


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


def test_the_kernel_trusts_the_machine_check_of_nrg_book_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With an engine given, the config is checked once per run: in ``nrg book run``, not again in the kernel."""
    from nrg.book import sweeps
    from nrg.book.params import CHECKED_ENV, checked_env

    monkeypatch.setenv("NRG_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv(CHECKED_ENV, raising=False)
    checks: list[object] = []
    monkeypatch.setattr(sweeps, "check_configs", lambda configs: checks.append(configs) or sweeps.unchecked(configs))
    given = {"base_url": "http://127.0.0.1:9", "concurrency": "[1, 2]"}   # an engine: nothing skipped
    run = chapter.Params(**given)                                          # nrg book run's process
    assert run.skip_reason is None and len(checks) == 1 and len(run["configs"]) == 1
    with checked_env(run):
        kernel = chapter.Params(**given)                                   # the notebook's first cell
        assert len(checks) == 1 and kernel == run
        assert [c.cell_id for i in kernel.checked for c in i.cells] == [c.cell_id for i in run.checked for c in i.cells]
        chapter.Params(**{**given, "output_tokens": 8})                    # other values: checked here
    assert len(checks) == 2
