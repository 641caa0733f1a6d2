"""The footer every chapter ends with: hardware, meter method, software, precision.

A number in joules means little without knowing whether a counter measured it
or a model estimated it, on which machine and with how many repeats. These
helpers read that from the provenance columns every result row carries.
"""
from __future__ import annotations

import pandas as pd

from nrg.stats._data import ok_rows

HARDWARE = (("hostname", "Host"), ("cpu", "CPU"), ("cpu_cores", "CPU cores"), ("gpu", "GPU"),
            ("driver", "GPU driver"), ("device", "Device"))
SOFTWARE = (("python", "Python"), ("torch", "torch"), ("transformers", "transformers"), ("nrg", "nrg"),
            ("git_sha", "git SHA"))
METER = (("energy_method", "Energy method"), ("energy_source", "Energy source"))
_EMPTY = ("", "none", "nan", "None", "<NA>")


def _distinct(series: pd.Series) -> list[str]:
    values = [str(v) for v in series.dropna().unique()]
    return sorted(v for v in values if v not in _EMPTY)


def _counted(series: pd.Series) -> str:
    counts = series.dropna().astype(str).value_counts()
    return "; ".join(f"{k} ({v} rows)" for k, v in counts.items())


def cell_precision(df: pd.DataFrame) -> pd.DataFrame:
    """Repeats and relative 95% CI half-width per cell and phase.

    Uses ``repeats_n`` / ``ci_rel_halfwidth`` as the runner recorded them;
    without them, counts the repeats and leaves the half-width empty.
    """
    data = ok_rows(df)
    keys = [c for c in ("cell_id", "phase") if c in data.columns]
    if not keys:
        return pd.DataFrame(columns=["repeats_n", "ci_rel_halfwidth"])
    grouped = data.groupby(keys, observed=True, sort=True)
    repeats = grouped["repeats_n"].max() if "repeats_n" in data.columns else grouped.size()
    out = repeats.rename("repeats_n").to_frame()
    out["ci_rel_halfwidth"] = grouped["ci_rel_halfwidth"].max() if "ci_rel_halfwidth" in data.columns else float("nan")
    return out.reset_index()


def provenance_notes(df: pd.DataFrame) -> list[str]:
    """Sentences a reader must see, e.g. that CPU energy here is estimated."""
    notes = []
    if "energy_method" in df.columns:
        estimated = df[df["energy_method"].astype("string") == "estimated"]
        if not estimated.empty:
            hosts = _distinct(estimated["hostname"]) if "hostname" in df.columns else []
            gpus = _distinct(estimated["gpu"]) if "gpu" in df.columns else []
            what = "Energy" if gpus else "CPU energy"
            where = "this machine" if len(hosts) <= 1 else ", ".join(hosts)
            share = len(estimated) / len(df)
            notes.append(f"{what} on {where} is estimated, not measured ({share:.0%} of rows): no energy "
                         "counter was available, so each joule is time × a rated power, and a difference "
                         "in energy between configurations is a difference in time, not a measured one.")
    if "status" in df.columns:
        failed = df[df["status"].astype("string").fillna("ok") != "ok"]
        if not failed.empty:
            notes.append(f"{len(failed)} row(s) did not complete ({_counted(failed['status'])}) and are "
                         "left out of every analysis.")
    return notes


def _range_text(values: pd.Series, percent: bool = False) -> str | None:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return None
    fmt = (lambda x: f"{x:.1%}") if percent else (lambda x: f"{x:g}")
    if v.min() == v.max():
        return fmt(v.min())
    return f"{fmt(v.min())}–{fmt(v.max())} (median {fmt(v.median())})"


def provenance_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Two columns, ``item`` and ``value``: what produced these results.

    Distinct hardware, energy method and source (with row counts), software
    versions, repeats per cell and the relative 95% CI half-width per cell,
    then the notes of :func:`provenance_notes`. Columns absent from the data
    are skipped, so a partial table still gives a footer.
    """
    rows: list[tuple[str, str]] = []
    for column, name in HARDWARE + SOFTWARE:
        if column in df.columns and _distinct(df[column]):
            rows.append((name, ", ".join(_distinct(df[column]))))
    for column, name in METER:
        if column in df.columns and df[column].notna().any():
            rows.append((name, _counted(df[column])))
    precision = cell_precision(df)
    if not precision.empty:
        repeats = _range_text(precision["repeats_n"])
        if repeats:
            rows.append(("Repeats per cell", repeats))
        halfwidth = _range_text(precision["ci_rel_halfwidth"], percent=True)
        if halfwidth:
            rows.append(("95% CI half-width (relative to the mean)", halfwidth))
    if "started_at" in df.columns and df["started_at"].notna().any():
        started = df["started_at"].dropna().astype(str)
        rows.append(("Run started", f"{started.min()} – {started.max()}" if started.nunique() > 1 else started.iloc[0]))
    rows += [("Note", note) for note in provenance_notes(df)]
    return pd.DataFrame(rows, columns=["item", "value"])
