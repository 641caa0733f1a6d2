"""Shared helpers: which rows count, column checks, formula quoting, labels.

Every analysis starts from the same tidy result table (one row per phase per
repeat); these helpers keep the rules for it in one place so that all chapters
drop the same rows and name the same columns the same way.
"""
from __future__ import annotations

import keyword
import re
from collections.abc import Iterable, Sequence

import pandas as pd

from nrg.errors import ParameterError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Human names and units of the measures, for findings text and axis labels.
LABELS: dict[str, tuple[str, str]] = {
    "energy_per_token_j": ("energy per token", "J/token"),
    "energy_j": ("energy", "J"),
    "net_energy_j": ("net energy", "J"),
    "gpu_energy_j": ("GPU energy", "J"),
    "cpu_energy_j": ("CPU energy", "J"),
    "dram_energy_j": ("DRAM energy", "J"),
    "time_s": ("time", "s"),
    "ttft_s": ("time to first token", "s"),
    "tpot_s": ("time per output token", "s"),
    "tokens_per_s": ("throughput", "tokens/s"),
    "avg_power_w": ("average power", "W"),
    "idle_power_w": ("idle power", "W"),
    "peak_mem_bytes": ("peak memory", "bytes"),
    "edp_j_s": ("energy-delay product", "J·s"),
    "ed2p_j_s2": ("energy-delay² product", "J·s²"),
    "gpu_clock_mhz": ("GPU clock", "MHz"),
    "mem_clock_mhz": ("memory clock", "MHz"),
    "power_limit_w": ("power limit", "W"),
    "input_tokens": ("input length", "tokens"),
    "output_tokens": ("output length", "tokens"),
    "score": ("task score", ""),
    "model": ("model", ""),
    "task": ("task", ""),
    "phase": ("phase", ""),
    "quant": ("quantization", ""),
    "prune_method": ("pruning method", ""),
    "prune": ("pruning", ""),
    "prune_ratio": ("pruning ratio", ""),
    "dtype": ("data type", ""),
    "batch_size": ("batch size", ""),
}


def label(column: str) -> str:
    """The plain-language name of a column ("energy per token")."""
    return LABELS.get(column, (column.replace("_", " "), ""))[0]


def unit(column: str) -> str:
    """The unit of a column ("J/token"), or "" when it has none or is unknown."""
    return LABELS.get(column, ("", ""))[1]


def axis_label(column: str) -> str:
    """An axis label with the unit in brackets: "Energy per token (J/token)"."""
    name, u = LABELS.get(column, (column.replace("_", " "), ""))
    name = name[:1].upper() + name[1:]
    return f"{name} ({u})" if u else name


def quote(column: str) -> str:
    """The column as a formula term: bare when a plain identifier, else ``Q("...")``."""
    if _IDENTIFIER.match(column) and not keyword.iskeyword(column):
        return column
    if '"' in column:
        raise ParameterError(f"column {column!r} cannot be used in a formula: it contains a double quote")
    return f'Q("{column}")'


def require_columns(df: pd.DataFrame, columns: Iterable[str], parameter: str = "columns") -> None:
    """Raise ParameterError naming missing columns and the ones available."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        available = ", ".join(map(str, df.columns))
        raise ParameterError(f"{parameter}: column(s) {missing} not in the data; available: {available}")


def as_list(value: str | Sequence[str] | None) -> list[str]:
    """Accept one column name or a sequence of them."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that measured something: ``status == "ok"`` when the column exists.

    Failed and unsupported cells keep a row in the store (so they are reported),
    but their measures are empty and must not enter a mean or a model fit.
    """
    if "status" in df.columns:
        return df[df["status"].astype("string").fillna("ok") == "ok"]
    return df


def check_alpha(alpha: float) -> None:
    """Significance level must be a probability strictly between 0 and 1."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ParameterError(f"alpha={alpha!r} is not valid; it must be a number in (0, 1)")


def check_confidence(confidence: float) -> None:
    """Confidence level must be a probability strictly between 0 and 1."""
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ParameterError(f"confidence={confidence!r} is not valid; it must be a number in (0, 1)")


#: Column name endings that carry energy (or power derived from it): labelled "estimated" when it is.
ENERGY_SUFFIXES = ("_j", "_per_token_j", "_j_s", "_j_s2", "_per_j", "avg_power_w")
#: Columns computed from energy by a fixed factor (carbon tables): as estimated as the energy they convert.
FROM_ENERGY = ("gco2e", "cost_usd")


def is_energy(column: str) -> bool:
    """Whether ``column`` holds energy or a quantity computed from it (EDP, GFLOP/J, average power)."""
    base = str(column).split(" ")[0]
    if base.endswith(("_method", "_source", "_warning")):   # how energy was obtained, not energy
        return False
    return base in FROM_ENERGY or base.endswith(ENERGY_SUFFIXES) or base.startswith(
        ("energy", "net_energy", "cpu_energy", "gpu_energy", "dram_energy"))


def estimated(rows: pd.DataFrame | None) -> bool:
    """Whether any row's energy is estimated rather than measured (``energy_method``).

    A table that joins a group's methods ("counter, estimated", as the carbon
    tables do) counts too: part of that group's energy is an estimate.
    """
    if rows is None or "energy_method" not in rows.columns:
        return False
    methods = rows["energy_method"].astype("string").fillna("")
    return bool(methods.str.split(",").map(lambda parts: "estimated" in [p.strip() for p in parts]).any())
