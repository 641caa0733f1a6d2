"""Findings in words, computed from the analysis: the sentences under each figure.

Every number in a sentence comes from a result object or table passed in;
nothing is hard-coded. p-values read "p < 0.001" or "p = 0.03", effects that
are not significant are called so, and each function returns
:class:`Findings`, which a notebook shows as a markdown list.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from nrg.book.statement import Check, Finding, above, at_least, say
from nrg.errors import ParameterError
from nrg.stats._data import is_energy, label, unit
from nrg.stats.anova_result import AnovaResult, SimpleEffects
from nrg.stats.provenance import provenance_notes
from nrg.stats.rank import RankResult
from nrg.stats.regress import per_token_unit

OBJECTIVE_NAMES = {"energy_j": "energy", "edp_j_s": "EDP", "ed2p_j_s2": "ED²P", "time_s": "latency"}
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


@dataclass(frozen=True)
class Findings:
    """Sentences for a chapter; shows as a markdown bullet list in a notebook."""

    sentences: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[str]:
        return iter(self.sentences)

    def __len__(self) -> int:
        return len(self.sentences)

    def __add__(self, other: Findings) -> Findings:
        return Findings(self.sentences + tuple(other))

    def to_markdown(self) -> str:
        """The sentences as a markdown bullet list."""
        return "\n".join(f"- {s}" for s in self.sentences)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __str__(self) -> str:
        return self.to_markdown()


def p_text(p: float) -> str:
    """"p < 0.001", "p = 0.003", "p = 0.41", "p > 0.99"; "p not available" for NaN."""
    if p is None or not math.isfinite(p):
        return "p not available"
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return f"p = {p:.3f}"
    if p > 0.99:
        return "p > 0.99"
    return f"p = {p:.2f}"


def pct(fraction: float) -> str:
    """A fraction as a percentage: 0.8214 → "82%", 0.046 → "4.6%", 0.0004 → "<0.1%"."""
    if not math.isfinite(fraction):
        return "n/a"
    a = abs(fraction)
    if 0 < a < 0.001:
        return "<0.1%"
    return f"{fraction:.1%}" if a < 0.1 else f"{fraction:.0%}"


def num(value: float) -> str:
    """Three significant digits (whole numbers from 1000 on); tiny or huge values as "1.2×10⁻⁵"."""
    if not math.isfinite(value):
        return "n/a"
    text = f"{value:.0f}" if 1e3 <= abs(value) < 1e6 else f"{value:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"
    return text.replace("-", "−") if value < 0 else text


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _term_name(source: str) -> str:
    return " × ".join(label(part) for part in source.split(":"))


def _share(eta_sq: float) -> str:
    text = pct(eta_sq)
    return f"< {text[1:]}" if text.startswith("<") else f"= {text}"


def _two_decimals(x: float) -> str:
    return "> 0.99" if 0.995 <= x < 1 else f"= {x:.2f}"


def _columns(frame: pd.DataFrame, *names: str) -> Iterator[tuple[Any, ...]]:
    """The rows of ``frame``'s columns ``names`` as tuples (what ``itertuples`` gives, typed by position)."""
    return zip(*(frame[name] for name in names), strict=True)


