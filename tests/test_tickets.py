"""The synthetic ticket generator (determinism, class balance, noise) and the loader's errors."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from nrg.errors import ParameterError
from nrg.tickets.generator import LABELS, describe, generate_tickets, to_frame
from nrg.tickets.loader import load_tickets


def test_at_least_eight_root_causes_with_the_issue_classes() -> None:
    assert len(LABELS) >= 8
    assert {"fibre_cut", "power_failure", "hardware_fault", "software_defect", "misconfiguration",
            "congestion", "radio_interference", "transmission_backhaul"} <= set(LABELS)


def test_same_seed_same_tickets_different_seed_different() -> None:
    a = generate_tickets(50, seed=7)
    b = generate_tickets(50, seed=7)
    c = generate_tickets(50, seed=8)
    assert [(t.text, t.label, t.response) for t in a] == [(t.text, t.label, t.response) for t in b]
    assert [t.text for t in a] != [t.text for t in c]


def test_balanced_by_default() -> None:
    counts = Counter(t.label for t in generate_tickets(400, seed=1))
    assert set(counts) == set(LABELS)
    assert max(counts.values()) - min(counts.values()) <= 1


def test_weights_are_respected() -> None:
    weights = {label: 1.0 for label in LABELS} | {"fibre_cut": 5.0, "congestion": 0.0}
    tickets = generate_tickets(300, seed=2, weights=weights)
    counts = Counter(t.label for t in tickets)
    total = sum(weights.values())
    for label, weight in weights.items():
        assert counts.get(label, 0) == pytest.approx(300 * weight / total, abs=1)
    assert "congestion" not in counts


def test_tickets_look_like_operator_tickets() -> None:
    tickets = generate_tickets(80, seed=3, noise=0.0)
    text = "\n".join(t.text for t in tickets)
    for token in ("TT-", "UTC", "Severity", "Alarms:", "KPIs:", "NOC note:", "dBm", "ms"):
        assert token in text
    assert any(s in text for s in ("eNodeB", "gNodeB"))
    assert all(t.response.startswith("Root cause:") for t in tickets)
    assert all(t.fields["noise"] == "" for t in tickets)


def test_noise_controls_how_many_tickets_are_perturbed() -> None:
    clean = generate_tickets(200, seed=4, noise=0.0)
    noisy = generate_tickets(200, seed=4, noise=0.5)
    kinds = Counter(k for t in noisy for k in t.fields["noise"].split(",") if k)
    assert not any(t.fields["noise"] for t in clean)
    for kind in ("misleading", "missing", "typos"):
        assert 60 <= kinds[kind] <= 140  # ~100 expected for p=0.5
    with pytest.raises(ParameterError, match="noise"):
        generate_tickets(10, noise=1.5)


@pytest.mark.parametrize("weights", [{"volcano": 1.0}, [1.0, 2.0], {"fibre_cut": -1.0}, [0.0] * 8])
def test_bad_weights_name_the_problem(weights: object) -> None:
    with pytest.raises(ParameterError, match="weights"):
        generate_tickets(10, weights=weights)  # type: ignore[arg-type]


def test_describe_is_a_markdown_table_of_classes_and_fields() -> None:
    text = describe()
    assert text.startswith("| root cause |")
    for label in LABELS:
        assert f"`{label}`" in text
    for name in ("ticket_id", "kpis", "notes", "response"):
        assert f"`{name}`" in text


def test_loader_round_trip_csv_and_jsonl(tmp_path: Path) -> None:
    tickets = generate_tickets(6, seed=5)
    frame = to_frame(tickets).rename(columns={"text": "body", "label": "cause", "response": "fix"})
    frame.to_csv(tmp_path / "t.csv", index=False)
    loaded = load_tickets(tmp_path / "t.csv", text_column="body", label_column="cause", response_column="fix")
    assert [(t.text, t.label, t.response) for t in loaded] == [(t.text, t.label, t.response) for t in tickets]
    lines = [json.dumps({"text": t.text, "label": t.label}) for t in tickets]
    (tmp_path / "t.jsonl").write_text("\n".join(lines))
    loaded = load_tickets(tmp_path / "t.jsonl", response_column=None)
    assert [t.label for t in loaded] == [t.label for t in tickets]


def test_loader_missing_column_names_it_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("text,cause\nLOS on port,fibre_cut\n")
    with pytest.raises(ParameterError, match=r"mine\.csv.*label_column='label'.*response_column"):
        load_tickets(path)


def test_loader_empty_value_names_column_and_row(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"text": "LOS", "label": "fibre_cut", "response": "spliced"}) + "\n"
                    + json.dumps({"text": "  ", "label": "power_failure", "response": "x"}) + "\n")
    with pytest.raises(ParameterError, match=r"mine\.jsonl: row 2 .*'text'"):
        load_tickets(path)


def test_loader_rejects_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="csv"):
        load_tickets(tmp_path / "t.xlsx")
    with pytest.raises(ParameterError, match="does not exist"):
        load_tickets(tmp_path / "absent.csv")
