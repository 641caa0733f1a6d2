"""Chapter 5 (batch size): parameters checked before any work, the fit, the findings, a tiny run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nrg.book import found, plots
from nrg.book.chapters import validate
from nrg.book.chapters.c05_batch_size import driver as chapter
from nrg.errors import ParameterError

TINY = {"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}


def test_defaults_are_the_cpu_profile(tmp_path: Path) -> None:
    params = chapter.Params(run_dir=str(tmp_path / "run"))
    (config,) = (item.config for item in params.checked)
    assert config.batch_sizes == (1, 2, 4, 8)
    assert config.input_tokens == (64,) and config.output_tokens == (16,)
    assert params.batch_sizes == (1, 2, 4, 8) and params.run_dir == (tmp_path / "run").resolve()


def test_papermill_strings_are_read(tmp_path: Path) -> None:
    params = chapter.Params(batch_sizes="[8, 1, 2]", input_tokens="32", run_dir=str(tmp_path))
    assert params.batch_sizes == (1, 2, 8) and params.checked[0].config.input_tokens == (32,)


@pytest.mark.parametrize(("changes", "message"), [
    ({"batch_sizes": [4]}, "at least two batch sizes"),
    ({"batch_sizes": [2, 2]}, "duplicates"),
    ({"batch_sizes": [0, 2]}, "batch_sizes=0"),
    ({"batch_sizes": ["x", 2]}, "batch_sizes='x'"),
    ({"output_tokens": 1}, "output_tokens=1"),
    ({"alpha": 0.9}, "alpha=0.9"),
    ({"region": "Atlantis"}, "region"),
    ({"models": ["no-such-model"]}, "no-such-model"),
    ({"batch_size": [1, 2]}, r"unknown parameter\(s\) \['batch_size'\]"),
])
def test_bad_values_are_refused_before_anything_is_written(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        validate(chapter.CHAPTER, {"run_dir": str(tmp_path / "run"), **changes})
    assert not (tmp_path / "run").exists()


def _synthetic(fixed_j: float = 10.0, per_sequence_j: float = 2.0, n_out: int = 4) -> pd.DataFrame:
    """Generation rows whose energy is exactly fixed + per-sequence x batch, with small noise."""
    rng = np.random.default_rng(0)
    rows = []
    for batch in (1, 2, 4, 8):
        for repeat in range(4):
            energy = fixed_j + per_sequence_j * batch + rng.normal(0, 0.05)
            time_s = 1.0 + 0.1 * batch
            tokens = batch * n_out
            rows.append({"model": "m", "batch_size": batch, "repeat": repeat, "phase": "generate",
                         "status": "ok", "energy_j": energy, "time_s": time_s, "tokens": tokens,
                         "energy_per_token_j": energy / tokens, "tokens_per_s": tokens / time_s})
    return pd.DataFrame(rows)


def test_the_fit_separates_shared_and_per_sequence_energy() -> None:
    costs = chapter.batch_costs(_synthetic()).set_index("term")
    assert costs.loc["Intercept", "estimate_j"] == pytest.approx(10.0, abs=0.1)
    assert costs.loc["batch_size", "estimate_j"] == pytest.approx(2.0, abs=0.05)
    assert costs.loc["batch_size", "p"] < 0.001


def test_changes_and_findings_follow_the_data() -> None:
    gen = _synthetic()
    table = chapter.change_table(gen)
    first, last = table.iloc[0], table.iloc[-1]
    assert first["energy_per_token_change_pct"] == 0 and first["latency_change_pct"] == 0
    expected = ((26 / 32) / (12 / 4) - 1) * 100  # energy per token at batch 8 vs batch 1, in %
    assert last["energy_per_token_change_pct"] == pytest.approx(expected, abs=1)
    assert last["latency_change_pct"] == pytest.approx((1.8 / 1.1 - 1) * 100)
    text = " ".join(chapter.batch_findings(gen))
    assert "batch 1 to 8" in text and "−73%" in text and "+64%" in text and "95% intervals apart" in text
    assert "J shared by the batch plus 1.99 J per sequence" in text or "plus 2 J per sequence" in text
    assert "the shared part is 83%" in text            # 10 / (10 + 2) at batch 1


def test_a_change_within_the_spread_is_not_called_a_change() -> None:
    """Energy per token at batch 1 and 8 whose intervals overlap: no "changes by", the overlap is said."""
    rng = np.random.default_rng(3)
    gen = _synthetic().assign(energy_per_token_j=lambda d: 1.0 + rng.normal(0, 0.5, len(d)))
    text = " ".join(chapter.batch_findings(gen))
    assert "going from batch" not in text and "changes energy per token" not in text
    assert "at batch 1" in text and "at batch 8" in text and "cannot be told apart here" in text


def test_a_negative_fitted_part_gives_no_share() -> None:
    noisy = _synthetic(fixed_j=10.0, per_sequence_j=-0.5)
    text = " ".join(chapter.batch_findings(noisy))
    assert "the shared part is" not in text
    assert "is not used to split the energy" in text and "per-sequence part is negative" in text


def test_a_poor_fit_or_a_part_larger_than_the_whole_gives_no_share() -> None:
    """Chapter 5's defect: "the shared part is 91 %" from a fit with R² 0.72 whose shared part exceeds batch 1."""
    gen = _synthetic()
    rng = np.random.default_rng(3)
    noisy = gen.assign(energy_j=gen["energy_j"] + rng.normal(0, 6.0, len(gen)))
    costs = chapter.batch_costs(noisy)
    assert costs["r2"].iloc[0] < 0.9
    text = " ".join(chapter.batch_findings(noisy, costs))
    assert "the shared part is" not in text and "the fit is poor (R² = " in text
    costs = chapter.batch_costs(gen)
    inflated = costs.assign(estimate_j=costs["estimate_j"].where(costs["term"] != "Intercept", 31.1))
    text = " ".join(chapter.batch_findings(gen, inflated))
    assert "the shared part is" not in text
    assert "the fitted shared part (31.1 J) exceeds the measured energy at batch 1" in text


def test_anova_on_the_batch_size_finds_its_effect() -> None:
    result = chapter.anova(_synthetic())
    assert "batch_size" in result.significant()


def test_found_names_the_chapters() -> None:
    with pytest.raises(ParameterError, match="05_batch_size"):
        found.collect("06_nope")


def test_a_tiny_run_end_to_end(tmp_path: Path) -> None:
    params = chapter.Params(models=[TINY], batch_sizes=[1, 2], input_tokens=8, output_tokens=3, repeats=2,
                            warmup=0, idle_s=0, isolate=False, run_dir=str(tmp_path / "run"))
    df = chapter.measure(params, progress=False)
    gen = chapter.ok_phase(df)
    assert sorted(gen["batch_size"].unique()) == [1, 2]
    assert (gen["tokens"] == gen["batch_size"] * 3).all()
    fig = chapter.figure(gen, "energy_per_token_j")
    assert fig.axes[0].get_xscale() == "log"
    data, name = plots.figure_data(fig)
    assert name == "energy_per_token_j-vs-batch_size" and sorted(data["batch_size"]) == [1, 2]
    sentences = found.collect("05_batch_size", df, params)
    # a measured change, or (a tiny run's spread being wide) the overlap said in its place
    assert any(("from batch 1 to 2" in s and "95% intervals apart" in s)
               or ("at batch 1" in s and "at batch 2" in s and "cannot be told apart" in s) for s in sentences)
    assert any("estimated" in s for s in sentences)          # CPU energy here is estimated, and says so
