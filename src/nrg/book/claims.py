"""The seed papers' headline claims beside what the book's data show: computed, never typed in.

Why: a reader of a reproduction wants to know, claim by claim, whether the
measurements here support the paper. Each :class:`Claim` is data -- its
chapter, the claim as the paper states it, the paper's value, the function
that computes the same quantity from measured rows, and the :class:`Rule`
that turns the measurement into a verdict (agrees / differs / not measured).
A chapter's claims are the ``CLAIMS`` of its folder's ``claims`` module
(``nrg/book/chapters/c<stem>/claims.py``). :func:`table` evaluates a chapter's
claims on the live run and on every committed GPU reference run, one column
each; nothing in it is written by hand except the papers' values.

The rules (:class:`Rule`), on the measured value's 95 % interval:

- ``overlaps`` (a range or a value the paper reports): agrees when the
  interval overlaps the paper's range (closed; a single value must lie inside
  the interval); differs when it lies wholly outside. An interval wider than
  ``max_width`` would overlap almost anything: not measured.
- ``within`` (a direction the paper reports, "more than 0"): agrees when the
  whole interval lies inside the open range (the data show it); differs when
  it lies wholly on the other side (the data show the opposite); not measured
  when it straddles the bound.
- ``holds``: the value is the fraction of the data's comparisons (e.g. each
  task x phase ranking) in which the claim holds; agrees when it holds in all.

"Not measured" thus means the rows lack what the claim needs (the reason is
shown) or the data cannot settle it. Without an interval (one value) the
point value stands for it.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from nrg.book.claim_measures import Measured, decode_time_share
from nrg.errors import ParameterError, check_choice

if TYPE_CHECKING:
    import pandas as pd

AGREES, DIFFERS, NOT_MEASURED = "agrees", "differs", "not measured"
VERDICTS: tuple[str, ...] = (AGREES, DIFFERS, NOT_MEASURED)
RULE_KINDS: tuple[str, ...] = ("overlaps", "within", "holds")


@dataclasses.dataclass(frozen=True)
class Rule:
    """How a measurement is judged against the paper's range [low, high] (see the module docstring)."""

    kind: str
    low: float = -math.inf
    high: float = math.inf
    max_width: float | None = None   # a wider 95 % interval is too imprecise to judge: "not measured"

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, RULE_KINDS)
        if self.low > self.high:
            raise ParameterError(f"Rule low={self.low} is above high={self.high}")

    def inconclusive(self, measured: Measured) -> str | None:
        """Why a measured value cannot be judged (its interval too wide, or across the bound), else None."""
        if not measured.measured:
            return None
        low, high = measured.interval()
        if self.max_width is not None and high - low > self.max_width:
            return "too imprecise to judge"
        if self.kind == "within" and not (self.low < low and high < self.high) \
                and not (high <= self.low or low >= self.high):
            return "the interval straddles the bound: inconclusive"
        return None

    def verdict(self, measured: Measured) -> str:
        """Agrees / differs / not measured (no value, or one that cannot be judged)."""
        if not measured.measured or self.inconclusive(measured):
            return NOT_MEASURED
        low, high = measured.interval()
        if self.kind == "overlaps":
            ok = low <= self.high and high >= self.low
        elif self.kind == "within":
            ok = self.low < low and high < self.high
        else:
            ok = measured.value is not None and measured.value >= 1.0
        return AGREES if ok else DIFFERS

    def _fmt(self, x: float, unit: str) -> str:
        return f"{x * 100:g} %" if unit == "%" else f"{x:g} {unit}".strip()

    def describe(self, unit: str = "%") -> str:
        """The rule in words, for the table."""
        if self.kind == "holds":
            return "agrees when it holds in every comparison the data allow; differs otherwise"
        if self.kind == "within":
            bound = f"above {self._fmt(self.low, unit)}" if math.isinf(self.high) else \
                f"below {self._fmt(self.high, unit)}" if math.isinf(self.low) else \
                f"inside ({self._fmt(self.low, unit)}, {self._fmt(self.high, unit)})"
            return (f"agrees when the whole 95 % interval lies {bound}; differs when it lies wholly on the "
                    "other side; not measured when it straddles the bound")
        target = self._fmt(self.low, unit) if self.low == self.high else \
            f"{self._fmt(self.low, unit)}–{self._fmt(self.high, unit)}"
        text = f"agrees when the 95 % interval overlaps {target}; differs when it lies outside"
        if self.max_width is not None:
            width = f"{self.max_width * 100:g} percentage points" if unit == "%" else self._fmt(self.max_width, unit)
            text += f"; not measured when the interval is wider than {width}"
        return text


@dataclasses.dataclass(frozen=True)
class Claim:
    """One headline claim of a seed paper, with how to compute and judge it on measured rows."""

    chapter: str
    key: str
    text: str
    paper: str
    source: str
    compute: Callable[[pd.DataFrame, Mapping[str, Any]], Measured]
    rule: Rule
    unit: str = "%"

    def evaluate(self, rows: pd.DataFrame | None, params: Mapping[str, Any] | None = None) -> tuple[Measured, str]:
        """The measured value on ``rows`` and its verdict; missing rows are "not measured", never an error."""
        if rows is None or len(rows) == 0:
            measured = Measured.missing("no rows")
        else:
            try:
                measured = self.compute(rows, params or {})
            except ParameterError as exc:
                measured = Measured.missing(str(exc))
        return measured, self.rule.verdict(measured)


