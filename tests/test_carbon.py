"""Carbon and cost: conversions against hand computation from codecarbon's shipped data, regions, tables."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from nrg.book import carbon
from nrg.book.chapters import DRIVERS, validate
from nrg.book.chapters.c03_dvfs.carbon import dvfs_table
from nrg.book.chapters.c04_network_tickets.carbon import tickets_table
from nrg.errors import ParameterError


def data(relative: str) -> Path:
    spec = importlib.util.find_spec("codecarbon")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / relative


def energy_mix() -> dict:
    return json.loads(data("data/private_infra/global_energy_mix.json").read_text(encoding="utf-8"))


def cloud_rows() -> list[dict[str, str]]:
    with data("data/cloud/impact.csv").open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("code", ["FRA", "USA", "DEU"])
def test_country_conversion_by_hand(code: str) -> None:
    row = energy_mix()[code]
    energy_j, pue, price = 7.2e6, 1.4, 0.25           # 2 kWh at the machine
    conv = carbon.conversion(code.lower(), price_per_kwh=price, pue=pue)
    assert conv.gco2e(energy_j) == pytest.approx(2.0 * pue * row["carbon_intensity"])
    assert conv.cost_usd(energy_j) == pytest.approx(2.0 * pue * price)
    columns = conv.columns()
    assert columns["intensity_year"] == row["year"] and columns["region_name"] == row["country_name"]
    assert "global_energy_mix.json" in columns["intensity_source"] and "codecarbon" in columns["intensity_source"]


def test_cloud_region_by_hand() -> None:
    row = next(r for r in cloud_rows() if r["region"] == "europe-west1")
    conv = carbon.conversion("gcp:europe-west1")
    assert conv.intensity.gco2e_per_kwh == float(row["impact"])
    assert conv.gco2e(3.6e6) == pytest.approx(float(row["impact"]))
    assert conv.intensity.country_iso == row["countryIsoCode"]
    assert "impact.csv" in conv.intensity.source and conv.intensity.year == carbon.CLOUD_DATA_YEAR["gcp"]
    assert len([k for k in carbon.regions() if k.startswith("gcp:")]) == len(cloud_rows())


def test_world_average_is_codecarbons_fallback() -> None:
    world = json.loads(data("data/private_infra/carbon_intensity_per_source.json").read_text())["world_average"]
    assert carbon.grid_intensity("WORLD").gco2e_per_kwh == world


def test_our_figures_are_the_ones_codecarbon_uses() -> None:
    """codecarbon's own emission functions give the grams we compute for the same kWh."""
    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import CloudMetadata, GeoMetadata
    from codecarbon.input import DataSource

    theirs = Emissions(DataSource())
    kwh = Energy.from_energy(kWh=3.0)
    for code in ("FRA", "USA", "DEU", "IND"):
        kg = theirs.get_country_emissions(kwh, GeoMetadata(country_iso_code=code))
        assert carbon.conversion(code).gco2e(3.0 * 3.6e6) == pytest.approx(kg * 1000)
    kg = theirs.get_cloud_emissions(kwh, CloudMetadata(provider="gcp", region="europe-west9"))
    assert carbon.conversion("gcp:europe-west9").gco2e(3.0 * 3.6e6) == pytest.approx(kg * 1000)


@pytest.mark.parametrize("region, nearest", [("FRX", "FRA"), ("France", "FRA"), ("gcp:europe-west99", "gcp:europe-west9"),
                                             ("aws:us-east-1", "country code instead")])
def test_unknown_region_names_the_nearest_valid_ones(region: str, nearest: str) -> None:
    with pytest.raises(ParameterError, match="region=") as err:
        carbon.conversion(region)
    assert nearest in str(err.value) and "nrg.book.carbon.regions()" in str(err.value)


def test_bad_pue_and_price() -> None:
    for bad in (0.9, -1, "abc", True, float("nan")):
        with pytest.raises(ParameterError, match="pue"):
            carbon.conversion("FRA", pue=bad)  # type: ignore[arg-type]
    for bad in (-0.1, "x", float("inf")):
        with pytest.raises(ParameterError, match="price_per_kwh"):
            carbon.conversion("FRA", price_per_kwh=bad)  # type: ignore[arg-type]
    for bad in ("", None, 3):
        with pytest.raises(ParameterError, match="region"):
            carbon.conversion(bad)  # type: ignore[arg-type]
    # papermill -p passes strings
    assert carbon.check_params("fra", "0.2", "1.5") == {"region": "FRA", "price_per_kwh": 0.2, "pue": 1.5}
    assert carbon.check_params() == {"region": "USA", "price_per_kwh": None, "pue": 1.0}


