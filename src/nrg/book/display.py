"""How a chapter's tables and figures appear on the page: readable numbers, units, data links.

A raw DataFrame in a page shows six decimals, an index column of row numbers
and snake_case names whose unit a reader must guess. :func:`table` shows the
same data with three significant figures, units in the headers ("Energy (J)")
and no row numbers. :func:`install` makes a notebook kernel do this for every
DataFrame a cell shows, and put the link to the data behind each table and
figure (:mod:`nrg.book.publish`) right under it -- so the chapters'
cells stay as they are: ``df`` or ``plots.bar_by_group(...)`` as the last line.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from nrg.book import publish

if TYPE_CHECKING:
    import pandas as pd
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import HTML, Markdown
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
    return {c: (s if shown.count(s) == 1 else c) for c, s in zip(names, shown, strict=True)}


def table(df: pd.DataFrame) -> Styler:
    """``df`` for the page: units in the headers, three significant figures, no row numbers.

    A meaningful index (a pivot table's rows) becomes ordinary columns; a
    ``measure`` column of measure names (long summaries) reads as their labels.
    """
    from nrg.stats._data import estimated, is_energy

    flat = publish.tidy(df)
    mark = bool(df.attrs.get("energy_estimated")) or estimated(df)   # estimated energy says so (nrg.book.labels)
    # columns whose name does not say energy but whose values are (a fit's estimate, its CI): attrs name them
    fitted = {str(c) for c in df.attrs.get("energy_columns", ())}
    if "measure" in flat.columns:
        flat["measure"] = [_estimated(header(v), mark and is_energy(v)) if isinstance(v, str) else v
                           for v in flat["measure"]]
    flat = flat.rename(columns={c: _estimated(h, mark and (is_energy(c) or c in fitted))
                                for c, h in _headers(flat.columns).items()})
    styler = flat.style.format(number).hide(axis="index")
    return styler.set_table_attributes('class="dataframe nrg-table"')


def _estimated(text: str, mark: bool) -> str:
    """``text`` said to be estimated: "Estimated energy (J)", "Fitted estimated energy (J)", "CI low of estimated energy (J)"."""
    if not mark:
        return text
    text = text.replace(" (estimated)", "")      # a header already marked by nrg.book.labels.mark_estimated: once
    name, _, unit = text.partition(" (")
    unit = f" ({unit}" if unit else ""
    if name.startswith("Estimate"):         # a fitted coefficient, not the word "estimated"
        return f"Fitted estimated energy{name[len('Estimate'):]}{unit}"
    if name.startswith("CI "):
        return f"{name} of estimated energy{unit}"
    acronym = len(text) > 1 and not text[1].islower()      # "CO₂e", "GPU energy" keep their capitals
    return f"Estimated {text if acronym else text[:1].lower() + text[1:]}"


def findings_block(sentences: Iterable[str], title: str = "What this chapter found") -> Markdown:
    """The findings as a MyST admonition (Markdown output): the box at the top of a chapter."""
    from IPython.display import Markdown

    items = [s for s in sentences if s]
    body = "\n".join(f"- {s}" for s in items) or "- Nothing was measured, so there is nothing to report."
    return Markdown(f":::{{admonition}} {title}\n:class: tip\n\n{body}\n:::\n")


#: Tables with more rows than this fold behind a one-line summary (the answer stays near the top).
LONG_ROWS = 12


def fold(html: str, summary: str) -> str:
    """``html`` folded behind a one-line ``summary`` (a ``<details>`` box a reader opens on demand).

    Long tables (ANOVA, Tukey, carbon, sample tickets) would push every later
    section thousands of pixels down; folded, the page reads as its headings,
    findings and figures, and each table is one click away.
    """
    import html as html_lib

    return (f'<details class="nrg-fold"><summary>{html_lib.escape(summary)}</summary>\n'
            f"{html}\n</details>")


def folded(obj: Any, summary: str) -> HTML:
    """``obj`` (DataFrame, Styler or anything with ``_repr_html_``) as a folded HTML output."""
    from IPython.display import HTML

    if _kind(obj) == "frame":
        html = table(_verdict_first(obj)).to_html()
    elif _kind(obj) == "styler":
        html = obj.to_html()
    else:
        html = obj._repr_html_()
    return HTML(fold(html, summary))


def _verdict_first(df: pd.DataFrame) -> pd.DataFrame:
    """Verdict columns right after the first column, so a reader sees them without scrolling sideways."""
    columns = [str(c) for c in df.columns]
    verdicts = [c for c in df.columns if "verdict" in str(c).lower()]
    if not verdicts or len(columns) < 3:
        return df
    rest = [c for c in df.columns if c not in verdicts]
    return df[[rest[0], *verdicts, *rest[1:]]]


def rows_summary(df: pd.DataFrame, what: str = "Table") -> str:
    """"Table: 24 rows × 5 columns (model, task, ...) — show": the line a folded table shows."""
    names = [header(c) or "Item" for c in publish.tidy(df).columns]
    shown = ", ".join(names[:4]) + (", …" if len(names) > 4 else "")
    return f"{what}: {df.shape[0]} rows × {len(names)} columns ({shown}) — click to show"


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
        return cast("tuple[dict[str, Any], dict[str, Any]]", formatter.format(obj))
    finally:
        hook.enabled = True


def show_frame(df: pd.DataFrame, name: str | None = None) -> None:
    """Show a DataFrame as :func:`table` and link its data."""
    if df.shape[0] == 0:
        _publish({"text/markdown": "*Empty table: no rows.*", "text/plain": "Empty table: no rows."})
        return
    html = table(_verdict_first(df)).to_html()
    if df.shape[0] > LONG_ROWS:
        html = fold(html, rows_summary(df))
    _publish({"text/html": html, "text/plain": df.to_string()})
    _link(df, name, "table")


def show_figure(figure: Any, data: pd.DataFrame | None = None, name: str | None = None,
                shell: Any = None) -> None:
    """Show a figure as the notebook would, then link the table it was drawn from.

    ``data`` defaults to what :mod:`nrg.book.plots` recorded for the figure.
    """
    from nrg.book.plots import figure_data

    if data is None:
        kept = figure_data(figure)
        data, name = (kept if kept is not None else (None, name))
    if is_empty_figure(figure, data):
        _publish({"text/markdown": "*No figure: there is nothing to plot for this data.*",
                  "text/plain": "No figure: there is nothing to plot for this data."})
        return
    shell = shell or _shell()
    if shell is not None:
        _publish(*_formats(shell, figure))
    _link(data, name, "figure")


def is_empty_figure(figure: Any, data: pd.DataFrame | None = None) -> bool:
    """True when no panel of ``figure`` draws anything (or the table it was drawn from has no rows).

    An empty frame of axes tells a reader nothing and looks like a failure; the
    page says in one line that there is nothing to plot instead.
    """
    if data is not None and data.shape[0] == 0:
        return True
    drawn = 0
    for ax in figure.get_axes():
        if not ax.get_visible():
            continue
        drawn += len(ax.lines) + len(ax.collections) + len(ax.patches) + len(ax.images)
    return drawn == 0


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

    from nrg.book.carbon import PageTable
    from nrg.stats.anova_result import AnovaResult
    from nrg.stats.rank import RankResult

    for cls, kind in ((Figure, "figure"), (DataFrame, "frame"), (Styler, "styler"),
                      (AnovaResult, "anova"), (RankResult, "rank"), (PageTable, "carbon")):
        if isinstance(obj, cls):
            return kind
    return ""


def show_rank(result: Any, name: str | None = "ranking") -> None:
    """Show a :class:`nrg.stats.RankResult` as :func:`table` (its notes under it) and link its data."""
    import html

    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    head = f"<p>Ranking R = w·φ + (1−w)·ρ with w = {result.w:g}</p>"
    shown = result.table.copy()
    shown.attrs["energy_estimated"] = bool(getattr(result, "energy_estimated", False))   # "Estimated energy mean"
    body = head + table(shown).to_html() + (f"<ul>{notes}</ul>" if notes else "")
    _publish({"text/html": body, "text/plain": result.table.to_string()})
    _link(result.table, name, "table")


def _as_is(obj: Any, data: pd.DataFrame, name: str | None, summary: str | None = None) -> None:
    """Show ``obj`` as it shows itself (folded behind ``summary`` when given), then link ``data``."""
    shell = _shell()
    if shell is not None:
        formats, metadata = _formats(shell, obj)
        if summary and "text/html" in formats:
            formats = {**formats, "text/html": fold(formats["text/html"], summary)}
        _publish(formats, metadata)
    _link(data, name, "table")


def anova_summary(result: Any) -> str:
    """The one line a folded ANOVA shows: what was analysed and which tables are inside (no verdict)."""
    from nrg.stats import label

    inside = ["ANOVA table"]
    if getattr(result, "robust_table", None) is not None:
        inside.append("robust (HC3) table")
    if getattr(result, "log_table", None) is not None:
        inside.append("log-scale table")
    if getattr(result, "tukey", None):
        inside.append("Tukey HSD")
    factors = " × ".join(str(f).replace("_", " ") for f in result.factors)
    return (f"ANOVA of {label(result.response)} on {factors} (n = {result.n_obs}): "
            f"{', '.join(inside)} — click to show")


def _styler_summary(obj: Any) -> str | None:
    return rows_summary(obj.data) if obj.data.shape[0] > LONG_ROWS else None


def show_carbon(page_table: Any, name: str | None = "carbon") -> None:
    """A carbon table: its assumptions once, then energy, CO₂e and cost (folded when long).

    The data link carries the full table, with every provenance column.
    """
    _publish({"text/markdown": page_table.assumptions(), "text/plain": page_table.assumptions()})
    visible = page_table.visible()
    if visible.shape[0] == 0:
        return
    html = table(visible).to_html()
    if visible.shape[0] > CARBON_ROWS:
        html = fold(html, f"CO₂e and cost of {visible.shape[0]} rows (energy, CO₂e, cost) — click to show")
    _publish({"text/html": html, "text/plain": visible.to_string()})
    _link(page_table.frame, name, "table")


#: Carbon tables fold above this many rows (their numbers repeat the energy tables above them).
CARBON_ROWS = 6


def _handlers() -> dict[str, Callable[[Any, str | None], None]]:
    return {
        "carbon": lambda obj, name: show_carbon(obj, name or "carbon"),
        "figure": lambda obj, name: show_figure(obj, name=name),
        "frame": show_frame,
        "styler": lambda obj, name: _as_is(obj, obj.data, name, _styler_summary(obj)),
        "anova": lambda obj, name: _as_is(obj, obj.table, name or f"anova-{obj.response}", anova_summary(obj)),
        "rank": lambda obj, name: show_rank(obj, name or "ranking"),
    }


def _shell() -> InteractiveShell | None:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell: InteractiveShell | None = get_ipython()
    return shell


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

    from nrg.book.carbon import PageTable
    from nrg.stats.anova_result import AnovaResult
    from nrg.stats.rank import RankResult

    hook = shell.display_formatter.ipython_display_formatter
    for cls in (Figure, DataFrame, Styler, AnovaResult, RankResult, PageTable):
        hook.for_type(cls, show)
    return True
