"""Driver of chapter 5: how the batch size drives energy per token, latency and throughput.

Serving systems batch requests because a decode step streams every weight
through memory once whatever the number of sequences it advances: the
weights' cost is shared by the batch, and energy per token falls while a
request waits longer. This chapter sweeps the batch size at fixed input and
output lengths, fits a generation's energy as a fixed part plus a part per
sequence (``energy_j ~ batch_size``), and runs the ANOVA of energy per token
on the batch size like chapter 2 does for the lengths. Prompts are synthetic
token ids of exact length, as in chapter 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nrg.book import common, sweeps
from nrg.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from nrg.book.findings import Findings
    from nrg.book.statement import Finding
    from nrg.stats import AnovaResult

CHAPTER = "05_batch_size"
FACTOR = "batch_size"
CHANGES = ("energy_per_token_change_pct", "latency_change_pct", "throughput_change_pct")


def _batch_sizes(value: Any) -> tuple[int, ...]:
    values = [common.as_int("batch_sizes", v) for v in common.as_list("batch_sizes", value)]
    if len(set(values)) != len(values):
        raise ParameterError(f"batch_sizes={values!r} has duplicates; give distinct batch sizes")
    if len(values) < 2:
        raise ParameterError(f"batch_sizes={values!r}: give at least two batch sizes to compare")
    return tuple(sorted(values))


@dataclass(frozen=True)
class Params(sweeps.SweepParams):
    """Batch sizes at fixed input and output lengths; see the notebook's parameters cell."""

    CHAPTER = CHAPTER

    batch_sizes: tuple[int, ...] = (1, 2, 4, 8)   # sequences generated together (at least two sizes)
    input_tokens: int = 64
    output_tokens: int = 16                      # at least 2: decode needs a second token

    def parse(self) -> None:
        """Batch sizes and the two lengths."""
        self._put("batch_sizes", _batch_sizes(self.batch_sizes))
        self._put("input_tokens", common.as_int("input_tokens", self.input_tokens))
        self._put("output_tokens", common.as_int("output_tokens", self.output_tokens, minimum=2))

    def configs(self) -> list[dict[str, Any]]:
        """The one sweep: every batch size at the fixed lengths."""
        return [{**self.base_config(), "name": f"{CHAPTER}-batch", "tasks": ["none"],
                 "batch_sizes": list(self.batch_sizes), "input_tokens": [self.input_tokens],
                 "output_tokens": [self.output_tokens], "quality": {"items": 0}}]


def measure(params: Params, progress: bool = True) -> pd.DataFrame:
    """Run (or reuse) the sweep, checked when ``params`` was built; the rows of exactly its cells."""
    return params.measure(progress)


def ok_phase(df: pd.DataFrame, phase: str = "generate") -> pd.DataFrame:
    """Rows of one phase whose cell ran: failed cells carry no energy to plot."""
    return df[(df["phase"] == phase) & (df["status"] == "ok")].copy()


def figure(gen: pd.DataFrame, response: str, fit: bool = False) -> Figure:
    """Mean ``response`` (95% CI) against the batch size, one line per model, batch on a log₂ axis."""
    from nrg.book import plots

    fig = plots.lines_vs_length(gen, response=response, length=FACTOR, lengths=(FACTOR,), fit=fit)
    ax = fig.axes[0]
    sizes = sorted(gen[FACTOR].unique())
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    return fig


def batch_costs(gen: pd.DataFrame) -> pd.DataFrame:
    """Per model, a generation's energy fitted as fixed + per-sequence: ``energy_j ~ batch_size``.

    The intercept is the part a batch shares (mostly streaming the weights);
    the slope is what one more sequence adds. Columns: ``model, term,
    estimate_j, ci_low_j, ci_high_j, p, r2, n`` (term ``Intercept`` or ``batch_size``);
    ``attrs["energy_estimated"]`` when the rows' energy is estimated.
    """
    import pandas as pd

    from nrg.stats import fit_lengths

    rows = []
    for model, part in gen.groupby("model", observed=True, sort=True):
        result = fit_lengths(part, "energy_j", lengths=(FACTOR,))
        for r in result.coefficients.itertuples(index=False):
            rows.append({"model": model, "term": r.term, "estimate_j": r.estimate, "ci_low_j": r.ci_low,
                         "ci_high_j": r.ci_high, "p": r.p, "r2": result.r2, "n": result.n_obs})
    from nrg.stats._data import estimated

    out = pd.DataFrame(rows, columns=["model", "term", "estimate_j", "ci_low_j", "ci_high_j", "p", "r2", "n"])
    out.attrs["energy_estimated"] = estimated(gen)   # the page's headers say "estimated" (nrg.book.labels)
    return out


def anova(gen: pd.DataFrame, alpha: float = 0.05) -> AnovaResult:
    """ANOVA of energy per token on the batch size (and the model, when there are several)."""
    from nrg import stats

    factors = [FACTOR] + (["model"] if gen["model"].nunique() > 1 else [])
    return stats.anova(gen, "energy_per_token_j", factors, alpha=alpha)


def change_table(gen: pd.DataFrame) -> pd.DataFrame:
    """Per model and batch size: mean energy per token, latency and throughput, and their change (%) from the smallest batch.

    Energy headers say "(estimated)" when the rows' energy is estimated.
    """
    from nrg.book.labels import mark_estimated

    return mark_estimated(_changes(gen), gen)