def test_default_price_and_pue_say_where_they_come_from() -> None:
    conv = carbon.conversion()
    assert conv.price_usd_per_kwh == carbon.DEFAULT_PRICE_USD_PER_KWH and "EIA" in conv.price_source
    assert conv.pue == 1.0
    assert "user value 0.3 USD/kWh" in carbon.conversion(price_per_kwh=0.3).price_source


def sweep_rows() -> pd.DataFrame:
    rows = [("a", "generate", "ok", 100.0, 10), ("a", "generate", "ok", 300.0, 30),
            ("a", "prefill", "ok", 50.0, 8), ("a", "generate", "failed", math.nan, 10),
            ("b", "generate", "ok", 40.0, 20)]
    return pd.DataFrame(rows, columns=["model", "phase", "status", "energy_j", "tokens"]).assign(
        energy_method="estimated")


def test_inference_table_per_1000_tokens_by_hand() -> None:
    intensity = energy_mix()["DEU"]["carbon_intensity"]
    table = carbon.inference_table(sweep_rows(), by=["model"], region="DEU", price_per_kwh=0.5, pue=1.2)
    a = table.set_index("model").loc["a"]
    energy_j = (100.0 + 300.0) / (10 + 30) * 1000          # prefill and failed rows left out
    assert a["energy_j"] == pytest.approx(energy_j) and a["windows"] == 2
    assert a["gco2e"] == pytest.approx(energy_j * 1.2 / 3.6e6 * intensity)
    assert a["cost_usd"] == pytest.approx(energy_j * 1.2 / 3.6e6 * 0.5)
    assert (table["per"] == "1,000 generated tokens").all()
    assert set(table["intensity_year"]) == {energy_mix()["DEU"]["year"]} and table["intensity_source"].notna().all()
    assert table.set_index("model").loc["b", "energy_j"] == pytest.approx(2000.0)


def test_tickets_table_per_run_and_per_unit() -> None:
    rows = pd.DataFrame([
        {"task": "response", "quant": "none", "prune": "none", "phase": "finetune", "status": "ok", "energy_j": 90.0},
        {"task": "response", "quant": "none", "prune": "none", "phase": "finetune", "status": "ok", "energy_j": 110.0},
        {"task": "response", "quant": "none", "prune": "none", "phase": "inference", "status": "ok",
         "energy_j": 30.0, "generated_tokens": 60, "n_eval": 4},
        {"task": "root_cause", "quant": "none", "prune": "none", "phase": "inference", "status": "ok",
         "energy_j": 5.0, "generated_tokens": math.nan, "n_eval": 25},
        {"task": "root_cause", "quant": "nf4", "prune": "none", "phase": "finetune", "status": "unsupported",
         "energy_j": math.nan},
    ])
    table = tickets_table(rows, region="FRA").set_index(["task", "quant", "per"])
    assert table.loc[("response", "none", "fine-tuning run"), "energy_j"] == pytest.approx(100.0)
    assert table.loc[("response", "none", "1,000 generated tokens"), "energy_j"] == pytest.approx(500.0)
    assert table.loc[("root_cause", "none", "1,000 tickets classified"), "energy_j"] == pytest.approx(200.0)
    assert ("root_cause", "nf4", "fine-tuning run") not in table.index
    assert table["gco2e"].to_numpy() == pytest.approx(table["energy_j"].to_numpy() / 3.6e6 * 56.039, rel=0.01)


def test_dvfs_table_labels_settings() -> None:
    rows = sweep_rows().assign(gpu_clock_mhz=[1410.0, 1410.0, 1410.0, math.nan, math.nan])
    table = dvfs_table({"live": {"rows": rows, "axis": "gpu_clock_mhz"}, "empty": {"findings": ""}},
                       region="USA")
    assert set(table["setting"]) == {"1410 MHz", "default"} and set(table["data"]) == {"live"}
    assert dvfs_table({}, region="USA").empty


@pytest.mark.parametrize("chapter", sorted(DRIVERS))
def test_every_chapter_checks_the_carbon_parameters(chapter: str) -> None:
    with pytest.raises(ParameterError, match="region='Atlantis'"):
        validate(chapter, {"region": "Atlantis"})
    with pytest.raises(ParameterError, match="pue"):
        validate(chapter, {"pue": 0.5})
