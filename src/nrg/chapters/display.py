"""How a chapter's tables and figures appear on the page: readable numbers, units, data links.

A raw DataFrame in a page shows six decimals, an index column of row numbers
and snake_case names whose unit a reader must guess. :func:`table` shows the
same data with three significant figures, units in the headers ("Energy (J)")
and no row numbers. :func:`install` makes a notebook kernel do this for every
DataFrame a cell shows, and put the link to the data behind each table and
figure (:mod:`nrg.chapters.publish`) right under it -- so the chapters'
cells stay as they are: ``df`` or ``plots.bar_by_group(...)`` as the last line.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from nrg.chapters import publish

if TYPE_CHECKING:
    import pandas as pd
    from pandas.io.formats.style import Styler

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")

#: Names and units of columns that the measure table (``nrg.stats.LABELS``) does not know.
EXTRA_LABELS: dict[str, tuple[str, str]] = {
    "gco2e": ("CO₂e", "g"),
    "cost_usd": ("cost", "USD"),
    "grid_gco2e_per_kwh": ("grid intensity", "gCO₂e/kWh"),
    "price_usd_per_kwh": ("electricity price", "USD/kWh"),
    "pue": ("PUE", ""),
    "n": ("n", ""),
    "eta_sq": ("η²", ""),
    "partial_eta_sq": ("partial η²", ""),
    "omega_sq": ("ω²", ""),
    "ci_halfwidth": ("CI half-width", ""),
    "ci_low": ("CI low", ""),
    "ci_high": ("CI high", ""),
    "p": ("p", ""),
    "r2": ("R²", ""),
}

#: Unit suffixes of the project's column names, longest first.
SUFFIX_UNITS: tuple[tuple[str, str], ...] = (
    ("_per_token_j", "J/token"), ("_j_s2", "J·s²"), ("_j_s", "J·s"), ("_j", "J"), ("_s", "s"),
    ("_w", "W"), ("_mhz", "MHz"), ("_khz", "kHz"), ("_bytes", "bytes"), ("_usd", "USD"),
    ("_pct", "%"), ("_per_s", "1/s"),
)


STAT_SUFFIXES: tuple[str, ...] = ("_mean", "_median", "_std", "_sem", "_min", "_max")


def _name_unit(text: str) -> tuple[str, str]:
    """A column's plain name and unit: the label tables first, then the unit suffix of its name."""
    from nrg.stats._data import LABELS

    name, unit = LABELS.get(text) or EXTRA_LABELS.get(text) or ("", "")
    if name:
        return name, unit
    name = text
    for suffix, suffix_unit in SUFFIX_UNITS:
        if text.endswith(suffix) and len(text) > len(suffix):
            name, unit = text[: -len(suffix)], suffix_unit
            break
    name = name.replace("_", " ")
    return ("CI " + name[3:] if name.startswith("ci ") else name), unit


def header(column: Any) -> str:
    """A column's header with its unit: ``energy_per_token_j`` -> "Energy per token (J/token)".

    A statistic after the name keeps the unit at the end: ``energy_j mean`` and
    ``energy_j_mean`` read "Energy mean (J)".
    """
    text = str(column)
    base, qualifier = text, ""
    if " " in text:
        base, qualifier = text.split(" ", 1)
    else:
        stat = next((s for s in STAT_SUFFIXES if text.endswith(s) and len(text) > len(s)), "")
        if stat and _name_unit(text[: -len(stat)])[1]:
            base, qualifier = text[: -len(stat)], stat[1:]
    name, unit = _name_unit(base)
    if qualifier and not unit:
        name, unit = _name_unit(text)
        qualifier = ""
    name = f"{name} {qualifier}".strip()
    name = name[:1].upper() + name[1:]
    return f"{name} ({unit})" if unit else name


def sig3(value: float) -> str:
    """Three significant figures: 0.0123, 1.23, 123, 12,300; tiny or huge values as 1.23×10⁻⁵."""
    if not math.isfinite(value):
        return "n/a"
    value = float(f"{value:.3g}")   # round first: 999.5 is 1,000, not 999
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude < -3 or magnitude >= 9:
        mantissa, exponent = f"{value:.2e}".split("e")
        text = f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"
    elif magnitude >= 3:
        text = f"{round(value, 2 - magnitude):,.0f}"
    else:
        text = f"{value:.3g}"
    return text.replace("-", "−")


def number(value: Any) -> str:
    """A cell's text: floats by :func:`sig3`, NaN and missing values empty, the rest as text."""
    import numbers

    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        value = float(value)
        return "" if math.isnan(value) else sig3(value)
    return str(value)


def _headers(columns: Iterable[Any]) -> dict[str, str]:
    """Original -> display name; a name that would repeat keeps its original spelling."""
    names = [str(c) for c in columns]
    shown = [header(c) for c in names]
    return {c: (s if shown.count(s) == 1 else c) for c, s in zip(names, shown)}


def table(df: pd.DataFrame) -> Styler:
    """``df`` for the page: units in the headers, three significant figures, no row numbers.

    A meaningful index (a pivot table's rows) becomes ordinary columns; a
    ``measure`` column of measure names (long summaries) reads as their labels.
    """
    from nrg.labels import estimated, is_energy

    flat = publish.tidy(df)
    mark = bool(df.attrs.get("energy_estimated")) or estimated(df)   # estimated energy says so (nrg.labels)
    if "measure" in flat.columns:
        flat["measure"] = [_estimated(header(v), mark and is_energy(v)) if isinstance(v, str) else v
                           for v in flat["measure"]]
    flat = flat.rename(columns={c: _estimated(h, mark and is_energy(c)) for c, h in _headers(flat.columns).items()})
    styler = flat.style.format(number).hide(axis="index")
    return styler.set_table_attributes('class="dataframe nrg-table"')


