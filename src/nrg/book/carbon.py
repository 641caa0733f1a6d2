"""Energy to carbon (gCO₂e) and money, with the grid-intensity data codecarbon maintains.

Why codecarbon's data: it is what the field's usual tool uses, kept up to date by
its maintainers, shipped in its wheel (read here as files, codecarbon is not
imported): per-country intensity (``data/private_infra/global_energy_mix.json``,
with the year of each country's figure), per cloud region
(``data/cloud/impact.csv``; only Google Cloud publishes such figures, so only
``gcp:`` regions exist), and a world average (``carbon_intensity_per_source.json``).

    grams CO₂e = energy_J x PUE / 3.6e6 J/kWh x intensity (g/kWh)
    money      = energy_J x PUE / 3.6e6 J/kWh x price (USD/kWh)

Every row a table function returns carries the region, the intensity with its
source and year, the PUE and the price with its source, so a number never loses
where it came from.
"""
from __future__ import annotations

import contextlib
import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError
from nrg.meters import codecarbon_data

if TYPE_CHECKING:
    import pandas as pd

J_PER_KWH = 3.6e6
#: The book needs a default to build; give yours. "USA" is the country with the most
#: regions in codecarbon's cloud table (9 of 40), and the default price is a US one.
DEFAULT_REGION = "USA"
#: PUE 1.0 counts the machine's own energy only: right for a local machine. A data
#: centre adds cooling and power distribution: the industry average was 1.58 in 2023
#: (Uptime Institute, intelligence.uptimeinstitute.com, "Large data centers are mostly
#: more efficient, analysis confirms", 2023).
DEFAULT_PUE = 1.0
INDUSTRY_AVERAGE_PUE_2023 = 1.58
#: USD per kWh when no price is given: the average revenue per kWh from commercial
#: customers in Virginia in 2023 (8.95 cents), U.S. EIA Electric Power Annual 2023
#: (www.eia.gov/electricity/annual/secrev-map.php). Virginia: where GCP us-east4
#: (Northern Virginia) and AWS us-east-1 run.
DEFAULT_PRICE_USD_PER_KWH = 0.0895
DEFAULT_PRICE_SOURCE = ("U.S. EIA Electric Power Annual 2023: average revenue per kWh, "
                        "commercial sector, Virginia (8.95 US cents)")
#: impact.csv carries no year: its Google Cloud figures are GCP's 2023 grid intensities
#: (GoogleCloudPlatform/region-carbon-info data/yearly/2023.csv, codecarbon PR #610).
CLOUD_DATA_YEAR: dict[str, int] = {"gcp": 2023}
#: The IEA report that codecarbon cites for its world average.
WORLD_AVERAGE_YEAR = 2019
WORLD = "world"


@dataclass(frozen=True)
class GridIntensity:
    """Grams of CO₂-equivalent per kWh drawn from one region's grid, and where the figure comes from."""

    region: str             # "FRA", "gcp:europe-west9", "world"
    name: str               # "France", "gcp europe-west9 (Paris, France)"
    gco2e_per_kwh: float
    year: int | None
    source: str
    country_iso: str | None = None   # the region's country (ISO 3166 alpha-3); None for the world


@lru_cache(maxsize=1)
def _countries() -> dict[str, GridIntensity]:
    mix = codecarbon_data.read_json(codecarbon_data.ENERGY_MIX)
    source = codecarbon_data.cite(codecarbon_data.ENERGY_MIX)
    return {code.upper(): GridIntensity(code.upper(), str(row.get("country_name", code)),
                                        float(row["carbon_intensity"]), row.get("year"), source, code.upper())
            for code, row in mix.items() if row.get("carbon_intensity") is not None}


@lru_cache(maxsize=1)
def _cloud() -> dict[str, GridIntensity]:
    out: dict[str, GridIntensity] = {}
    cite = codecarbon_data.cite(codecarbon_data.CLOUD_IMPACT)
    for row in codecarbon_data.read_csv(codecarbon_data.CLOUD_IMPACT):
        provider, region = row["provider"].strip().lower(), row["region"].strip()
        place = ", ".join(p for p in (row.get("city"), row.get("country_name")) if p)
        key = f"{provider}:{region}"
        out[key] = GridIntensity(key, f"{provider} {region} ({place})", float(row["impact"]),
                                 CLOUD_DATA_YEAR.get(provider), f"{cite} ({row.get('source') or provider})",
                                 row.get("countryIsoCode") or None)
    return out


def _world() -> GridIntensity:
    data = codecarbon_data.read_json(codecarbon_data.INTENSITY_PER_SOURCE)
    return GridIntensity(WORLD, "world average", float(data["world_average"]), WORLD_AVERAGE_YEAR,
                         f"{codecarbon_data.cite(codecarbon_data.INTENSITY_PER_SOURCE)} world_average "
                         f"({data.get('world_average_source', 'IEA')})")


