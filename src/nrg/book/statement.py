"""A finding is a checked statement: a sentence that is said only when the data carry it.

Why: a generated sentence reads as a conclusion ("the best configuration is
...", "the most efficient size is ...", "the shared part is 91 % of the
energy"). Each one rests on preconditions -- enough configurations, an
interval that separates, a fit that is adequate -- and a reader cannot see
whether they held. A :class:`Finding` carries its template, the values that
fill it and the :class:`Check` s evaluated on the data; :meth:`Finding.text`
gives the sentence when every check passed, else the fallback that says what
cannot be concluded and why (or nothing). Filling refuses empty slots, so
"Of the variance in macro_f1: ." can never be printed.

The checks here are the shared guards (:func:`at_least`, :func:`separated`,
:func:`above`, :func:`fit_adequate`, :func:`part_within`,
:func:`within_spread`); every module that writes sentences for the book
(:mod:`nrg.book.findings`, :mod:`nrg.book.claims`, :mod:`nrg.book.found`, the
chapter analyses) builds its guarded sentences from them.
"""
from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nrg.errors import ParameterError

#: The least R² for a fitted share to be quoted (a worse fit's parts are not trusted).
MIN_R2 = 0.9

# A slot that was filled with nothing: ": .", "( )", ", .", "in .", a dangling "{name}", "nan".
_EMPTY = re.compile(r"(:\s*[.;,)]|\(\s*\)|,\s*[.;)]|\b(of|in|for|is|are|from|to)\s+[.;,]|\{\w*\}"
                    r"|\bnan\b|\bNaN\b)")


@dataclass(frozen=True)
class Check:
    """One precondition of a finding, evaluated on the data; ``why`` says what fails when it does not hold."""

    name: str
    passed: bool
    why: str = ""


@dataclass(frozen=True)
class Finding:
    """A sentence template, its values and its checks; :meth:`text` says it only when all checks pass.

    ``fallback`` (a template, filled from ``values`` plus ``why``, the failed
    checks' reasons joined) is what is said instead; None says nothing.
    """

    template: str
    values: Mapping[str, Any] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    fallback: str | None = None

    @property
    def failed(self) -> tuple[Check, ...]:
        """The checks that did not hold."""
        return tuple(c for c in self.checks if not c.passed)

    @property
    def holds(self) -> bool:
        """Whether every precondition held."""
        return not self.failed

    def text(self) -> str | None:
        """The sentence, the fallback (what cannot be concluded), or None."""
        if self.holds:
            return fill(self.template, self.values)
        if self.fallback is None:
            return None
        why = "; ".join(c.why for c in self.failed if c.why)
        return fill(self.fallback, {**self.values, "why": why})


def fill(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with its ``{slots}`` filled; ParameterError when a slot is missing or empty.

    Why raise: a sentence with a hole ("Of the variance in macro_f1: .") is a
    defect of the code that wrote it, and must fail a test, not reach a page.
    """
    slots = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    empty = [s for s in slots if s not in values or _is_empty(values[s])]
    if empty:
        raise ParameterError(f"sentence {template!r} has empty slot(s) {empty}")
    text = template.format(**values)
    holes = empty_slots(text)
    if holes:
        raise ParameterError(f"sentence {text!r} has an empty slot near {holes}")
    return text


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and not math.isfinite(value):
        return True
    return isinstance(value, str) and not value.strip()


def empty_slots(text: str) -> list[str]:
    """The places in ``text`` that look like a slot filled with nothing (empty list: none)."""
    return [m.group(0) for m in _EMPTY.finditer(text)]


def say(findings: Iterable[Finding | str | None]) -> list[str]:
    """The sentences of ``findings`` (plain strings pass through, checked for holes; None is skipped)."""
    out = []
    for item in findings:
        text = item.text() if isinstance(item, Finding) else item
        if text:
            if empty_slots(text):
                raise ParameterError(f"sentence {text!r} has an empty slot near {empty_slots(text)}")
            out.append(text)
    return out


# ------------------------------------------------------------------ the shared guards


def at_least(count: int, minimum: int, what: str) -> Check:
    """``count`` >= ``minimum`` (e.g. three configurations for a ranking)."""
    said = what.replace("configurations", "configuration", 1) if count == 1 else what
    return Check(f"at least {minimum} {what}", count >= minimum,
                 f"only {count} {said} (at least {minimum} are needed)")


def separated(best: tuple[float, float], other: tuple[float, float], best_name: str, other_name: str) -> Check:
    """The two 95 % intervals do not overlap (a "most efficient" / "cheapest" must clear its runner-up)."""
    ok = all(math.isfinite(x) for x in (*best, *other)) and (best[1] < other[0] or other[1] < best[0])
    return Check("intervals separate", ok, f"{best_name} is not distinguishable from {other_name} "
                                           "(their 95 % intervals overlap)")


def above(low: float, floor: float, what: str, floor_name: str) -> Check:
    """``low`` (the lower end of an interval, or a value) lies above ``floor`` (e.g. chance)."""
    ok = math.isfinite(low) and math.isfinite(floor) and low > floor
    return Check(f"{what} above {floor_name}", ok, f"{what} does not rise above {floor_name}")


def fit_adequate(r2: float, minimum: float = MIN_R2) -> Check:
    """The fit explains at least ``minimum`` of the variance (its parts are then worth quoting)."""
    ok = math.isfinite(r2) and r2 >= minimum
    shown = f"{r2:.2f}" if math.isfinite(r2) else "not available"
    return Check("fit adequate", ok, f"the fit is poor (R² = {shown}, below {minimum:g})")


def part_within(part: float, whole: float, part_name: str, whole_name: str, unit: str = "") -> Check:
    """A fitted part is non-negative and no larger than the measured whole it is a part of."""
    u = f" {unit}" if unit else ""
    if not (math.isfinite(part) and math.isfinite(whole)):
        return Check("part within whole", False, f"the fitted {part_name} or the measured {whole_name} is missing")
    if part < 0:
        return Check("part within whole", False, f"the fitted {part_name} is negative ({part:.3g}{u})")
    return Check("part within whole", part <= whole, f"the fitted {part_name} ({part:.3g}{u}) exceeds the "
                                                     f"measured {whole_name} ({whole:.3g}{u})")


def within_spread(difference: float, spread: float) -> Check:
    """``|difference|`` is no larger than ``spread`` (e.g. twice the pooled standard deviation)."""
    ok = math.isfinite(difference) and math.isfinite(spread) and abs(difference) <= spread
    return Check("within spread", ok, f"the difference ({abs(difference):.3g}) exceeds the spread ({spread:.3g})")
