"""The book's figures, drawn from the same tables the statistics use.

Every function returns a :class:`matplotlib.figure.Figure` built without
pyplot: nothing global changes, nothing is shown twice in a notebook (the
returned figure is the cell's output), and tests need no display. Pass ``ax``
to draw into an existing axes instead. Axis labels carry units (J/token, s,
W, MHz). :func:`set_theme` is the only function with a global effect.

Each figure keeps the tidy table it was drawn from (:func:`figure_data`), so
the book can publish that table beside the page (``nrg.book.publish``).
"""
from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nrg.book.labels import energy_axis_label
from nrg.errors import ParameterError
from nrg.stats._data import as_list, axis_label, is_energy, label, ok_rows, require_columns
from nrg.stats.anova_result import AnovaResult
from nrg.stats.clocks import clock_key
from nrg.stats.rank import pareto_mask
from nrg.stats.regress import LengthFit, fit_lengths
from nrg.stats.summary import summarize

_DATA: weakref.WeakKeyDictionary[Figure, list[tuple[Axes, pd.DataFrame, str]]] = weakref.WeakKeyDictionary()


def _keep(ax: Axes, data: pd.DataFrame, name: str) -> Figure:
    """Remember ``data`` as what ``ax`` shows, and return the figure (see :func:`figure_data`)."""
    figure = _figure(ax)
    _DATA.setdefault(figure, []).append((ax, data.reset_index(drop=True), name))
    return figure


def figure_data(figure: Figure) -> tuple[pd.DataFrame, str] | None:
    """The tidy table behind ``figure`` and a short name for it; None for a figure not drawn here.

    A figure with several panels (axes drawn into by several functions) gets
    one table with a ``panel`` column holding each panel's title.
    """
    parts = _DATA.get(figure)
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0][1], parts[0][2]
    frames = [data.assign(panel=ax.get_title() or f"panel {i + 1}") for i, (ax, data, _) in enumerate(parts)]
    return pd.concat(frames, ignore_index=True), "-".join(dict.fromkeys(name for _, _, name in parts))


def set_theme(context: str = "notebook", style: str = "whitegrid") -> None:
    """Apply the book's seaborn theme (global matplotlib settings; call once per notebook)."""
    import warnings

    import seaborn as sns

    sns.set_theme(context=context, style=style)
    # At the "talk" scale a crowded multi-panel figure can leave constrained layout no room; the figure
    # still draws (with less padding), so the page shows it without matplotlib's layout warning text.
    warnings.filterwarnings("ignore", message="constrained_layout not applied", category=UserWarning)


def _axes(ax: Axes | None, figsize: tuple[float, float] = (7.0, 4.5)) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=figsize, layout="constrained").subplots()


def _figure(ax: Axes) -> Figure:
    """The top-level figure holding ``ax`` (a subfigure cannot be shown or saved on its own)."""
    figure = ax.get_figure(root=True)
    if figure is None:
        raise ParameterError("ax is not part of a figure; pass axes made by Figure.subplots")
    return figure


def _tick(value: object, width: int = 16) -> str:
    """A tick label wrapped on its words (model labels such as "t5-3b [2/24 layers, random, 268 M params]")."""
    import textwrap

    return "\n".join(textwrap.wrap(str(value), width)) or str(value)


def bar_by_group(df: pd.DataFrame, measure: str = "energy_per_token_j", x: str = "model",
                 hue: str | None = "task", confidence: float = 0.95, ax: Axes | None = None) -> Figure:
    """Mean of ``measure`` per ``x`` (bars grouped by ``hue``) with t-interval error bars."""
    stats = summarize(df, [x, *as_list(hue)], measure, confidence)
    ax = _axes(ax)
    xs = list(dict.fromkeys(stats[x]))
    hues = list(dict.fromkeys(stats[hue])) if hue else [None]
    width = 0.8 / len(hues)
    for i, h in enumerate(hues):
        part = stats if h is None else stats[stats[hue] == h]
        pos = [xs.index(v) for v in part[x]]
        offsets = np.array(pos) - 0.4 + width * (i + 0.5)
        ax.bar(offsets, part["mean"], width, yerr=part["ci_halfwidth"].fillna(0), capsize=3,
               label=None if h is None else str(h))
    ax.set_xticks(range(len(xs)), [_tick(v) for v in xs])
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(energy_axis_label(measure, df))
    if hue:
        ax.legend(title=axis_label(hue))
    ax.set_title(f"Mean with {confidence:.0%} CI")
    return _keep(ax, stats, f"{measure}-by-{x}")


