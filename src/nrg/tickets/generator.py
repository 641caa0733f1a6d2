"""Synthetic fault tickets of a mobile / fixed operator network.

Why synthetic: operators do not publish their trouble tickets, yet the
fine-tuning study (root-cause classification and response generation) needs
data whose labels and references are known. :func:`generate_tickets` writes
tickets the way a NOC does -- a header with ticket number, UTC timestamp and
severity, a site or equipment identifier (eNodeB/gNodeB IDs, router hostnames,
OLT/ONT, DWDM shelf/slot/port), the active alarms (LOS, LOF, AIS, BER-SD,
"Cell Out of Service", "S1 link down", "mains failure", ...), KPI readings
(packet loss %, RSRP dBm, SINR dB, PRB utilisation %, latency ms, BER) and a
free-text note -- together with the root cause (one of eight classes) and a
reference response (what the engineer found and did).

Two knobs make the task as easy or as hard as a study needs:

* ``weights`` -- the share of each root cause (class balance);
* ``noise`` -- the probability, per ticket and per kind, of typos, a missing
  field, and a misleading symptom borrowed from another root cause.

The same ``seed`` gives the same tickets on every machine. Bring your own
tickets with :func:`nrg.tickets.loader.load_tickets` (CSV or JSONL; column names configurable).
:func:`describe` returns the classes and fields as a markdown table.
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from nrg.errors import ParameterError, check_positive
from nrg.tickets.vocabulary import EQUIPMENT_KINDS, FIELD_DOCS, KPIS, ROOT_CAUSES, RootCause

if TYPE_CHECKING:
    import pandas as pd

LABELS: tuple[str, ...] = tuple(rc.label for rc in ROOT_CAUSES)
_BY_LABEL: dict[str, RootCause] = {rc.label: rc for rc in ROOT_CAUSES}
_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
_CITIES = ("LON", "MAN", "BHM", "LDS", "GLA", "BRS", "CDF", "NCL")


@dataclass(frozen=True)
class Ticket:
    """One ticket: the text a model reads, its root cause and the reference response."""

    ticket_id: str
    text: str
    label: str
    response: str
    fields: dict[str, str] = field(default_factory=dict, compare=False)


def check_noise(noise: float) -> None:
    """Raise :class:`ParameterError` unless ``noise`` is a probability."""
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise <= 1:
        raise ParameterError(f"noise={noise!r} is not valid; it must be a probability in [0, 1]")


def class_weights(weights: Mapping[str, float] | Sequence[float] | None) -> dict[str, float]:
    """Normalised weight per label; ``None`` means balanced. Unknown labels list the valid."""
    if weights is None:
        return {label: 1 / len(LABELS) for label in LABELS}
    if isinstance(weights, Mapping):
        unknown = [k for k in weights if k not in _BY_LABEL]
        if unknown:
            raise ParameterError(f"weights has unknown label(s) {unknown}; valid labels: {list(LABELS)}")
        raw = {label: weights.get(label, 0.0) for label in LABELS}
    else:
        if len(weights) != len(LABELS):
            raise ParameterError(
                f"weights has {len(weights)} values; it needs one per label, in order: {list(LABELS)}")
        raw = dict(zip(LABELS, weights, strict=True))
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in raw.values()):
        raise ParameterError(f"weights={weights!r} is not valid; each weight must be a number >= 0")
    total = sum(raw.values())
    if total <= 0:
        raise ParameterError(f"weights={weights!r} is not valid; at least one weight must be > 0")
    return {label: value / total for label, value in raw.items()}


def _allocate(n: int, shares: Mapping[str, float]) -> list[str]:
    """Labels in exact proportion to ``shares`` (largest remainder), so balance is not left to luck."""
    exact = {label: n * share for label, share in shares.items()}
    counts = {label: int(value) for label, value in exact.items()}
    rest = sorted(shares, key=lambda label: (counts[label] - exact[label], LABELS.index(label)))
    for label in rest[: n - sum(counts.values())]:
        counts[label] += 1
    return [label for label in LABELS for _ in range(counts[label])]


def _site(rng: random.Random, kind: str) -> str:
    city = rng.choice(_CITIES)
    if kind == "enodeb":
        return f"eNodeB {rng.randint(10000, 99999)} ({city}{rng.randint(1, 999):03d})"
    if kind == "gnodeb":
        return f"gNodeB {rng.randint(100000, 999999)} ({city}{rng.randint(1, 999):03d})"
    if kind == "router":
        return f"rtr-{rng.choice(('pe', 'agg', 'csr'))}{rng.randint(1, 40):02d}.{city.lower()}{rng.randint(1, 9)}"
    if kind == "olt":
        return f"OLT-{city}-{rng.randint(1, 60):02d} PON 0/{rng.randint(1, 16)}/{rng.randint(0, 15)} ONT {rng.randint(1, 64)}"
    if kind == "dwdm":
        return f"DWDM {city}-ROADM{rng.randint(1, 9)} shelf {rng.randint(1, 4)}/slot {rng.randint(1, 20)}/port {rng.randint(1, 8)}"
    if kind == "microwave":
        return f"MW link {city}{rng.randint(1, 999):03d}-{city}{rng.randint(1, 999):03d} ODU {rng.randint(1, 2)}"
    return f"{city}{rng.randint(1, 999):03d} rectifier shelf {rng.randint(1, 3)}"


def _kpi_text(rng: random.Random, name: str, abnormal: bool) -> str:
    unit, normal_range, bad_range = KPIS[name]
    low, high = bad_range if abnormal else normal_range
    value = rng.uniform(low, high)
    number = f"{value:.1e}" if name == "BER" else f"{value:.1f}"
    return f"{name} {number}{(' ' + unit) if unit and unit != '%' else unit}"


def _fill(rng: random.Random, template: str) -> str:
    return template.format(km=rng.randint(2, 48), hh=f"{rng.randint(0, 23):02d}",
                           mm=f"{rng.randint(0, 59):02d}", chg=rng.randint(10000, 99999))


def _fields(rng: random.Random, rc: RootCause, index: int) -> dict[str, str]:
    created = _EPOCH + timedelta(minutes=rng.randint(0, 60 * 24 * 365))
    n_alarms = rng.randint(1, 2)
    alarms = rng.sample(rc.alarms, n_alarms)
    normal = [k for k in KPIS if k not in rc.kpis]
    kpis = [_kpi_text(rng, k, True) for k in rc.kpis] + [_kpi_text(rng, k, False) for k in rng.sample(normal, 2)]
    rng.shuffle(kpis)
    return {
        "ticket_id": f"TT-{index + 1:06d}",
        "created_at": created.strftime("%Y-%m-%d %H:%M UTC"),
        "severity": rng.choice(("Critical", "Major", "Major", "Minor")),
        "site": _site(rng, rng.choice(rc.equipment)),
        "alarms": "; ".join(alarms),
        "kpis": ", ".join(kpis),
        "notes": _fill(rng, rng.choice(rc.notes)),
    }


def _typos(rng: random.Random, text: str) -> str:
    """Swap or drop letters in a few words, as a hurried engineer would."""
    words = text.split(" ")
    for i in rng.sample(range(len(words)), max(1, len(words) // 12)):
        w = words[i]
        if len(w) > 3:
            j = rng.randrange(len(w) - 1)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:] if rng.random() < 0.5 else w[:j] + w[j + 1:]
    return " ".join(words)


def _apply_noise(rng: random.Random, fields: dict[str, str], rc: RootCause, noise: float) -> list[str]:
    kinds: list[str] = []
    if rng.random() < noise:  # misleading symptom from another root cause
        other = _BY_LABEL[rng.choice([label for label in LABELS if label != rc.label])]
        fields["alarms"] += "; " + rng.choice(other.alarms)
        kinds.append("misleading")
    if rng.random() < noise:  # a field the NOC left empty
        fields[rng.choice(("alarms", "kpis", "notes", "site"))] = ""
        kinds.append("missing")
    if rng.random() < noise:
        fields["notes"] = _typos(rng, fields["notes"]) if fields["notes"] else ""
        fields["alarms"] = _typos(rng, fields["alarms"]) if fields["alarms"] else ""
        kinds.append("typos")
    return kinds


def _render(fields: Mapping[str, str]) -> str:
    lines = [f"{fields['ticket_id']} | {fields['created_at']} | Severity: {fields['severity']}"]
    for key, title in (("site", "Site"), ("alarms", "Alarms"), ("kpis", "KPIs"), ("notes", "NOC note")):
        if fields[key]:
            lines.append(f"{title}: {fields[key]}")
    return "\n".join(lines)


def _response(rng: random.Random, rc: RootCause, site: str) -> str:
    cause = _fill(rng, rng.choice(rc.causes))
    action = _fill(rng, rng.choice(rc.actions))
    where = f" at {site}" if site else ""
    return f"Root cause: {cause}{where}. Action: {action}. Status: alarms cleared, KPIs back to normal, ticket closed."


def generate_tickets(n: int, seed: int = 0, weights: Mapping[str, float] | Sequence[float] | None = None,
                     noise: float = 0.1) -> list[Ticket]:
    """``n`` tickets, labels in the proportions of ``weights`` (balanced when None), shuffled.

    ``noise`` is the probability, for each ticket and each kind independently, of a
    misleading symptom, a missing field and typos; the kinds applied are in
    ``ticket.fields["noise"]``.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise ParameterError(f"n={n!r} is not valid; it must be an integer > 0")
    check_positive("n", n)
    check_noise(noise)
    shares = class_weights(weights)
    rng = random.Random(seed)
    labels = _allocate(n, shares)
    rng.shuffle(labels)
    tickets = []
    for index, label in enumerate(labels):
        rc = _BY_LABEL[label]
        fields = _fields(rng, rc, index)
        response = _response(rng, rc, fields["site"])
        fields["noise"] = ",".join(_apply_noise(rng, fields, rc, noise))
        tickets.append(Ticket(fields["ticket_id"], _render(fields), label, response, fields))
    return tickets


def to_frame(tickets: Sequence[Ticket]) -> pd.DataFrame:
    """The tickets as a pandas DataFrame: id, text, label, response and the structured fields."""
    import pandas as pd

    rows = [{**t.fields, "ticket_id": t.ticket_id, "text": t.text, "label": t.label,
             "response": t.response} for t in tickets]
    return pd.DataFrame(rows)


def describe() -> str:
    """Markdown tables of the root-cause classes and the ticket fields (for the book)."""
    lines = ["| root cause | description | typical alarms | abnormal KPIs |", "|---|---|---|---|"]
    for rc in ROOT_CAUSES:
        lines.append(f"| `{rc.label}` | {rc.description} | {', '.join(rc.alarms[:4])} | {', '.join(rc.kpis)} |")
    lines += ["", "| field | meaning |", "|---|---|"]
    lines += [f"| `{name}` | {meaning} |" for name, meaning in FIELD_DOCS]
    lines += ["", f"Equipment kinds: {', '.join(EQUIPMENT_KINDS)}. "
              "Noise kinds: misleading symptom, missing field, typos (each with probability `noise`)."]
    return "\n".join(lines)