def anova_findings(result: AnovaResult, response_label: str | None = None) -> Findings:
    """Which factors explain how much variance, which do not, and whether checks held.

    Where the robust table was computed and its verdict on a term differs from
    the classical F test's, the verdict follows the robust test and says so.
    """
    what = response_label or label(result.response)
    if getattr(result, "estimated", False) and "estimated" not in what:
        what = f"estimated {what}"
    eff = result.effects
    if eff.empty:
        return Findings(tuple(result.notes))
    if not eff["p"].notna().any():
        shares = "; ".join(f"{label(s)} accounts for {pct(e)}" for s, e in zip(eff["source"], eff["eta_sq"], strict=True)
                           if math.isfinite(e))
        why = result.notes[-1] if result.notes else "F tests are undefined for this data."
        share = Finding("Of the variance in {what}: {shares}.", {"what": what, "shares": shares},
                        (Check("shares", bool(shares), "no effect size could be computed"),))
        return Findings(tuple(say([why, share])))
    verdict_p = _verdict_p(result)
    sig_sources = {s for s, p in verdict_p.items() if p < result.alpha}
    robust_used = {s for s in verdict_p if s in _changed_by_robust(result)}
    sig = eff[eff["source"].isin(sig_sources)].sort_values("eta_sq", ascending=False)
    sentences = []
    parts = [f"{_term_name(source)} explains {pct(eta_sq)}"
             f"{' of the variance in ' + what if i == 0 else ''} "
             f"(partial η² {_two_decimals(partial)}, {_p_of(source, verdict_p, robust_used)})"
             for i, (source, eta_sq, partial) in enumerate(_columns(sig, "source", "eta_sq", "partial_eta_sq"))]
    if parts:
        sentences.append(_cap("; ".join(parts)) + ".")
    for source, eta_sq in _columns(eff[~eff["source"].isin(sig_sources)], "source", "eta_sq"):
        p = _p_of(source, verdict_p, robust_used)
        if ":" in source:
            sentences.append(f"The {_term_name(source)} interaction is not significant ({p}, η² {_share(eta_sq)}).")
        else:
            sentences.append(f"{_cap(_term_name(source))} has no significant effect on {what} "
                             f"({p}, η² {_share(eta_sq)}).")
    sentences += _share_note(result)
    sentences += _robust_sentences(result)
    sentences += [_tukey_sentence(f, t, result.alpha) for f, t in result.tukey.items() if f in sig_sources]
    sentences += _interaction_sentences(result, sig_sources)
    return Findings(tuple(say(sentences)))


def _changed_by_robust(result: AnovaResult) -> dict[str, float]:
    """Terms whose robust (HC3, wild-bootstrap) verdict differs from the classical one: their robust p."""
    if result.robust_table is None:
        return {}
    classical = dict(zip(result.effects["source"], result.effects["p"], strict=True))
    return {s: float(p) for s, p in zip(result.robust_table["source"], result.robust_table["p"], strict=True)
            if s in classical and math.isfinite(p) and math.isfinite(classical[s])
            and (p < result.alpha) != (classical[s] < result.alpha)}


def _verdict_p(result: AnovaResult) -> dict[str, float]:
    """The p-value each term's verdict follows: the robust one where it and the classical differ."""
    verdict = {s: float(p) for s, p in zip(result.effects["source"], result.effects["p"], strict=True)}
    verdict.update(_changed_by_robust(result))
    return verdict


def _p_of(source: str, verdict_p: Mapping[str, float], robust_used: set[str]) -> str:
    return f"robust {p_text(verdict_p[source])}" if source in robust_used else p_text(verdict_p[source])


def _share_note(result: AnovaResult) -> list[str]:
    """Why the η² shares do not add up to 100 % (type II sums of squares in an unbalanced design)."""
    shares = result.table["eta_sq"].dropna()
    total = float(shares.sum())
    if shares.empty or not math.isfinite(total) or abs(total - 1) <= 0.005:
        return []
    return [f"The shares are η² (each term's sum of squares over the total); with type "
            f"{'II' if result.typ == 2 else 'III'} sums of squares in an unbalanced (or confounded) design the terms overlap, "
            f"so the shares and the residual add up to {pct(total)}, not 100 %. Partial η² (each term against "
            "the residual alone) is the comparable effect size."]


