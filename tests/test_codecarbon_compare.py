"""nrg beside codecarbon on one short window: both tools' terms, the explanation, the carbon table."""
from __future__ import annotations

import sys

import pytest

from nrg.book import carbon
from nrg.book.chapters.c00_how_energy_is_measured import codecarbon_compare
from nrg.book.chapters.c00_how_energy_is_measured import driver as chapter


def burn() -> int:
    total = 0
    for i in range(100_000):
        total += i % 7
    return 1


@pytest.mark.slow   # codecarbon's import and tracker start/stop: ~5 s on a loaded 2-core VM
def test_same_window_both_tools() -> None:
    params = chapter.Params(region="FRA", meters="estimate")
    result = codecarbon_compare.side_by_side(burn, params, min_duration_s=1.5, sample_s=0.2)
    assert result.codecarbon is not None and result.units > 0
    table = result.table().set_index("tool")
    ours, theirs = table.loc["nrg"], table.iloc[1]
    assert table.index[1].startswith("codecarbon 3.")
    # codecarbon's window holds nrg's (started before, stopped after)
    assert ours["time_s"] >= 1.5 and theirs["time_s"] >= ours["time_s"]
    assert ours["cpu_j"] > 0 and theirs["cpu_j"] > 0
    # the same DIMM rule on the same machine: the same RAM watts
    assert ours["ram_j"] / ours["time_s"] == pytest.approx(result.codecarbon.ram_power, rel=0.05)
    assert ours["total_j"] == pytest.approx(ours["cpu_j"] + ours["ram_j"])
    text = result.explanation()
    for figure in (ours["total_j"], theirs["total_j"], ours["cpu_j"], theirs["cpu_j"]):
        assert f"{figure:.0f} J" in text
    assert f"{ours['total_j'] / theirs['total_j']:.2f} times" in text
    # carbon of both tools' energies, per 1,000 work units, by France's intensity
    per = codecarbon_compare.carbon_table(result, region="FRA", pue=1.5).set_index("tool")
    intensity = carbon.grid_intensity("FRA").gco2e_per_kwh
    for tool in per.index:
        energy_j = table.loc[tool, "total_j"] / result.units * 1000
        assert per.loc[tool, "energy_j"] == pytest.approx(energy_j)
        assert per.loc[tool, "gco2e"] == pytest.approx(energy_j * 1.5 / 3.6e6 * intensity)
    # codecarbon's own grams for its energy agree with the same conversion
    assert result.codecarbon.emissions * 1000 == pytest.approx(
        carbon.conversion("FRA").gco2e(theirs["total_j"]), rel=1e-6)


def test_without_codecarbon_the_page_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "codecarbon", None)      # import codecarbon -> ImportError
    params = chapter.Params(meters="estimate")
    result = codecarbon_compare.side_by_side(burn, params, min_duration_s=0.2)
    assert result.codecarbon is None and "codecarbon is not installed" in (result.reason or "")
    assert list(result.table()["tool"]) == ["nrg"]
    assert "codecarbon could not run here" in result.explanation()
    assert len(codecarbon_compare.carbon_table(result)) == 1