# ------------------------------------------------------------------ the claims, as data

MALIAKEL, TRAN = "Maliakel et al. 2025", "Tran et al. 2025"
#: The ML.ENERGY benchmark (arXiv 2505.06371) and its v3 data description (arXiv 2601.22076): the published
#: serving curves beside chapters 5 and 6 (src/nrg/serving/data/README.md, ../shared/data/published/).
CHUNG = "Chung et al. 2026, ML.ENERGY v3"
#: What ML.ENERGY v3 reports for batching (Llama-3.1-8B bf16 on one H100, GPU energy, steady state).
CHUNG_BATCHING = "falls as the batch grows (Llama-3.1-8B, one H100: 0.455 → 0.070 J/token from max_num_seqs 8 to 512)"
MAX_WIDTH = 0.30   # a fraction claim is judged only on a 95 % interval at most 30 points wide


def reported(low: float, high: float, step: float = 0.01) -> tuple[float, float]:
    """A range as the paper rounds it: whole percent (``step``) means half a percent either side."""
    return low - step / 2, high + step / 2


def decode_share_claim(chapter: str) -> Claim:
    """Maliakel et al.'s "decode dominates inference time", as checked by ``chapter`` (more than one checks it)."""
    return Claim(chapter, "decode_share",
                 "Decode dominates inference time: share of each generation's time spent after the first token",
                 "77–91 %", MALIAKEL, decode_time_share, Rule("overlaps", *reported(0.77, 0.91), max_width=MAX_WIDTH))


def claims_of(chapter: str) -> list[Claim]:
    """The claims a chapter checks: the ``CLAIMS`` of its folder's ``claims`` module."""
    from nrg.book.chapters import part

    claims: tuple[Claim, ...] = part(chapter, "claims").CLAIMS
    return list(claims)


# ------------------------------------------------------------------ the table


def source_label(rows: pd.DataFrame | None, name: str) -> str:
    """A column title: where the rows were measured and how their energy was obtained."""
    if rows is None or len(rows) == 0:
        return name
    def distinct(col: str) -> str:
        return ", ".join(sorted({str(v) for v in rows[col].dropna()})) if col in rows.columns else ""
    where = distinct("gpu") or distinct("device") or "?"
    method = distinct("energy_method") or "unknown"
    return f"{name} ({where}; energy {method})"


@dataclasses.dataclass(frozen=True)
class ClaimsTable:
    """The claims of one chapter beside each data source, with a verdict per source; shown as Markdown."""

    frame: pd.DataFrame
    rules: tuple[str, ...]

    def _repr_markdown_(self) -> str:
        cols = list(self.frame.columns)
        def cell(v: Any) -> str:
            return str(v).replace("|", "\\|").replace("\n", " ")
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.frame.itertuples(index=False)]
        return "\n".join(lines) + "\n\n" + " ".join(self.rules)


def _sources(live: pd.DataFrame | None, reference: Mapping[str, pd.DataFrame]
             ) -> list[tuple[str, pd.DataFrame | None, str]]:
    """(column title, rows, why there are none) for the live run and each GPU run (or their absence)."""
    out: list[tuple[str, pd.DataFrame | None, str]] = [
        (source_label(live, "this run"), live, "nothing was measured live")]
    out += [(source_label(rows, f"reference {gpu}"), rows, "the reference run has no rows")
            for gpu, rows in reference.items()]
    if not reference:
        out.append(("GPU reference", None, "no GPU reference data committed"))
    return out


def table(chapter: str, live: pd.DataFrame | None, reference: Mapping[str, pd.DataFrame],
          params: Mapping[str, Any] | None = None) -> ClaimsTable:
    """Each claim of ``chapter``: the paper's value, then value and verdict on the live run and each GPU run."""
    import pandas as pd

    sources = _sources(live, reference)
    records = []
    for claim in claims_of(chapter):
        record = {"claim": claim.text, "paper": f"{claim.paper} ({claim.source})",
                  "rule": claim.rule.describe(claim.unit)}
        for title, rows, why_none in sources:
            measured, verdict = claim.evaluate(rows, params)
            text = measured.text if rows is not None and len(rows) else f"not measured: {why_none}"
            why = claim.rule.inconclusive(measured)
            text += f" -- {why}" if why else ""
            record[title] = text
            record[f"verdict ({title.split(' (')[0]})"] = verdict
        records.append(record)
    notes = ["Each verdict follows the rule in its row and is computed from the data when the page is built."]
    methods = {str(m) for _, rows, _ in sources if rows is not None and "energy_method" in rows.columns
               for m in rows["energy_method"].dropna()}
    if "estimated" in methods:
        notes.append("Energy marked `estimated` is an estimate from CPU time (no energy counter here), "
                     "not a measurement; time-based claims do not depend on it.")
    return ClaimsTable(pd.DataFrame(records), tuple(notes))


def section(chapter: str, live: pd.DataFrame | None, params: Mapping[str, Any]) -> ClaimsTable:
    """The claims table of a chapter: the live rows and the committed reference runs of ``params``."""
    from nrg.book import reference_section as reference

    return table(chapter, live, reference.load(params), params)