def _robust_sentences(result: AnovaResult) -> list[str]:
    failed = [c for c in result.checks if c.passed is False]
    out = [f"Assumption check: {c.message}" for c in failed]
    if result.robust_table is None:
        return out
    classical = dict(zip(result.effects["source"], result.effects["p"], strict=True))
    changed = [f"{_term_name(s)} (robust {p_text(p)}, classical {p_text(classical[s])})"
               for s, p in _changed_by_robust(result).items()]
    if changed:
        out.append("The robust (HC3) ANOVA (type III Wald tests, wild-bootstrap p-values) changes the verdict for "
                   + ", ".join(changed) + "; the verdicts above follow the robust test.")
    else:
        out.append("The robust (HC3) ANOVA (type III Wald tests, wild-bootstrap p-values) agrees on which terms "
                   "are significant.")
    return out


def _interaction_sentences(result: AnovaResult, significant: set[str] | None = None) -> list[str]:
    """The caveat on main-effect Tukey tables under a significant interaction, and the simple effects.

    Only interactions in ``significant`` (default: every one the classical test
    found) are followed up: a robust verdict that overturns one drops them.
    """
    out = []
    caveats: dict[tuple[str, float], list[str]] = {}
    for factor, interaction, p in getattr(result.tukey, "caveats", ()):
        if significant is not None and (interaction not in significant or factor not in significant):
            continue
        caveats.setdefault((interaction, p), []).append(label(factor))
    for (interaction, p), factors in caveats.items():
        out.append(f"Caveat: the {_term_name(interaction)} interaction is significant ({p_text(p)}), so the Tukey "
                   f"comparisons of {' and of '.join(factors)} above average over the levels of the other "
                   f"factor{'s' if interaction.count(':') > 1 else ''} and need not hold within each level; "
                   "the simple effects below say where they do.")
    for simple in result.simple_effects:
        if significant is None or simple.interaction in significant:
            out.append(_simple_sentence(simple, result.alpha))
    return out