def regions() -> dict[str, str]:
    """Every valid ``region``: ISO 3166 alpha-3 country codes, ``gcp:<region>``, and ``world``."""
    names = {code: g.name for code, g in sorted(_countries().items())}
    names.update({key: g.name for key, g in sorted(_cloud().items())})
    names[WORLD] = "world average"
    return names


def _unknown_region(region: str) -> ParameterError:
    valid = regions()
    by_lower = {k.lower(): k for k in valid}
    by_lower.update({v.lower(): k for k, v in valid.items() if k in _countries()})   # "france" -> FRA
    near = [by_lower[m] for m in difflib.get_close_matches(region.lower(), list(by_lower), n=5, cutoff=0.6)]
    hint = f" Nearest: {', '.join(dict.fromkeys(near))}." if near else ""
    provider = region.split(":", 1)[0].lower() if ":" in region else ""
    if provider and provider not in CLOUD_DATA_YEAR:
        hint += (f" codecarbon's cloud table has no {provider!r} regions (only Google Cloud publishes "
                 "per-region intensity): give the region's country code instead (e.g. 'USA' for aws:us-east-1).")
    n_countries, n_cloud = len(_countries()), len(_cloud())
    return ParameterError(
        f"region={region!r} is not valid.{hint} Valid: {n_countries} ISO 3166 alpha-3 country codes "
        f"('FRA', 'USA', 'DEU', ...), {n_cloud} cloud regions ('gcp:europe-west9', 'gcp:us-central1', ...) "
        "and 'world'; nrg.book.carbon.regions() lists them all.")


def grid_intensity(region: str) -> GridIntensity:
    """The intensity of ``region`` (case-insensitive); ParameterError naming the nearest valid ones."""
    if not isinstance(region, str) or not region.strip():
        raise ParameterError(f"region={region!r} is not valid; give a country code such as 'FRA' "
                             "or a cloud region such as 'gcp:europe-west9'")
    text = region.strip()
    if text.lower() == WORLD:
        return _world()
    if ":" in text:
        provider, _, name = text.partition(":")
        found = _cloud().get(f"{provider.strip().lower()}:{name.strip().lower()}")
    else:
        found = _countries().get(text.upper())
    if found is None:
        raise _unknown_region(text)
    return found


def _number(name: str, value: Any, minimum: float, why: str) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not value >= minimum:
        raise ParameterError(f"{name}={value!r} is not valid; it must be a number >= {minimum:g} ({why})")
    return float(value)


@dataclass(frozen=True)
class Conversion:
    """How joules become grams of CO₂e and US dollars: one region's grid, a PUE, a price."""

    intensity: GridIntensity
    pue: float
    price_usd_per_kwh: float
    price_source: str

    def facility_kwh(self, energy_j: float) -> float:
        """The kWh drawn from the grid for ``energy_j`` at the machine (PUE included)."""
        return energy_j * self.pue / J_PER_KWH

    def gco2e(self, energy_j: float) -> float:
        """Grams of CO₂e for ``energy_j`` joules at the machine."""
        return self.facility_kwh(energy_j) * self.intensity.gco2e_per_kwh

    def cost_usd(self, energy_j: float) -> float:
        """US dollars for ``energy_j`` joules at the machine."""
        return self.facility_kwh(energy_j) * self.price_usd_per_kwh

    def columns(self) -> dict[str, Any]:
        """The provenance columns every table row carries."""
        g = self.intensity
        return {"region": g.region, "region_name": g.name, "grid_gco2e_per_kwh": g.gco2e_per_kwh,
                "intensity_year": g.year, "intensity_source": g.source, "pue": self.pue,
                "price_usd_per_kwh": self.price_usd_per_kwh, "price_source": self.price_source}


def conversion(region: str = DEFAULT_REGION, price_per_kwh: float | None = None,
               pue: float = DEFAULT_PUE) -> Conversion:
    """Check the three parameters and build the conversion (ParameterError before any work)."""
    intensity = grid_intensity(region)
    pue_value = _number("pue", pue, 1.0, "a data centre's total power over its IT power; 1.0 for a local machine")
    if price_per_kwh is None or (isinstance(price_per_kwh, str) and price_per_kwh.strip() in ("", "None")):
        price, source = DEFAULT_PRICE_USD_PER_KWH, DEFAULT_PRICE_SOURCE
    else:
        price = _number("price_per_kwh", price_per_kwh, 0.0, "US dollars per kWh")
        source = f"user value {price:g} USD/kWh"
    return Conversion(intensity, pue_value, price, source)


def check_params(region: str = DEFAULT_REGION, price_per_kwh: float | None = None,
                 pue: float = DEFAULT_PUE) -> dict[str, Any]:
    """What a chapter driver's ``check`` returns for these three parameters, once checked."""
    conv = conversion(region, price_per_kwh, pue)
    price = None if conv.price_source == DEFAULT_PRICE_SOURCE else conv.price_usd_per_kwh
    return {"region": conv.intensity.region, "price_per_kwh": price, "pue": conv.pue}


