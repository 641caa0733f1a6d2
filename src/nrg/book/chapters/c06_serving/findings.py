"""Chapter 6's sentences, held to the book's rules: no "best" where intervals overlap, the method said.

A level is called lower than another only when their 95% intervals do not
overlap; otherwise the sentence says they cannot be told apart here. Where
the energy is estimated from CPU time, the sentences say that energy follows
time on this machine, so its fall with concurrency is a fall in time per token.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nrg.book.chapters.c06_serving.driver import FACTOR

if TYPE_CHECKING:
    import pandas as pd

    from nrg.book.findings import Findings


def _overlap(a: Any, b: Any, measure: str) -> bool:
    lo_a, hi_a = getattr(a, f"{measure}_ci_low"), getattr(a, f"{measure}_ci_high")
    lo_b, hi_b = getattr(b, f"{measure}_ci_low"), getattr(b, f"{measure}_ci_high")
    if not all(math.isfinite(v) for v in (lo_a, hi_a, lo_b, hi_b)):
        return True   # no interval (one repeat): nothing can be told apart
    return not (hi_a < lo_b or hi_b < lo_a)


def _change(model: str, lo: Any, hi: Any) -> str:
    from nrg.book.findings import num, pct

    e_lo, e_hi = lo.energy_per_token_j, hi.energy_per_token_j
    level_lo, level_hi = int(getattr(lo, FACTOR)), int(getattr(hi, FACTOR))
    if _overlap(lo, hi, "energy_per_token_j"):
        return (f"For {model}, energy per token at concurrency {level_lo} ({num(e_lo)} J/token) and {level_hi} "
                f"({num(e_hi)} J/token) cannot be told apart here: their 95% intervals overlap.")
    change = e_hi / e_lo - 1
    itl = hi.itl_p50_s / lo.itl_p50_s - 1 if lo.itl_p50_s > 0 else math.nan
    latency = (f" and the median inter-token latency by {'−' if itl < 0 else '+'}{pct(abs(itl))} "
               f"({num(lo.itl_p50_s * 1e3)} → {num(hi.itl_p50_s * 1e3)} ms)" if math.isfinite(itl)
               else " (the inter-token latency was not recorded at both levels)")
    return (f"For {model}, going from concurrency {level_lo} to {level_hi} changes steady-state energy per token "
            f"by {'−' if change < 0 else '+'}{pct(abs(change))} ({num(e_lo)} → {num(e_hi)} J/token, 95% intervals "
            f"apart){latency}.")


def _lowest(model: str, part: pd.DataFrame) -> str:
    rows = list(part.sort_values("energy_per_token_j").itertuples())
    best = rows[0]
    ties = [int(getattr(r, FACTOR)) for r in rows[1:] if _overlap(best, r, "energy_per_token_j")]
    if ties:
        return (f"For {model}, no single level has the lowest energy per token: concurrency "
                f"{int(getattr(best, FACTOR))}'s interval overlaps that of {', '.join(map(str, sorted(ties)))}.")
    return (f"For {model}, concurrency {int(getattr(best, FACTOR))} has the lowest energy per token, its 95% "
            "interval clear of every other level's (unadjusted intervals: the Tukey comparisons below are the "
            "stricter test).")


def serving_findings(means: pd.DataFrame, steady: pd.DataFrame, pub: pd.DataFrame | None = None) -> Findings:
    """Sentences from :func:`nrg.book.chapters.c06_serving.driver.means` (with intervals) and the rows' energy method."""
    from nrg.book.findings import Findings, num

    sentences = []
    for model, part in means.groupby("model", observed=True, sort=True):
        part = part.sort_values(FACTOR)
        if len(part) >= 2:
            sentences.append(_change(str(model), part.iloc[0], part.iloc[-1]))
            sentences.append(_lowest(str(model), part))
    methods = set(steady["energy_method"].dropna()) if "energy_method" in steady else set()
    if methods == {"estimated"}:
        sentences.append("The energy here is estimated from CPU time (CPU seconds × W per core, plus a constant "
                         "DRAM power), not measured: on this machine energy per token follows time per token, so "
                         "its fall with concurrency is the engine producing more tokens per second.")
    if pub is not None and not pub.empty:
        for (model, gpu), part in pub.groupby(["model_id", "gpu_model"]):
            part = part.sort_values("max_num_seqs")
            lo, hi = part.iloc[0], part.iloc[-1]
            sentences.append(f"Published for comparison (ML.ENERGY v3, GPU energy only): {model.split('/')[-1]} on "
                             f"one {gpu} goes from {num(lo['energy_per_token_j'])} J/token at max_num_seqs "
                             f"{int(lo['max_num_seqs'])} to {num(hi['energy_per_token_j'])} at "
                             f"{int(hi['max_num_seqs'])} ({num(lo['energy_per_token_j'] / hi['energy_per_token_j'])}×"
                             " less), with no spread reported.")
    return Findings(tuple(sentences))


def found(df: pd.DataFrame, params: Any) -> list[str]:
    """The "What this chapter found" sentences: the fall with concurrency, the lowest level, the ANOVA, the method."""
    from nrg.book import findings
    from nrg.book.chapters.c06_serving import driver as chapter
    from nrg.book.found import framing as _framing
    from nrg.book.found import trust as _trust
    from nrg.book.statement import say
    from nrg.stats import provenance_notes

    if df.empty:
        return [f"Nothing was measured here: {params['skip_reason'] or 'no rows'}; the published curves are shown."]
    steady = chapter.ok_phase(df, "steady")
    if steady.empty:
        return ["Every cell failed: see the table of errors below."]
    # opened like every chapter's box (what estimated energy carries beyond time), closed with what
    # disturbed the windows (other processes' CPU share; the engine's own processes count as ours)
    out = _framing(steady) + list(serving_findings(chapter.means(steady), steady))
    if steady[FACTOR].nunique() > 1:
        result = chapter.anova(steady, params["alpha"])
        out += list(findings.anova_findings(result, response_label="energy per token"))[:1]
    trust = _trust(steady)
    return say(out + trust + [n for n in provenance_notes(df) if n not in trust
                              and "estimated" not in n])   # no sentence with an empty slot