def _simple_sentence(simple: SimpleEffects, alpha: float) -> str:
    """"Simple effects of model within each task (Tukey HSD per task, adjusted p < 0.05): qa: 3 of 3 pairs differ; ..."."""
    others = " × ".join(label(f) for f in simple.within)
    table = simple.table
    if table.empty:
        return f"Simple effects of {label(simple.factor)} within each {others}: no level has two groups to compare."
    parts = []
    for key, part in table.groupby(list(simple.within), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        n_diff = int(part["reject"].sum())
        text = f"{', '.join(map(str, key))}: {n_diff} of {len(part)} pair{'s' if len(part) > 1 else ''} differ"
        same = [f"{a}–{b}" for a, b, r in zip(part["group1"], part["group2"], part["reject"], strict=True) if not r]
        if same and n_diff and len(same) <= 3:
            text += f" (not separated: {', '.join(same)})"
        parts.append(text)
    return (f"Simple effects of {label(simple.factor)} within each {others} (Tukey HSD per {others}, "
            f"adjusted p < {alpha:g}): " + "; ".join(parts) + ".")


def _tukey_sentence(factor: str, table: pd.DataFrame, alpha: float) -> str:
    if len(table) == 1:
        r = table.iloc[0]
        verdict = "differ" if r["reject"] else "do not differ"
        return (f"Tukey HSD: {label(factor)} {r['group1']} and {r['group2']} {verdict} "
                f"(difference {num(r['meandiff'])}, adjusted {p_text(r['p_adj'])}).")
    n_diff = int(table["reject"].sum())
    text = f"Tukey HSD: {n_diff} of {len(table)} pairs of {label(factor)} levels differ (adjusted p < {alpha:g})"
    same = [f"{a}–{b}" for a, b, r in zip(table["group1"], table["group2"], table["reject"], strict=True) if not r]
    if same and len(same) <= 5:
        text += "; not separated: " + ", ".join(same)
    return text + "."


def length_findings(costs: pd.DataFrame, response: str = "energy_j", per: int = 100) -> Findings:
    """Per group, how the response changes per ``per`` input / output tokens (from per_token_costs)."""
    if isinstance(per, bool) or not isinstance(per, int) or per < 1:
        raise ParameterError(f"per={per!r} is not valid; it must be a positive whole number of tokens")
    by = list(costs.columns[: list(costs.columns).index("term")])
    u = unit(response) or per_token_unit(response)
    what = ("estimated " if costs.attrs.get("energy_estimated") else "") + label(response)
    sentences = []
    for d in costs.to_dict("records"):
        who = ", ".join(str(d[c]) for c in by)
        prefix = f"For {who}, {what}" if who else _cap(what)
        kind = "input" if "input" in d["term"] else "output" if "output" in d["term"] else d["term"]
        slope, lo, hi = (per * d[k] for k in ("estimate", "ci_low", "ci_high"))
        ci = f"95% CI {num(lo)} to {num(hi)}, {p_text(d['p'])}"
        amount = f"{num(abs(slope))} {u} per {per} {kind} tokens"
        if d["p"] < 0.05:
            verb = "rises" if slope > 0 else "falls"
            sentences.append(f"{prefix} {verb} by {amount} ({ci}).")
        else:
            sentences.append(f"{prefix} shows no significant change with {kind} length "
                             f"({num(slope)} {u} per {per} {kind} tokens, {ci}).")
    return Findings(tuple(sentences))


def phase_share_findings(shares: pd.DataFrame) -> Findings:
    """The range of the decode share of each measure across cells (from phase_share)."""
    sentences = []
    for measure, part in shares.groupby("measure", sort=False):
        s = part["decode_share"].dropna()
        if s.empty:
            continue
        spread = pct(s.min()) if pct(s.min()) == pct(s.max()) else \
            f"{pct(s.min())}–{pct(s.max())} (median {pct(s.median())})"
        what = ("estimated " if shares.attrs.get("energy_estimated") and is_energy(str(measure)) else "") + label(str(measure))
        sentences.append(f"Decode takes {spread} of {what} across {len(s)} cell(s); prefill the rest.")
    return Findings(tuple(sentences))


def clock_findings(optimal: pd.DataFrame, by: Sequence[str] = ("model",), alpha: float = 0.05) -> Findings:
    """The optimal setting per group, its saving and its latency cost (from optimal_clocks).

    When the default (unlocked) setting beats every locked clock, the default
    is called best and the best locked clock is described by what it costs:
    a lock that uses more energy than the default is never called optimal.
    """
    sentences = []
    for _, row in optimal.iterrows():
        who = ", ".join(str(row[c]) for c in by if c in row.index)
        name = OBJECTIVE_NAMES.get(row["objective"], row["objective"])
        ref = "the default clock" if row["reference_clock"] == "default" else f"{row['reference_clock']} MHz"
        best = f"{row['optimal_clock_mhz']:g} MHz"
        if bool(row.get("default_best", False)):
            sentences.append(_default_best_sentence(row, who, name, best, alpha))
            continue
        if f"{row['optimal_clock_mhz']:g}" == str(row["reference_clock"]):
            sentences.append(f"For {who}, the reference clock ({best}) is already {name}-optimal.")
            continue
        saving, latency = row["energy_saving"], row["latency_change"]
        energy_text = f"{pct(abs(saving))} {'less' if saving >= 0 else 'more'} energy than {ref}"
        latency_text = f"{pct(abs(latency))} {'more' if latency >= 0 else 'less'} latency"
        p = row.get("p_energy", float("nan"))
        if math.isfinite(p) and p >= alpha:   # not separated from the reference: no "optimal" is named
            sentences.append(f"For {who}, no {name}-optimal clock can be named: the lowest mean {name}, at {best}, "
                             f"means {energy_text} for {latency_text} (the energy difference is not significant, "
                             f"{p_text(p)}): it is not distinguishable from {ref}.")
            continue
        if not math.isfinite(p):   # one window per clock, or no spread: the difference cannot be tested
            sentences.append(f"For {who}, no {name}-optimal clock can be named: the lowest mean {name}, at {best}, "
                             f"means {energy_text} for {latency_text}, but without repeated windows that vary "
                             f"the difference from {ref} cannot be tested.")
            continue
        sentences.append(f"The {name}-optimal clock for {who} is {best}: {energy_text} for {latency_text}.")
    default_best = (optimal["default_best"].astype(bool) if "default_best" in optimal.columns
                    else pd.Series(False, index=optimal.index))
    average = _average_saving(optimal[optimal["energy_saving"].notna() & ~default_best], alpha)
    if average is not None:
        sentences.append(average)
    n_default = int(default_best.sum())
    if n_default and len(optimal) > 1:
        p_all = optimal["p_energy"].astype(float) if "p_energy" in optimal.columns else pd.Series(math.nan,
                                                                                                index=optimal.index)
        n_sig = int((default_best & p_all.notna() & (p_all < alpha)).sum())
        sentences.append(f"In {n_default} of {len(optimal)} groups the default clock has the lowest mean "
                         f"{OBJECTIVE_NAMES.get(optimal['objective'].iloc[0], optimal['objective'].iloc[0])} "
                         f"(separated from the best locked clock, Welch p < {alpha:g}, in {n_sig} of them).")
    return Findings(tuple(sentences))


def _average_saving(moved: pd.DataFrame, alpha: float) -> str | None:
    """The mean saving over the groups whose best locked clock differs significantly from the reference.

    Why only those: a group whose lowest mean is not separated from the
    reference (Welch p >= ``alpha``, or no test possible) has no optimal clock
    (its own sentence says so), so its "saving" is noise and must not be
    averaged in. Two such groups at least; otherwise the sentence says what
    cannot be concluded (nothing when there was nothing to average).
    """
    if len(moved) < 2:
        return None
    p = moved["p_energy"].astype(float) if "p_energy" in moved.columns else pd.Series(math.nan, index=moved.index)
    moved_off = moved["optimal_clock_mhz"].map(lambda c: f"{c:g}") != moved["reference_clock"].astype(str)
    separated = moved[moved_off & p.notna() & (p < alpha)]
    left_out = len(moved) - len(separated)
    enough = Check("at least 2 separated groups", len(separated) >= 2,
                   f"only {len(separated)} differ significantly from the reference (Welch p < {alpha:g}; at least "
                   "2 are needed for an average)")
    values = {"n": len(separated), "alpha": f"{alpha:g}", "total": len(moved), "left": left_out}
    if len(separated):
        values |= {"saving": pct(separated["energy_saving"].mean()), "latency": _span(separated["latency_change"])}
    template = ("Across {n} groups where a locked clock uses significantly less energy than the reference "
                "(Welch p < {alpha}), the saving averages {saving} for a latency change of {latency}")
    template += "; {left} group(s) not separated from the reference are left out." if left_out else "."
    return Finding(template, values, (enough,),
                   fallback="No average saving across groups can be given: of {total} groups whose lowest-energy "
                            "clock is a locked one, {why}.").text()


def _default_best_sentence(row: pd.Series, who: str, name: str, best: str, alpha: float) -> str:
    """"For gpt2, the default clock is best for energy: ...; the best locked clock, 1410 MHz, uses 17% more ..."."""
    extra_e = row["energy_opt_j"] / row["energy_default_j"] - 1
    latency = row["time_opt_s"] / row["time_default_s"] - 1
    energy_text = f"{pct(abs(extra_e))} {'more' if extra_e >= 0 else 'less'} energy than the default clock"
    latency_text = f"{pct(abs(latency))} {'more' if latency >= 0 else 'less'} latency"
    if name == "energy":
        lead, cost = "no locked clock measured uses less", f"uses {energy_text} for {latency_text}"
    else:
        higher = row["metric_opt"] / row["metric_default"] - 1
        lead = f"no locked clock measured has a lower {name}"
        cost = f"has a {pct(higher)} higher {name}, with {energy_text} and {latency_text}"
    text = f"For {who}, the default clock is best for {name}: {lead}; the best locked clock, {best}, {cost}"
    p = row.get("p_energy", float("nan")) if row["reference_clock"] == "default" else float("nan")
    if math.isfinite(p) and p >= alpha:
        if name == "energy":   # not separated: the default is not called best, only lowest in the mean
            text = (f"For {who}, the default clock has the lowest mean energy but is not distinguishable from the "
                    f"best locked clock, {best}, which {cost}")
        text += f" (the energy difference is not significant, {p_text(p)})"
    elif name == "energy" and not math.isfinite(p):   # one window per setting, or no spread: no test
        text = (f"For {who}, the default clock has the lowest mean energy; the best locked clock, {best}, {cost} "
                "(without repeated windows that vary, the difference cannot be tested)")
    return text + "."


def _span(values: pd.Series) -> str:
    lo, hi = values.min(), values.max()
    return pct(lo) if math.isclose(lo, hi) else f"{pct(lo)} to {pct(hi)}"


def _config(row: pd.Series, by: Iterable[str]) -> str:
    return ", ".join(f"{label(c)} {row[c]}" for c in by)


def ranking_checks(ranked: RankResult, chance: float | None = None, min_configs: int = 3) -> tuple[Check, ...]:
    """The preconditions of naming a best configuration by R.

    At least ``min_configs`` configurations (with two, min–max scaling gives
    R = 1 and 0 by construction); quality that differs between them; and,
    when the ``chance`` level of the metric is known (a guessing classifier, a
    reply that ignores the ticket), the top-ranked configuration's quality --
    the lower end of its 95 % interval where replicates give one -- above it.
    """
    t = ranked.table
    quality = t["quality_mean"].astype(float)
    checks = [at_least(len(t), min_configs, "configurations ranked"),
              Check("quality varies", bool(quality.max() > quality.min()),
                    f"every configuration has the same {ranked.quality} ({num(float(quality.iloc[0]))})")]
    if chance is not None and math.isfinite(chance):
        top = t.iloc[0]
        low = top.get("quality_ci_low", math.nan)
        low = float(low) if low is not None and math.isfinite(float(low)) else float(top["quality_mean"])
        checks.append(above(low, chance, f"the top-ranked configuration's {ranked.quality} "
                                         f"({num(float(top['quality_mean']))})", f"chance ({num(chance)})"))
    return tuple(checks)


def ranking_findings(ranked: RankResult, chance: float | None = None) -> Findings:
    """Best and worst configuration by R, and the energy–quality Pareto front -- when the data carry them.

    See :func:`ranking_checks`; when a check fails, the sentence says that no
    best configuration is named and why.
    """
    t = ranked.table
    best, worst = t.iloc[0], t.iloc[-1]
    checks = ranking_checks(ranked, chance)
    values = {"w": f"{ranked.w:g}", "best": _config(best, ranked.by), "R": f"{best['R']:.2f}",
              "phi": f"{best['phi']:.2f}", "rho": f"{best['rho']:.2f}", "worst": _config(worst, ranked.by),
              "R_worst": f"{worst['R']:.2f}"}
    top = Finding("With w = {w}, the best configuration is {best} (R = {R}: φ = {phi}, ρ = {rho}); "
                  "the lowest-ranked is {worst} (R = {R_worst}).", values, checks,
                  fallback="No best configuration is named (w = {w}): {why}, so a ranking by R would "
                           "reflect energy and noise, not a trade-off with quality.")
    front = t[t["pareto"]].sort_values("energy_mean")
    names = "; ".join(_config(r, ranked.by) for _, r in front.iterrows())
    pareto = Finding("{n_front} of {n} configurations are on the energy–quality Pareto front: {names}.",
                     {"n_front": len(front), "n": len(t), "names": names},
                     tuple(c for c in checks if c.name != "at least 3 configurations ranked"))
    return Findings(tuple(say([top, pareto])) + ranked.notes)


def provenance_findings(df: pd.DataFrame) -> Findings:
    """What the reader must know about how the numbers were obtained."""
    return Findings(tuple(provenance_notes(df)))