def lines_vs_length(df: pd.DataFrame, response: str = "energy_j", length: str = "input_tokens",
                    hue: str | None = "model", fit: bool = True, lengths: Sequence[str] = ("input_tokens", "output_tokens"),
                    ax: Axes | None = None) -> Figure:
    """Means (with CI) of ``response`` against one length, and the OLS fitted line.

    The line is the fit on both lengths, evaluated with the other length held
    at its mean in the data, so it passes through the marginal means.
    """
    if length not in lengths:
        raise ParameterError(f"length={length!r} is not valid; choose one of: {list(lengths)}")
    ax = _axes(ax)
    data = ok_rows(df)
    groups = data.groupby(hue, observed=True, sort=True) if hue else [(None, data)]
    drawn = []
    for key, part in groups:
        stats = summarize(part, length, response)
        drawn.append(stats if hue is None else stats.assign(**{hue: key}))
        line = ax.errorbar(stats[length], stats["mean"], yerr=stats["ci_halfwidth"].fillna(0), fmt="o",
                           capsize=3, label=None if key is None else str(key))
        if fit and part[length].nunique() > 1:
            model = fit_lengths(part, response, lengths)
            grid = pd.DataFrame({c: np.full(50, part[c].mean()) for c in lengths if c in part.columns})
            grid[length] = np.linspace(part[length].min(), part[length].max(), 50)
            ax.plot(grid[length], model.predict(grid), "-", color=line[0].get_color(), alpha=0.8)
    ax.set_xlabel(axis_label(length))
    ax.set_ylabel(energy_axis_label(response, data))
    if hue:
        ax.legend(title=axis_label(hue))
    return _keep(ax, pd.concat(drawn, ignore_index=True) if drawn else data[[]], f"{response}-vs-{length}")


