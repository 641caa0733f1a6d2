"""The ANOVA result object and how a notebook shows it.

A notebook cell that ends with the result shows the table (source, sums of
squares, df, F, p, η², partial η², ω²), the assumption checks in words, the
robust table when the checks failed, every note about what was dropped, the
Tukey tables and, when an interaction is significant, the caveat on them and
the simple effects.
"""
from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from nrg.stats.assumptions import AssumptionCheck

TABLE_COLUMNS = ("source", "sum_sq", "df", "F", "p", "eta_sq", "partial_eta_sq", "omega_sq")
RESIDUAL = "Residual"
ROBUST_TITLE = "Robust (HC3) Wald ANOVA, type III, wild-bootstrap p-values"


class SimpleEffects(NamedTuple):
    """Pairwise tests of ``factor`` within each level of ``within``, for a significant ``interaction``."""

    factor: str
    within: tuple[str, ...]
    interaction: str
    p_interaction: float
    table: pd.DataFrame

    @property
    def title(self) -> str:
        """"Simple effects of model within each task (Tukey per task)"."""
        others = " × ".join(self.within)
        return f"Simple effects of {self.factor} within each {others} (Tukey HSD per {others})"


class TukeyTables(dict[str, pd.DataFrame]):
    """Tukey HSD table per significant main effect, as a dict, plus what qualifies them.

    ``caveats`` lists (factor, interaction, p) for each main effect that is
    part of a significant interaction: its comparisons average over levels
    where the differences are not the same. ``simple`` holds the simple
    effects of every factor of every significant interaction. Shown in a
    notebook, all of it appears together.
    """

    def __init__(self, tables: Mapping[str, pd.DataFrame] | None = None,
                 caveats: tuple[tuple[str, str, float], ...] = (),
                 simple: tuple[SimpleEffects, ...] = ()) -> None:
        super().__init__(tables or {})
        self.caveats = caveats
        self.simple = simple

    def caveat_lines(self) -> list[str]:
        """Each caveat as a sentence."""
        out = []
        for factor, interaction, p in self.caveats:
            others = " × ".join(f for f in interaction.split(":") if f != factor)
            p_words = "p < 0.001" if p < 0.001 else f"p = {_p_cell(p)}"
            out.append(f"The {interaction.replace(':', ' × ')} interaction is significant ({p_words}): "
                       f"the Tukey comparisons of {factor} average over {others} and need not hold "
                       f"within each {others}; see the simple effects.")
        return out

    def text(self) -> list[str]:
        """Tables and caveats as plain text blocks."""
        parts = [f"Tukey HSD for {f}:\n" + _format(t).to_string(index=False) for f, t in self.items()]
        parts += self.caveat_lines()
        parts += [f"{s.title}:\n" + _format(s.table).to_string(index=False) for s in self.simple]
        return parts

    def html(self) -> list[str]:
        """Tables and caveats as HTML fragments."""
        esc = html.escape
        parts = []
        for factor, table in self.items():
            parts += [f"<p>Tukey HSD for {esc(factor)}:</p>", _format(table).to_html(index=False)]
        if self.caveats:
            parts.append("<ul>" + "".join(f"<li>{esc(c)}</li>" for c in self.caveat_lines()) + "</ul>")
        for s in self.simple:
            parts += [f"<p>{esc(s.title)}:</p>", _format(s.table).to_html(index=False)]
        return parts

    def __str__(self) -> str:
        return "\n".join(self.text())

    def _repr_html_(self) -> str:
        return "\n".join(self.html()) or ("<p>No pairwise tests: no main effect or interaction is significant "
                                          "(or no residual error was left to test against).</p>")


