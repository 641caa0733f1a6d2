"""Names that tell the truth: what a measured model really was, in one label used everywhere.

Why: a CPU run measures "t5-3b" truncated to 2 of its 24 layers with random
weights (268 M parameters, not 3 B); shown as "t5-3b" a reader concludes T5-3B
costs what GPT-2 costs. :func:`model_label` writes what differs from the
published model into the name -- ``t5-3b [2/24 layers, random]`` -- from the
columns every row carries (``model, weights, layers, tiny, quant, prune``)
and the registry's full depth; :func:`with_model_labels` puts it in the
``model`` column so that every figure, table and sentence made from the rows
shows it, and adds ``params`` (the loaded model's parameter count, in words)
for per-model tables.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import pandas as pd

from nrg.stats._data import estimated, is_energy

_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
_NONE = ("", "none", "nan", "None", "<NA>", "float32", "fp32")


@functools.lru_cache(maxsize=64)
def full_layers(model: str) -> int | None:
    """The published model's depth from the registry's shipped config; None when unknown."""
    from nrg.models.registry import resolve

    try:
        info = resolve(str(model)).info
        config = info.config_dict() if info is not None else {}
    except Exception:   # unknown name, folder or hub id without a shipped config: depth unknown
        return None
    for key in _LAYER_KEYS:
        if isinstance(config.get(key), int):
            return int(config[key])
    return None


def _given(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    try:
        if pd.isna(value):
            return False
    except (TypeError, ValueError):
        pass
    return str(value) not in _NONE


def params_text(n_params: Any) -> str:
    """A parameter count in words: 268_000_000 -> "268 M", 1_500_000_000 -> "1.5 B"; "" when unknown."""
    if not _given(n_params):
        return ""
    n = float(n_params)
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g} {suffix}"
    return f"{n:.0f}"


def model_label(row: Mapping[str, Any] | Mapping[Hashable, Any], with_params: bool = True) -> str:
    """The model's name, with what differs from the published model in brackets.

    ``t5-3b [2/24 layers, random]``, ``gpt2 [tiny widths, random]``,
    ``minilm-l6 [int8-dynamic, pruned 2:4]``; the bare name when the row is
    the published model (full depth, real weights, no compression). With
    ``with_params`` the loaded parameter count closes the brackets
    (``t5-3b [2/24 layers, random, 268 M params]``), so a per-model table
    shows it wherever the label is its index.
    """
    name = str(row.get("model", ""))
    notes = []
    layers = row.get("layers")
    if layers is not None and _given(layers):
        depth, full = int(layers), full_layers(name)
        if full is None or depth < full:
            notes.append(f"{depth}/{full} layers" if full else f"{depth} layers")
    if _given(row.get("tiny")) and bool(row.get("tiny")):
        notes.append("tiny widths")
    weights = row.get("weights")
    if _given(weights) and str(weights) != "real":
        notes.append(str(weights))
    if _given(row.get("quant")):
        notes.append(str(row["quant"]))
    if _given(row.get("prune")):
        notes.append(f"pruned {row['prune']}")
    if with_params and params_text(row.get("n_params")):
        notes.append(f"{params_text(row.get('n_params'))} params")
    return f"{name} [{', '.join(notes)}]" if notes else name


def with_model_labels(rows: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``rows`` whose ``model`` is :func:`model_label` and whose ``params`` is the parameter count.

    The published name stays in ``model_name``. Rows without a ``model``
    column come back unchanged; labelling twice changes nothing.
    """
    if "model" not in rows.columns or rows.empty or "model_name" in rows.columns:
        return rows
    out = rows.copy()
    out["model_name"] = out["model"]
    out["model"] = [model_label(r) for r in out.to_dict("records")]
    if "n_params" in out.columns:
        out["params"] = out["n_params"].map(params_text)
    return out


def model_columns(table: pd.DataFrame, rows: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """``table`` with the truthful model label and parameter count of each ``keys`` combination, after the keys.

    Why: every per-model table of the book names the model as it ran
    (``minilm-l6 [2/6 layers, nf4, pruned 2:4, 22.7 M params]``, :mod:`nrg.book.labels`)
    and its parameter count; a table per configuration (chapter 4's quant x prune)
    gets its model's label and count for each configuration, from ``rows``.
    """
    labelled = with_model_labels(rows)
    keys = [k for k in keys if k in table.columns and k in labelled.columns]
    if "model" not in labelled.columns or labelled.empty or not keys:
        return table
    extra = ["model"] + (["params"] if "params" in labelled.columns else [])
    names = (labelled.assign(**{k: labelled[k].astype("string").fillna("none") for k in keys})
             .groupby(keys, sort=False)[extra].first().reset_index())
    base = table.drop(columns=[c for c in extra if c in table.columns])
    merged = base.assign(**{k: base[k].astype("string").fillna("none") for k in keys}).merge(names, on=keys, how="left")
    merged[keys] = base[keys].to_numpy()
    last_key = max(list(base.columns).index(k) for k in keys)
    first = list(base.columns[: last_key + 1])           # the table's own leading columns, keys included
    ordered = merged[first + extra + [c for c in merged.columns if c not in first and c not in extra]]
    ordered.attrs.update(table.attrs)
    return ordered


def model_params(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (labelled) model: its label and parameter count, for a per-model table."""
    labelled = with_model_labels(rows)
    columns = [c for c in ("model", "params") if c in labelled.columns]
    return labelled[columns].drop_duplicates().reset_index(drop=True)


# ------------------------------------------------------------------ estimated energy

def energy_axis_label(column: str, rows: pd.DataFrame | None) -> str:
    """The axis label of ``column`` (unit in brackets), opened by "Estimated" when its energy is estimated."""
    from nrg.stats._data import axis_label

    text = axis_label(column)
    if is_energy(column) and estimated(rows):
        return "Estimated " + text[:1].lower() + text[1:]
    return text


def estimated_header(column: str, rows: pd.DataFrame | None) -> str:
    """A table header: ``column`` plus " (estimated)" when it holds estimated energy."""
    return f"{column} (estimated)" if is_energy(column) and estimated(rows) else str(column)


def mark_estimated(table: pd.DataFrame, rows: pd.DataFrame | None) -> pd.DataFrame:
    """``table`` with every energy column's header marked "(estimated)" when ``rows``' energy is estimated."""
    if not estimated(rows):
        return table
    return table.rename(columns={c: estimated_header(str(c), rows) for c in table.columns if is_energy(str(c))})