def _changes(gen: pd.DataFrame) -> pd.DataFrame:
    from nrg import stats

    measures = ["energy_per_token_j", "time_s", "tokens_per_s"]
    means = (stats.summarize(gen, by=["model", FACTOR], measures=measures)
             .pivot_table(index=["model", FACTOR], columns="measure", values="mean").reset_index())
    means.columns.name = None
    first = means.groupby("model", observed=True)[measures].transform("first")
    for column, name in zip(measures, CHANGES, strict=True):
        means[name] = (means[column] / first[column] - 1) * 100
    return means


def batch_findings(gen: pd.DataFrame, costs: pd.DataFrame | None = None) -> Findings:
    """Sentences: how far energy per token falls and latency rises from the smallest to the largest batch.

    The fixed + per-sequence split is quoted only when the fit is adequate
    (R² at least :data:`nrg.book.statement.MIN_R2`) and its shared part is no larger
    than the energy measured at the smallest batch; otherwise the sentence says
    why the split is not given.
    """
    from nrg.book.findings import Findings
    from nrg.book.statement import say

    table = _changes(gen)
    costs = batch_costs(gen) if costs is None else costs
    sentences: list[Any] = []
    for model, part in table.groupby("model", observed=True, sort=True):
        lo, hi = part.iloc[0], part.iloc[-1]
        if len(part) < 2:
            continue
        sentences.append(_change_finding(str(model), gen[gen["model"] == model], lo, hi))
        fit = costs[costs["model"] == model].set_index("term")
        if {"Intercept", FACTOR} <= set(fit.index):
            measured = gen[(gen["model"] == model) & (gen[FACTOR] == lo[FACTOR])]["energy_j"].mean()
            sentences.append(_split_finding(str(model), fit.loc["Intercept"], fit.loc[FACTOR], int(lo[FACTOR]),
                                            float(measured)))
    return Findings(tuple(say(sentences)))


def _change_finding(model: str, rows: pd.DataFrame, lo: Any, hi: Any) -> Finding:
    """Energy per token and latency from the smallest batch to the largest, as a checked statement.

    Said as a change only when the two batches' 95% t-intervals of energy per
    token separate (:func:`nrg.book.statement.separated`): a change within the
    spread is no change, and the overlap is said instead.
    """
    from nrg.book.claim_measures import t_interval
    from nrg.book.findings import num, pct
    from nrg.book.statement import Finding, separated

    def interval(batch: Any) -> tuple[float, float]:
        _, low, high = t_interval(rows.loc[rows[FACTOR] == batch, "energy_per_token_j"])
        return (math.nan if low is None else low, math.nan if high is None else high)

    energy, latency = hi["energy_per_token_change_pct"] / 100, hi["latency_change_pct"] / 100
    b_lo, b_hi = int(lo[FACTOR]), int(hi[FACTOR])
    values = {"model": model, "b_lo": b_lo, "b_hi": b_hi, "e_lo": num(lo["energy_per_token_j"]),
              "e_hi": num(hi["energy_per_token_j"]), "energy": f"{'−' if energy < 0 else '+'}{pct(abs(energy))}",
              "latency": f"{'−' if latency < 0 else '+'}{pct(abs(latency))}"}
    return Finding("For {model}, going from batch {b_lo} to {b_hi} changes energy per token by {energy} ({e_lo} → "
                   "{e_hi} J/token, 95% intervals apart) and a generation's latency by {latency}.", values,
                   (separated(interval(lo[FACTOR]), interval(hi[FACTOR]), f"batch {b_lo}", f"batch {b_hi}"),),
                   fallback="For {model}, energy per token at batch {b_lo} ({e_lo} J/token) and at batch {b_hi} "
                            "({e_hi} J/token) cannot be told apart here: their 95% intervals overlap (or one has "
                            "a single repeat).")


def _split_finding(model: str, fixed: Any, per: Any, batch: int, measured_j: float) -> Finding:
    """The fixed + per-sequence split of one model's fit, guarded by its adequacy (a Finding)."""
    from nrg.book.findings import num, p_text, pct
    from nrg.book.statement import Finding, fit_adequate, part_within

    fixed_j, per_j = float(fixed["estimate_j"]), float(per["estimate_j"])
    checks = (fit_adequate(float(fixed["r2"])),
              part_within(fixed_j, measured_j, "shared part", f"energy at batch {batch}", "J"),
              part_within(per_j, measured_j, "per-sequence part", f"energy at batch {batch}", "J"))
    share = _shared_share(fixed_j, per_j, batch)
    values = {"model": model, "fixed": num(fixed_j), "per": num(per_j), "low": num(float(per["ci_low_j"])),
              "high": num(float(per["ci_high_j"])), "p": p_text(float(per["p"])), "batch": batch,
              "share": pct(share), "r2": f"{float(fixed['r2']):.2f}"}
    return Finding("For {model}, a generation costs {fixed} J shared by the batch plus {per} J per sequence "
                   "(95% CI {low} to {high}, {p}; R² = {r2}); at batch {batch} the shared part is {share} of "
                   "the energy.", values, checks,
                   fallback="For {model}, the fit of energy = shared + per-sequence × batch is not used to split "
                            "the energy into a shared and a per-sequence part: {why}.")


def _shared_share(fixed_j: float, per_sequence_j: float, batch: int) -> float:
    """The shared part's share of a generation's energy; NaN when a noisy fit makes a part negative."""
    if fixed_j < 0 or per_sequence_j < 0:
        return math.nan
    total = fixed_j + per_sequence_j * batch
    return fixed_j / total if total > 0 else math.nan