@dataclass(frozen=True, eq=False)
class AnovaResult:
    """ANOVA of one response on categorical factors, with checks and follow-ups.

    ``table`` has one row per term plus ``Residual``; ``robust_table`` is the
    HC3 Wald ANOVA (source, df, F, p) and ``log_table`` the same model on
    log(response), both present when an assumption failed (or were asked for).
    ``tukey`` maps each significant main effect to its pairwise Tukey HSD table
    (a :class:`TukeyTables`, which also carries the caveats and simple effects
    of significant interactions).
    """

    response: str
    factors: tuple[str, ...]
    formula: str
    typ: int
    table: pd.DataFrame
    n_obs: int
    alpha: float
    checks: tuple[AssumptionCheck, ...] = ()
    robust_table: pd.DataFrame | None = None
    log_table: pd.DataFrame | None = None
    tukey: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    fit: Any = field(default=None, repr=False)
    estimated: bool = False   # the response is estimated energy (CPU time × a rated power), not measured

    @property
    def _estimated(self) -> str:
        return " (estimated energy: a latency comparison times an assumed power)" if self.estimated else ""

    def to_frame(self) -> pd.DataFrame:
        """The ANOVA table (a copy) with the columns of ``TABLE_COLUMNS``."""
        return self.table.copy()

    @property
    def effects(self) -> pd.DataFrame:
        """The table without the residual row: one row per tested term."""
        return self.table[self.table["source"] != RESIDUAL].reset_index(drop=True)

    def row(self, source: str) -> pd.Series:
        """The table row of one term ("model", "model:task"); ParameterError if absent."""
        from nrg.errors import choice_error

        hits = self.table[self.table["source"] == source]
        if hits.empty:
            raise choice_error("source", source, list(self.table["source"]))
        return hits.iloc[0]

    def significant(self, alpha: float | None = None) -> list[str]:
        """Terms with p below ``alpha`` (default: the level the result was made with)."""
        level = self.alpha if alpha is None else alpha
        eff = self.effects
        return [s for s, p in zip(eff["source"], eff["p"], strict=True) if np.isfinite(p) and p < level]

    @property
    def assumptions_ok(self) -> bool | None:
        """False if a check failed, True if all ran and passed, None if none could run."""
        ran = [c.passed for c in self.checks if c.passed is not None]
        if not ran:
            return None
        return all(ran)

    @property
    def simple_effects(self) -> tuple[SimpleEffects, ...]:
        """Simple effects of each factor of each significant interaction (empty when none)."""
        return tuple(getattr(self.tukey, "simple", ()))

    @property
    def residuals(self) -> np.ndarray:
        """Residuals of the fitted model (empty when nothing was fitted)."""
        return np.asarray(self.fit.resid) if self.fit is not None else np.array([])

    @property
    def fitted(self) -> np.ndarray:
        """Fitted values of the model (empty when nothing was fitted)."""
        return np.asarray(self.fit.fittedvalues) if self.fit is not None else np.array([])

    def lines(self) -> list[str]:
        """Assumption checks and notes as plain sentences, in display order."""
        return [c.message for c in self.checks] + list(self.notes)

    def __str__(self) -> str:
        head = (f"ANOVA (type {'II' if self.typ == 2 else 'III'}) of {self.response}{self._estimated}: "
                f"{self.formula}, n = {self.n_obs}")
        parts = [head, _format(self.table).to_string(index=False)]
        parts += self.lines()
        if self.robust_table is not None:
            parts += [ROBUST_TITLE + ":", _format(self.robust_table).to_string(index=False)]
        if self.log_table is not None:
            parts += [f"Same model on log({self.response}):", _format(self.log_table).to_string(index=False)]
        parts += _tukey_tables(self.tukey).text()
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        typ = "II" if self.typ == 2 else "III"
        esc = html.escape
        parts = [f"<p><b>ANOVA (type {typ}) of {esc(self.response)}{esc(self._estimated)}</b>: "
                 f"<code>{esc(self.formula)}</code>, n = {self.n_obs}</p>",
                 _format(self.table).to_html(index=False, na_rep="")]
        if self.lines():
            parts.append("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in self.lines()) + "</ul>")
        if self.robust_table is not None:
            parts += [f"<p>{esc(ROBUST_TITLE)}:</p>", _format(self.robust_table).to_html(index=False, na_rep="")]
        if self.log_table is not None:
            parts += [f"<p>Same model on log({esc(self.response)}):</p>",
                      _format(self.log_table).to_html(index=False, na_rep="")]
        parts += _tukey_tables(self.tukey).html()
        return "\n".join(parts)


def _tukey_tables(tukey: Mapping[str, pd.DataFrame]) -> TukeyTables:
    return tukey if isinstance(tukey, TukeyTables) else TukeyTables(tukey)


def _format(table: pd.DataFrame) -> pd.DataFrame:
    """Round for display; p-values below 0.001 read "<0.001"."""
    out = table.copy()
    for column in out.columns:
        if column in ("p", "p_adj"):
            out[column] = [_p_cell(p) for p in out[column]]
        elif pd.api.types.is_float_dtype(out[column]):
            out[column] = out[column].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    return out


def _p_cell(p: float) -> str:
    if p is None or pd.isna(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"
