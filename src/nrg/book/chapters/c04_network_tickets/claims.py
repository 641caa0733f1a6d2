"""The claims chapter 4 checks (Tran et al.): 16-bit is the best quantization, 16-bit with 2:4 pruning the best balance.

Each is the fraction of the chapter's R rankings (task x phase, R = w·φ +
(1−w)·ρ) in which the claimed configuration ranks first; a ranking that cannot
name a best configuration (quality at chance, ties) is withheld with the
reason. Judged by :mod:`nrg.book.claims` (rule ``holds``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nrg.book.claim_measures import Measured, successful
from nrg.book.claims import TRAN, Claim, Rule
from nrg.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd


def _rankings(rows: pd.DataFrame, params: Mapping[str, Any], prune: str | None = None) -> dict[str, Any]:
    """Chapter 4's R ranking of every task x phase with quality (only ``prune`` rows when given)."""
    from nrg.book.chapters.c04_network_tickets import analysis as tickets_analysis
    from nrg.book.chapters.c04_network_tickets.chance import chance_quality
    from nrg.book.chapters.c04_network_tickets.driver import METRICS
    from nrg.book.findings import ranking_checks

    metrics = dict(params.get("metrics") or {t: m[0] for t, m in METRICS.items()})
    w = float(params.get("w", 0.5))
    good = successful(rows)
    if prune is not None and "prune" in good.columns:
        good = good[good["prune"].astype("string").fillna("none") == prune]
    out, withheld = {}, []
    for task in sorted(set(good.get("task", [])) & set(metrics)):
        for phase in tickets_analysis.PHASES:
            part = good[(good["task"] == task) & (good["phase"] == phase)]
            if part.empty or metrics[task] not in part.columns or part[metrics[task]].isna().all():
                continue
            try:
                ranked = tickets_analysis.ranking(part, task, phase, metrics[task], w)
            except ParameterError:
                continue
            failed = [c.why for c in ranking_checks(ranked, chance_quality(params, task, metrics[task]))
                      if not c.passed]
            if failed:
                withheld.append(f"{task} {phase}: {'; '.join(failed)}")
                continue
            out[f"{task} {phase}"] = ranked.table
    if not out:
        if withheld:
            more = f"; and {len(withheld) - 1} more ranking(s) like it" if len(withheld) > 1 else ""
            raise ParameterError(f"no ranking can name a best configuration ({withheld[0]}{more})")
        raise ParameterError("no quantization x pruning combination has both energy and task quality "
                             "(R = w·φ + (1−w)·ρ needs both)")
    return out


def _is_16_bit(quant: Any) -> bool:
    from nrg.compress.quantization import BITS

    return BITS.get(str(quant)) == 16


def _top_fraction(tables: Mapping[str, Any], wanted: Callable[[Any], bool], what: str) -> Measured:
    """In how many rankings containing ``wanted`` combinations one of them ranks first."""
    holding = {k: t for k, t in tables.items() if t.apply(wanted, axis=1).any()}
    if not holding:
        seen = sorted({f"{r.quant} / {r.prune}" for t in tables.values() for r in t.itertuples()})
        raise ParameterError(f"{what} was not among the ranked combinations ({', '.join(seen)})")
    first = {k: t.iloc[0] for k, t in holding.items()}
    wins = sum(bool(wanted(row)) for row in first.values())
    text = "; ".join(f"{k}: best {r['quant']} / {r['prune']} (R {r['R']:.2f})" for k, r in first.items())
    return Measured(wins / len(holding), None, None, f"first in {wins} of {len(holding)} rankings ({text})")


def best_balance(rows: pd.DataFrame, params: Mapping[str, Any]) -> Measured:
    """Whether 16-bit with 2:4 pruning ranks first by R in every ranking that includes it."""
    return _top_fraction(_rankings(rows, params), lambda r: _is_16_bit(r["quant"]) and str(r["prune"]) == "2:4",
                         "16-bit with 2:4 pruning")


def sixteen_bit_best(rows: pd.DataFrame, params: Mapping[str, Any]) -> Measured:
    """Whether 16-bit ranks first by R among the unpruned quantizations, in every ranking with one."""
    return _top_fraction(_rankings(rows, params, prune="none"), lambda r: _is_16_bit(r["quant"]),
                         "a 16-bit quantization (unpruned)")


CLAIMS: tuple[Claim, ...] = (
    Claim("04_network_tickets", "best_balance", "16-bit with 2:4 structured pruning gives the best balance "
          "(highest R)", "16-bit + 2:4 ranks first", TRAN, best_balance, Rule("holds")),
    Claim("04_network_tickets", "sixteen_bit", "16-bit is the best quantization trade-off (highest R, unpruned)",
          "16-bit ranks first", TRAN, sixteen_bit_best, Rule("holds")),
)
