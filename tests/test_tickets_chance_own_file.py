"""Chapter 4 with your own tickets (``tickets_path``): the chance level follows that file's classes.

A small generated file -- three root causes, 80 % of the held-out tickets of
one of them -- makes always answering the majority class score 0.8 accuracy;
the "best" of a ranking whose top accuracy is 0.75 must not be named, though
it would clear the chance level of the embedded synthetic tickets.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from nrg.book import findings as F

CAUSES = {"link_flap": "Interface flapping on the uplink", "config_error": "Wrong VLAN after a change",
          "hardware": "Line card reports a fault"}


def _write(path: Path) -> Path:
    """40 training tickets (32 / 5 / 3) then 10 held out (8 / 1 / 1): eval_fraction 0.2 holds out the last 10."""
    order = ["link_flap"] * 32 + ["config_error"] * 5 + ["hardware"] * 3 + \
            ["link_flap"] * 8 + ["config_error", "hardware"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "response"])
        for i, label in enumerate(order):
            writer.writerow([f"TT-{i:03d} site {i % 7}: {CAUSES[label]} (alarm {i})", label,
                             f"Checked {label.replace('_', ' ')} at site {i % 7}; resolved by step {i % 3}."])
    return path


def _ranked(accuracies: tuple[float, ...]):  # type: ignore[no-untyped-def]
    from nrg.stats import rank_configs

    rows = [{"quant": q, "prune": "none", "energy_j": e, "accuracy": a}
            for q, e, a in zip(("none", "int8-dynamic", "nf4"), (10.0, 7.0, 5.0), accuracies, strict=True)]
    return rank_configs(pd.DataFrame(rows), by=["quant", "prune"], quality="accuracy", w=0.0)


def test_the_chance_level_and_the_best_guard_follow_your_own_tickets(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from nrg.book.chapters.c04_network_tickets import analysis
    from nrg.book.chapters.c04_network_tickets import driver as chapter
    from nrg.book.chapters.c04_network_tickets.chance import chance_quality
    from nrg.tickets.metrics import rouge_l

    own = chapter.Params(tickets_path=str(_write(tmp_path / "tickets.csv")), run_dir=str(tmp_path / "run"),
                        metrics={"root_cause": "accuracy"})
    embedded = chapter.Params(run_dir=str(tmp_path / "run2"), metrics={"root_cause": "accuracy"})
    assert chance_quality(own, "root_cause", "accuracy") == pytest.approx(0.8)      # the majority share held out
    assert chance_quality(own, "root_cause", "macro_f1") == pytest.approx(1 / 3)    # three classes: 1/k
    embedded_chance = chance_quality(embedded, "root_cause", "accuracy")
    assert embedded_chance is not None and embedded_chance < 0.75
    with open(tmp_path / "tickets.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    replies = [r["response"] for r in rows[:5]]
    held_out = [r["response"] for r in rows[-10:][:4]]                              # n_generate = 4
    assert chance_quality(own, "response", "rouge_l") == pytest.approx(
        max(rouge_l([reply] * len(held_out), held_out) for reply in replies))

    ranked = _ranked((0.75, 0.6, 0.5))
    shown = analysis.ranking_section(own, "root_cause", {"inference": ranked})
    said = " ".join(str(x) for x in shown if isinstance(x, analysis.Text))
    assert "does not rise above chance (0.8)" in said and "the best configuration is" not in said
    shown = analysis.ranking_section(embedded, "root_cause", {"inference": ranked})
    said = " ".join(str(x) for x in shown if isinstance(x, analysis.Text))
    assert "With w = 0, the best configuration is quantization none, pruning none" in said
    assert F.ranking_findings(_ranked((0.9, 0.6, 0.5)), chance=0.8).sentences[0].startswith("With w = 0, the best")