def _estimated(text: str, mark: bool) -> str:
    return f"Estimated {text[:1].lower()}{text[1:]}" if mark else text


def findings_block(sentences: Iterable[str], title: str = "What this chapter found") -> Any:
    """The findings as a MyST admonition (Markdown output): the box at the top of a chapter."""
    from IPython.display import Markdown

    items = [s for s in sentences if s]
    body = "\n".join(f"- {s}" for s in items) or "- Nothing was measured, so there is nothing to report."
    return Markdown(f":::{{admonition}} {title}\n:class: tip\n\n{body}\n:::\n")


# ------------------------------------------------------------ notebook display hooks


def _publish(data: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
    from IPython.display import publish_display_data

    publish_display_data(data, metadata or {})


def _link(data: pd.DataFrame | None, name: str | None, kind: str) -> None:
    """Show the "Data behind this ..." line under the object just shown (when a page is built)."""
    if data is None:
        return
    line = publish.data_link(data, name, kind)
    if line:
        _publish({"text/markdown": line, "text/plain": line})


def _formats(shell: Any, obj: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The object's normal display formats, without going through these hooks again."""
    formatter = shell.display_formatter
    hook = formatter.ipython_display_formatter
    hook.enabled = False
    try:
        return formatter.format(obj)
    finally:
        hook.enabled = True


def show_frame(df: pd.DataFrame, name: str | None = None) -> None:
    """Show a DataFrame as :func:`table` and link its data."""
    if df.shape[0] == 0:
        _publish({"text/markdown": "*Empty table: no rows.*", "text/plain": "Empty table: no rows."})
        return
    _publish({"text/html": table(df).to_html(), "text/plain": df.to_string()})
    _link(df, name, "table")


def show_figure(figure: Any, data: pd.DataFrame | None = None, name: str | None = None,
                shell: Any = None) -> None:
    """Show a figure as the notebook would, then link the table it was drawn from.

    ``data`` defaults to what :mod:`nrg.plots` recorded for the figure.
    """
    from nrg.plots import figure_data

    shell = shell or _shell()
    if shell is not None:
        _publish(*_formats(shell, figure))
    if data is None:
        kept = figure_data(figure)
        data, name = (kept if kept is not None else (None, name))
    _link(data, name, "figure")


def show(obj: Any, name: str | None = None) -> None:
    """Display ``obj`` (figure, DataFrame, Styler, ANOVA or ranking) with the link to its data."""
    handler = _handlers().get(_kind(obj))
    if handler is None:
        from IPython.display import display

        display(obj)
    else:
        handler(obj, name)


def _kind(obj: Any) -> str:
    from matplotlib.figure import Figure
    from pandas import DataFrame
    from pandas.io.formats.style import Styler

    from nrg.stats.anova_result import AnovaResult
    from nrg.stats.rank import RankResult

    for cls, kind in ((Figure, "figure"), (DataFrame, "frame"), (Styler, "styler"),
                      (AnovaResult, "anova"), (RankResult, "rank")):
        if isinstance(obj, cls):
            return kind
    return ""


def show_rank(result: Any, name: str | None = "ranking") -> None:
    """Show a :class:`nrg.stats.RankResult` as :func:`table` (its notes under it) and link its data."""
    import html

    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    head = f"<p>Ranking R = w·φ + (1−w)·ρ with w = {result.w:g}</p>"
    body = head + table(result.table).to_html() + (f"<ul>{notes}</ul>" if notes else "")
    _publish({"text/html": body, "text/plain": result.table.to_string()})
    _link(result.table, name, "table")


def _as_is(obj: Any, data: pd.DataFrame, name: str | None) -> None:
    shell = _shell()
    if shell is not None:
        _publish(*_formats(shell, obj))
    _link(data, name, "table")


def _handlers() -> dict[str, Callable[[Any, str | None], None]]:
    return {
        "figure": lambda obj, name: show_figure(obj, name=name),
        "frame": show_frame,
        "styler": lambda obj, name: _as_is(obj, obj.data, name),
        "anova": lambda obj, name: _as_is(obj, obj.table, name or f"anova-{obj.response}"),
        "rank": lambda obj, name: show_rank(obj, name or "ranking"),
    }


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def install(shell: Any = None) -> bool:
    """Route figures, DataFrames, Stylers, ANOVA and ranking results through :func:`show`.

    Uses IPython's ``ipython_display`` formatter, which lets a type display
    itself: a cell ending in ``df`` (or ``display(fig)``) shows the formatted
    table or the figure, then its data link, in order. Idempotent; returns
    False outside IPython.
    """
    shell = shell or _shell()
    if shell is None:
        return False
    from matplotlib.figure import Figure
    from pandas import DataFrame
    from pandas.io.formats.style import Styler

    from nrg.stats.anova_result import AnovaResult
    from nrg.stats.rank import RankResult

    hook = shell.display_formatter.ipython_display_formatter
    for cls in (Figure, DataFrame, Styler, AnovaResult, RankResult):
        hook.for_type(cls, show)
    return True