def phase_share_bars(shares: pd.DataFrame, measure: str = "time_s", ax: Axes | None = None) -> Figure:
    """Stacked prefill / decode shares per cell, from :func:`nrg.stats.phase_share`."""
    require_columns(shares, ["measure", "prefill_share", "decode_share"], "shares")
    part = shares[shares["measure"] == measure]
    if part.empty:
        raise ParameterError(f"measure={measure!r} is not in the shares; measures: {sorted(shares['measure'].unique())}")
    by = list(shares.columns[: list(shares.columns).index("measure")])
    labels = [" / ".join(str(v) for v in row) for row in part[by].itertuples(index=False)]
    ax = _axes(ax, (max(6.0, 0.45 * len(labels) + 2), 4.5))
    pos = np.arange(len(labels))
    ax.bar(pos, part["prefill_share"] * 100, label="prefill")
    ax.bar(pos, part["decode_share"] * 100, bottom=part["prefill_share"] * 100, label="decode")
    ax.set_xticks(pos, labels, rotation=60, ha="right")
    ax.set_xlabel(" / ".join(axis_label(c) for c in by))
    what = ("estimated " if shares.attrs.get("energy_estimated") and is_energy(measure) else "") + label(measure)
    ax.set_ylabel(f"Share of {what} (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    return _keep(ax, part, f"{measure}-phase-shares")


def metric_vs_clock(df: pd.DataFrame, metric: str = "energy_j", clock: str = "gpu_clock_mhz",
                    hue: str | None = "model", optimal: pd.DataFrame | None = None,
                    ax: Axes | None = None) -> Figure:
    """Mean ``metric`` (with CI) per clock, one line per ``hue``; optimal clocks starred.

    ``optimal`` is the table of :func:`nrg.stats.optimal_clocks`; its
    ``optimal_clock_mhz`` per ``hue`` group is marked with a star.
    """
    data = ok_rows(df).assign(_clock=lambda d: clock_key(d[clock])).dropna(subset=["_clock"])
    if metric in ("edp_j_s", "ed2p_j_s2") and metric not in data.columns:
        from nrg.stats.clocks import add_edp

        data = add_edp(data)
    ax = _axes(ax)
    groups = data.groupby(hue, observed=True, sort=True) if hue else [(None, data)]
    drawn = []
    for key, part in groups:
        stats = summarize(part, "_clock", metric)
        drawn.append(stats.rename(columns={"_clock": clock}).assign(**({hue: key} if hue else {})))
        line = ax.errorbar(stats["_clock"], stats["mean"], yerr=stats["ci_halfwidth"].fillna(0), fmt="-o",
                           capsize=3, label=None if key is None else str(key))
        if optimal is not None:
            rows = optimal if key is None else optimal[optimal[hue] == key]
            for best in rows["optimal_clock_mhz"]:
                y = stats.loc[stats["_clock"] == best, "mean"]
                ax.plot([best], y, marker="*", markersize=16, color=line[0].get_color(), markeredgecolor="black")
    ax.set_xlabel(axis_label(clock))
    ax.set_ylabel(energy_axis_label(metric, data))
    if hue and ax.get_legend_handles_labels()[0]:   # no labelled line: no legend (and no UserWarning)
        ax.legend(title=axis_label(hue))
    if optimal is not None:
        ax.set_title("★ optimal clock")
    return _keep(ax, pd.concat(drawn, ignore_index=True) if drawn else data[[]], f"{metric}-vs-{clock}")


def energy_quality_scatter(df: pd.DataFrame, energy: str = "energy_mean", quality: str = "quality_mean",
                           annotate: str | Sequence[str] | None = ("quant", "prune_method"),
                           energy_label: str = "Energy (J)", quality_label: str = "Task score",
                           ax: Axes | None = None) -> Figure:
    """Configurations as points, the Pareto front (low energy, high quality) highlighted."""
    require_columns(df, [energy, quality], "energy/quality")
    ax = _axes(ax)
    mask = pareto_mask(df[energy], df[quality])
    ax.scatter(df.loc[~mask, energy], df.loc[~mask, quality], color="grey", label="dominated")
    front = df[mask].sort_values(energy)
    ax.scatter(front[energy], front[quality], color="C3", zorder=3, label="Pareto front")
    ax.step(front[energy], front[quality], where="post", color="C3", alpha=0.6)
    names = [c for c in as_list(annotate) if c in df.columns]
    for _, row in df.iterrows():
        if names:
            ax.annotate(" / ".join(str(row[c]) for c in names), (row[energy], row[quality]),
                        textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(energy_label)
    ax.set_ylabel(quality_label)
    ax.legend()
    return _keep(ax, df.assign(pareto=mask), "energy-vs-quality")


def residual_diagnostics(result: AnovaResult | LengthFit) -> Figure:
    """QQ plot of the residuals and residuals against fitted values."""
    from scipy import stats as sps

    if result.fit is None:
        raise ParameterError("result has no fitted model (nothing varied); no residuals to plot")
    resid = np.asarray(result.fit.resid, dtype=float)
    fitted = np.asarray(result.fit.fittedvalues, dtype=float)
    fig = Figure(figsize=(10, 4), layout="constrained")
    qq, rvf = fig.subplots(1, 2)
    (theory, ordered), (slope, intercept, _) = sps.probplot(resid, dist="norm")
    qq.plot(theory, ordered, "o", alpha=0.7)
    qq.plot(theory, slope * np.asarray(theory) + intercept, "-", color="C3")
    qq.set_xlabel("Theoretical normal quantiles")
    qq.set_ylabel("Ordered residuals")
    qq.set_title("Normal QQ plot")
    rvf.scatter(fitted, resid, alpha=0.7)
    rvf.axhline(0, color="C3")
    name = axis_label(result.response)
    rvf.set_xlabel(f"Fitted {name[:1].lower()}{name[1:]}")
    rvf.set_ylabel("Residual")
    rvf.set_title("Residuals vs fitted")
    return _keep(qq, pd.DataFrame({"fitted": fitted, "residual": resid}), f"{result.response}-residuals")


def quant_prune_heatmap(df: pd.DataFrame, value: str = "energy_j", rows: str = "quant",
                        cols: str = "prune_method", fmt: str = ".3g", ax: Axes | None = None) -> Figure:
    """Mean ``value`` for each quantization × pruning combination, annotated."""
    import seaborn as sns

    require_columns(df, [value, rows, cols], "value/rows/cols")
    data = ok_rows(df)
    data = data.assign(**{c: data[c].astype("string").fillna("none") for c in (rows, cols)})
    table = data.pivot_table(index=rows, columns=cols, values=value, aggfunc="mean", observed=True)
    ax = _axes(ax, (6.5, 4.5))
    sns.heatmap(table, annot=True, fmt=fmt, cmap="viridis", ax=ax, cbar_kws={"label": energy_axis_label(value, data)})
    ax.set_xlabel(axis_label(cols))
    ax.set_ylabel(axis_label(rows))
    stacked = cast("pd.Series", table.stack())   # one level of columns: stack gives a Series
    return _keep(ax, stacked.rename(value).reset_index(), f"{value}-by-{rows}-{cols}")