# ------------------------------------------------------------------ tables


def convert(frame: pd.DataFrame, conv: Conversion, energy: str = "energy_j") -> pd.DataFrame:
    """``frame`` with ``gco2e`` and ``cost_usd`` for its ``energy`` column, and the provenance columns."""
    out = frame.copy()
    out["gco2e"] = [conv.gco2e(e) for e in out[energy]]
    out["cost_usd"] = [conv.cost_usd(e) for e in out[energy]]
    for key, value in conv.columns().items():
        out[key] = value
    return out


def per_unit(rows: Any, by: Sequence[str], units: str, per: str, scale: float) -> pd.DataFrame:
    """Energy per ``scale`` units (sum of energy / sum of units), per group."""
    grouped = rows.groupby(list(by), dropna=False, sort=True) if by else [((), rows)]
    records = []
    for key, part in grouped:
        key = key if isinstance(key, tuple) else (key,)
        n_units = float(part[units].sum())
        energy_j = float(part["energy_j"].sum()) / n_units * scale if n_units > 0 else math.nan
        methods = ", ".join(sorted(map(str, part["energy_method"].dropna().unique()))) \
            if "energy_method" in part.columns else ""
        records.append({**dict(zip(by, key, strict=True)), "per": per, "energy_j": energy_j,
                        "windows": len(part), "energy_method": methods})
    import pandas as pd

    return pd.DataFrame.from_records(records)


def inference_table(rows: Any, by: Sequence[str] = ("model",), region: str = DEFAULT_REGION,
                    price_per_kwh: float | None = None, pue: float = DEFAULT_PUE,
                    phase: str = "generate", tokens: str = "tokens") -> pd.DataFrame:
    """gCO₂e and USD per 1,000 generated tokens, per group of sweep rows (chapters 1-3).

    Energy per 1,000 tokens is the group's total energy over its total generated
    tokens (``phase`` rows only, successful ones), so long and short windows
    weigh by the tokens they produced.
    """
    from nrg.stats import ok_rows  # pandas only when a table is made: the CLI imports this module

    conv = conversion(region, price_per_kwh, pue)
    selected = ok_rows(rows)
    selected = selected[(selected["phase"] == phase) & selected["energy_j"].notna()]
    return convert(per_unit(selected, by, tokens, "1,000 generated tokens", 1000.0), conv)


# ------------------------------------------------------------------ how a table reads on a page

#: The columns :func:`convert` adds that are the same on every row of one conversion.
PROVENANCE_COLUMNS: tuple[str, ...] = ("region", "region_name", "grid_gco2e_per_kwh", "intensity_year",
                                       "intensity_source", "pue", "price_usd_per_kwh", "price_source")
#: The measured and converted columns a reader looks for, in this order, right after the groups.
VALUE_COLUMNS: tuple[str, ...] = ("per", "energy_j", "gco2e", "cost_usd")


@dataclass(frozen=True)
class PageTable:
    """A carbon table as a page shows it: the shared assumptions once, then energy, CO₂e and cost.

    ``frame`` is the full table (every provenance column on every row: that is
    what the data link carries); :meth:`visible` drops the columns that do not
    vary, which :meth:`assumptions` states once above the table instead.
    """

    frame: Any

    def constant(self) -> list[str]:
        """Provenance columns with one value over all rows (stated once, not repeated per row)."""
        return [c for c in PROVENANCE_COLUMNS
                if c in self.frame.columns and self.frame[c].astype("string").nunique(dropna=False) <= 1]

    def assumptions(self) -> str:
        """One sentence: the grid (region, intensity, year, source), the PUE and the electricity price."""
        if self.frame.shape[0] == 0:
            return "No energy was measured, so there is nothing to convert."
        row = self.frame.iloc[0]
        if len(self.constant()) < len(PROVENANCE_COLUMNS):
            return "The grid, PUE or price differ between rows: they are columns of the table."
        return (f"**Assumptions (every row):** grid of {row['region_name']} (`{row['region']}`), "
                f"{row['grid_gco2e_per_kwh']:.4g} gCO₂e/kWh ({row['intensity_source']}, {row['intensity_year']}); "
                f"PUE {row['pue']:g}; electricity {row['price_usd_per_kwh']:.4g} USD/kWh ({row['price_source']}).")

    def visible(self) -> pd.DataFrame:
        """The rows with their groups, then energy, CO₂e and cost, then how the energy was obtained."""
        shown: pd.DataFrame = self.frame.drop(columns=self.constant())
        values = [c for c in VALUE_COLUMNS if c in shown.columns]
        keys = [c for c in shown.columns if c not in values and c not in ("windows", "energy_method")]
        tail = [c for c in ("windows", "energy_method") if c in shown.columns]
        return shown[keys + values + tail]


def for_page(frame: Any) -> PageTable:
    """Wrap a table of :func:`inference_table` (or a chapter's own carbon table) for a page."""
    return PageTable(frame)
