"""Statistics for the book's chapters: ANOVA, effect sizes, regressions, ranking.

Every function takes the tidy result table (one row per phase per repeat,
columns as in ARCHITECTURE.md), leaves out rows whose ``status`` is not "ok",
and returns a DataFrame or a small frozen result object that a notebook can
show directly.

* Chapter 1 (models × tasks): :func:`anova`, :func:`tukey_hsd`, :func:`simple_effects`,
  :func:`summarize`.
* Chapter 2 (sequence length): :func:`fit_lengths`, :func:`per_token_costs`,
  :func:`phase_share`; ANOVA on the lengths as factors with :func:`anova`.
* Chapter 3 (DVFS): :func:`add_edp`, :func:`clock_profile`, :func:`optimal_clocks`.
* Chapter 4 (quantization × pruning): :func:`rank_configs`, :func:`pareto_mask`,
  :func:`pareto_front`.
* Every chapter's footer: :func:`provenance_summary`.
"""
from __future__ import annotations

from nrg.stats._data import LABELS, axis_label, label, ok_rows, unit
from nrg.stats.anova import anova, simple_effects, tukey_hsd
from nrg.stats.anova_result import AnovaResult, SimpleEffects, TukeyTables
from nrg.stats.assumptions import AssumptionCheck, check_homogeneity, check_normality
from nrg.stats.clocks import add_edp, clock_key, clock_profile, optimal_clocks
from nrg.stats.provenance import cell_precision, provenance_notes, provenance_summary
from nrg.stats.rank import (
    RankResult,
    efficiency_score,
    pareto_front,
    pareto_mask,
    performance_score,
    rank_configs,
    ranking_score,
)
from nrg.stats.regress import LengthFit, fit_lengths, per_token_costs, per_token_unit, phase_share
from nrg.stats.summary import summarize, t_halfwidth

__all__ = [
    "LABELS", "AnovaResult", "AssumptionCheck", "LengthFit", "RankResult", "SimpleEffects", "TukeyTables",
    "add_edp", "anova",
    "axis_label", "cell_precision", "check_homogeneity", "check_normality", "clock_key",
    "clock_profile", "efficiency_score", "fit_lengths", "label", "ok_rows", "optimal_clocks",
    "pareto_front", "pareto_mask", "per_token_costs", "per_token_unit", "performance_score",
    "phase_share", "provenance_notes", "provenance_summary", "rank_configs", "ranking_score",
    "simple_effects", "summarize", "t_halfwidth", "tukey_hsd", "unit",
]
