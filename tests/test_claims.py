"""The papers' claims beside the data: each rule, each computation on constructed rows, each verdict.

Every computation is checked on DataFrames built here so that the expected
verdict is known: one set of rows that agrees with the paper, one that
differs, one that lacks what the claim needs.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nrg.book import claims
from nrg.book.claim_measures import Measured, t_interval
from nrg.book.claims import AGREES, DIFFERS, NOT_MEASURED, Rule
from nrg.errors import ParameterError


def _claim(chapter: str, key: str) -> claims.Claim:
    return next(c for c in claims.claims_of(chapter) if c.key == key)


# ---------------------------------------------------------------- rules


@pytest.mark.parametrize("interval, verdict", [
    ((0.80, 0.78, 0.82), AGREES),          # inside the range
    ((0.70, 0.60, 0.78), AGREES),          # overlaps its lower edge
    ((0.60, 0.55, 0.65), DIFFERS),         # wholly below
    ((0.95, 0.92, 0.98), DIFFERS),         # wholly above
    ((0.80, None, None), AGREES),          # no interval: the point value
    ((0.50, None, None), DIFFERS),
    ((0.50, 0.10, 0.90), NOT_MEASURED),    # wider than max_width: an overlap says nothing
])
def test_overlaps_rule(interval, verdict):
    rule = Rule("overlaps", 0.77, 0.91, max_width=0.3)
    assert rule.verdict(Measured(*interval)) == verdict


@pytest.mark.parametrize("interval, verdict", [
    ((2.0, 1.0, 3.0), AGREES),             # the whole interval above 0
    ((-2.0, -3.0, -1.0), DIFFERS),         # wholly on the other side
    ((0.5, -1.0, 2.0), NOT_MEASURED),      # straddles 0: inconclusive
    ((0.0, 0.0, 1.0), NOT_MEASURED),       # touches the open bound
])
def test_within_rule(interval, verdict):
    assert Rule("within", 0.0, math.inf).verdict(Measured(*interval)) == verdict


def test_holds_rule_and_missing_values():
    rule = Rule("holds")
    assert rule.verdict(Measured(1.0)) == AGREES and rule.verdict(Measured(0.5)) == DIFFERS
    assert rule.verdict(Measured.missing("no rows")) == NOT_MEASURED
    assert rule.verdict(Measured(float("nan"))) == NOT_MEASURED


def test_rules_are_described_and_checked():
    assert "overlaps 77 %–91 %" in Rule("overlaps", 0.77, 0.91).describe()
    assert "wider than 30 percentage points" in Rule("overlaps", 0.77, 0.91, max_width=0.3).describe()
    assert "above 0 J/token" in Rule("within", 0.0, math.inf).describe("J/token")
    with pytest.raises(ParameterError, match="kind"):
        Rule("roughly")
    with pytest.raises(ParameterError, match="above high"):
        Rule("overlaps", 1.0, 0.0)


def test_t_interval():
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and low == pytest.approx(2 - 4.302653 / math.sqrt(3)) and high == pytest.approx(2 + 4.302653 / math.sqrt(3))
    assert t_interval([5.0]) == (5.0, None, None)


def test_paper_values_are_judged_with_their_rounding():
    rule = _claim("03_dvfs", "dvfs_saving").rule
    assert (rule.low, rule.high) == pytest.approx((0.415, 0.425))
    assert rule.verdict(Measured(0.421, 0.4205, 0.4215)) == AGREES       # "42 %" as the paper rounds it
    assert rule.verdict(Measured(0.43, 0.428, 0.432)) == DIFFERS
    assert "41.5 %–42.5 %" in rule.describe()


def test_every_chapter_has_claims_and_unknown_chapters_are_refused():
    for chapter in ("01_model_comparison", "02_sequence_length", "03_dvfs", "04_network_tickets",
                    "05_batch_size", "06_serving"):
        assert 1 <= len(claims.claims_of(chapter)) <= 2
    with pytest.raises(ParameterError, match="chapter"):
        claims.claims_of("05_nothing")


# ---------------------------------------------------------------- decode's share of inference time


def _generation(shares: dict[str, list[float]], generate_s: float = 2.0) -> pd.DataFrame:
    rows = []
    for cell, per_repeat in shares.items():
        for repeat, share in enumerate(per_repeat):
            for phase, time_s in (("prefill", generate_s * (1 - share)), ("decode", generate_s * share),
                                  ("generate", generate_s)):
                rows.append({"cell_id": cell, "repeat": repeat, "phase": phase, "time_s": time_s, "status": "ok"})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("shares, verdict", [
    ({"a": [0.85, 0.86], "b": [0.80, 0.81], "c": [0.88, 0.87]}, AGREES),
    ({"a": [0.50, 0.52], "b": [0.55, 0.54], "c": [0.48, 0.50]}, DIFFERS),
    ({"a": [0.82, 0.84, 0.83]}, AGREES),                       # one cell: the interval over its repeats
])
def test_decode_share(shares, verdict):
    claim = _claim("02_sequence_length", "decode_share")
    measured, got = claim.evaluate(_generation(shares))
    expected = np.mean([np.mean(v) for v in shares.values()]) if len(shares) > 1 else np.mean(shares["a"])
    assert measured.value == pytest.approx(expected) and got == verdict
    assert measured.low is not None and measured.low < measured.value < measured.high


def test_decode_share_from_generate_minus_prefill_and_failed_rows_ignored():
    rows = _generation({"a": [0.8, 0.8], "b": [0.9, 0.9]})
    rows = rows[rows["phase"] != "decode"]
    failed = pd.DataFrame([{"cell_id": "c", "repeat": 0, "phase": "generate", "time_s": 99.0, "status": "failed"}])
    measured = claims.decode_time_share(pd.concat([rows, failed]), {})
    assert measured.value == pytest.approx(0.85)


def test_decode_share_not_measured_without_phases():
    rows = _generation({"a": [0.8]})
    measured, verdict = _claim("01_model_comparison", "decode_share").evaluate(rows[rows["phase"] == "generate"])
    assert verdict == NOT_MEASURED and "no generation split into prefill and decode" in measured.text
    assert _claim("01_model_comparison", "decode_share").evaluate(None)[1] == NOT_MEASURED


# ---------------------------------------------------------------- output length dominates


def _lengths(b_in: float, b_out: float, model: str = "m", inputs=(16, 32, 64), outputs=(4, 8, 16)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"model": model, "phase": "generate", "status": "ok", "input_tokens": i, "output_tokens": o,
             "energy_j": 0.5 + b_in * i + b_out * o + rng.normal(0, 0.01)}
            for i in inputs for o in outputs for _ in range(2)]
    return pd.DataFrame(rows)


def test_output_tokens_cost_more():
    claim = _claim("02_sequence_length", "output_costs_more")
    measured, verdict = claim.evaluate(_lengths(b_in=0.001, b_out=0.05))
    assert verdict == AGREES and measured.value == pytest.approx(0.049, abs=0.003)
    measured, verdict = claim.evaluate(_lengths(b_in=0.05, b_out=0.001))
    assert verdict == DIFFERS and measured.high < 0
    # two models: judged on the least favourable one
    both = pd.concat([_lengths(0.001, 0.05, "good"), _lengths(0.05, 0.001, "bad")])
    measured, verdict = claim.evaluate(both)
    assert verdict == DIFFERS and "good:" in measured.text and "bad:" in measured.text


def test_output_vs_input_not_measured_when_a_length_is_fixed():
    measured, verdict = _claim("02_sequence_length", "output_costs_more").evaluate(_lengths(0.001, 0.05, inputs=(16,)))
    assert verdict == NOT_MEASURED and "do not both vary" in measured.text


# ---------------------------------------------------------------- batch size: energy per token


def _batches(per_token: dict[int, float], spread: float = 0.01, model: str = "m") -> pd.DataFrame:
    """Generate rows per batch size, 4 repeats of mean ``per_token[b]``, and flat prefill rows that must be ignored."""
    offsets = (1.0, -1.0, 0.5, -0.5)     # a known spread around the mean, no chance involved
    rows = [{"model": model, "phase": phase, "status": "ok", "batch_size": b, "repeat": r,
             "energy_per_token_j": e * (1 + spread * offsets[r]) if phase == "generate" else 5.0}
            for b, e in per_token.items() for r in range(4) for phase in ("generate", "prefill")]
    rows.append({"model": model, "phase": "generate", "status": "failed", "batch_size": max(per_token),
                 "repeat": 0, "energy_per_token_j": 1e6})   # a failed cell's row counts for nothing
    return pd.DataFrame(rows)


def test_batch_size_claim_compares_the_largest_batch_with_the_smallest():
    claim = _claim("05_batch_size", "batching_saves")
    measured, verdict = claim.evaluate(_batches({1: 1.0, 4: 0.5, 8: 0.25}))
    assert verdict == AGREES and measured.value == pytest.approx(-0.75, abs=0.02)
    assert "batch 8 vs 1" in measured.text and measured.high is not None and measured.high < 0
    measured, verdict = claim.evaluate(_batches({1: 1.0, 8: 1.6}))
    assert verdict == DIFFERS and measured.low is not None and measured.low > 0
    measured, verdict = claim.evaluate(_batches({1: 1.0, 8: 0.95}, spread=0.2))
    assert verdict == NOT_MEASURED and measured.low is not None and measured.low < 0 < measured.high
    # two models: the mean change with a t interval over models
    both = pd.concat([_batches({1: 1.0, 8: 0.3}, model="a"), _batches({1: 2.0, 8: 0.5}, model="b")])
    measured, verdict = claim.evaluate(both)
    assert verdict == AGREES and "mean of 2 models" in measured.text and "a:" in measured.text


def test_batch_size_claim_not_measured_from_one_batch_size_or_without_energy_per_token():
    claim = _claim("05_batch_size", "batching_saves")
    measured, verdict = claim.evaluate(_batches({4: 1.0}))
    assert verdict == NOT_MEASURED and "two batch sizes" in measured.text
    measured, verdict = claim.evaluate(_batches({1: 1.0, 8: 0.3}).drop(columns="energy_per_token_j"))
    assert verdict == NOT_MEASURED and "energy per token" in measured.text


# ---------------------------------------------------------------- DVFS: saving and latency cost


def _dvfs(models: dict[str, dict[object, tuple[float, float]]], repeats: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for model, settings in models.items():
        for clock, (energy_j, time_s) in settings.items():
            for _ in range(repeats):
                rows.append({"model": model, "phase": "generate", "status": "ok", "gpu_clock_mhz": clock,
                             "energy_j": energy_j * (1 + rng.normal(0, 0.002)),
                             "time_s": time_s * (1 + rng.normal(0, 0.002))})
    return pd.DataFrame(rows)


PAPER_LIKE = {None: (10.0, 1.0), 1410: (8.0, 1.01), 600: (5.8, 1.03)}      # 42 % saved, 3 % slower


@pytest.mark.parametrize("models", [{"a": PAPER_LIKE}, {"a": PAPER_LIKE, "b": {None: (10.0, 1.0), 990: (5.7, 1.035)}}])
def test_dvfs_claims_agree_with_paper_like_rows(models):
    rows = _dvfs(models)
    saving, v1 = _claim("03_dvfs", "dvfs_saving").evaluate(rows)
    latency, v2 = _claim("03_dvfs", "dvfs_latency").evaluate(rows)
    assert saving.value == pytest.approx(0.42, abs=0.01) and v1 == AGREES
    assert latency.value == pytest.approx(0.03, abs=0.006) and v2 == AGREES
    assert "600 MHz vs default" in saving.text


def test_dvfs_claims_differ_and_the_highest_clock_is_the_reference_without_a_default():
    rows = _dvfs({"a": {1980: (10.0, 1.0), 1410: (9.0, 1.3), 600: (9.5, 1.9)}})
    saving, v1 = _claim("03_dvfs", "dvfs_saving").evaluate(rows)
    latency, v2 = _claim("03_dvfs", "dvfs_latency").evaluate(rows)
    assert saving.value == pytest.approx(0.10, abs=0.01) and v1 == DIFFERS
    assert latency.value == pytest.approx(0.30, abs=0.01) and v2 == DIFFERS
    assert "1410 MHz vs 1980 MHz" in saving.text


def test_dvfs_not_measured_with_the_default_clock_only():
    rows = _dvfs({"a": {None: (10.0, 1.0)}})
    for key in ("dvfs_saving", "dvfs_latency"):
        measured, verdict = _claim("03_dvfs", key).evaluate(rows)
        assert verdict == NOT_MEASURED and "only one GPU setting" in measured.text


# ---------------------------------------------------------------- chapter 4: quantization x pruning


def _tickets(combos: dict[tuple[str, str], tuple[float, float]]) -> pd.DataFrame:
    rows = []
    for (quant, prune), (energy_j, f1) in combos.items():
        for phase in ("finetune", "inference"):
            for window in range(2):
                rows.append({"task": "root_cause", "phase": phase, "status": "ok", "quant": quant, "prune": prune,
                             "window": window, "energy_j": energy_j * (3 if phase == "finetune" else 1),
                             "macro_f1": f1, "error": None})
    return pd.DataFrame(rows)


PARAMS = {"w": 0.5, "metrics": {"root_cause": "macro_f1", "response": "rouge_l"}}


def test_tickets_claims_agree_when_16_bit_and_2_4_rank_first():
    rows = _tickets({("fp16", "2:4"): (1.0, 0.9), ("fp16", "none"): (1.5, 0.9), ("none", "none"): (3.0, 0.9),
                     ("nf4", "none"): (2.0, 0.6), ("none", "2:4"): (2.5, 0.85)})
    balance, v1 = _claim("04_network_tickets", "best_balance").evaluate(rows, PARAMS)
    bits, v2 = _claim("04_network_tickets", "sixteen_bit").evaluate(rows, PARAMS)
    assert v1 == AGREES and balance.value == 1.0 and "first in 2 of 2 rankings" in balance.text
    assert v2 == AGREES and "best fp16 / none" in bits.text


def test_tickets_claims_differ_when_another_combination_ranks_first():
    rows = _tickets({("bf16", "2:4"): (2.0, 0.7), ("bf16", "none"): (2.5, 0.7), ("nf4", "none"): (1.0, 0.9),
                     ("nf4", "2:4"): (0.9, 0.9), ("none", "none"): (3.0, 0.8)})
    balance, v1 = _claim("04_network_tickets", "best_balance").evaluate(rows, PARAMS)
    bits, v2 = _claim("04_network_tickets", "sixteen_bit").evaluate(rows, PARAMS)
    assert v1 == DIFFERS and "best nf4 / 2:4" in balance.text
    assert v2 == DIFFERS and "best nf4 / none" in bits.text


def test_tickets_claims_not_measured_from_degenerate_or_two_way_rankings():
    """A classifier that learned nothing, or a ranking of two, names no best: the claim is not measured."""
    flat = _tickets({("fp16", "2:4"): (1.0, 0.0), ("fp16", "none"): (1.5, 0.0), ("none", "none"): (3.0, 0.0)})
    measured, verdict = _claim("04_network_tickets", "best_balance").evaluate(flat, PARAMS)
    assert verdict == NOT_MEASURED and "no ranking can name a best configuration" in measured.text
    assert "the same macro_f1" in measured.text
    two = _tickets({("fp16", "none"): (1.5, 0.9), ("nf4", "none"): (1.0, 0.6)})
    measured, verdict = _claim("04_network_tickets", "sixteen_bit").evaluate(two, PARAMS)
    assert verdict == NOT_MEASURED and "only 2 configurations ranked" in measured.text


def test_tickets_claims_not_measured_without_16_bit_or_without_quality():
    cpu = _tickets({("none", "none"): (2.0, 0.8), ("int8-dynamic", "2:4"): (1.0, 0.7), ("nf4", "none"): (1.5, 0.6)})
    measured, verdict = _claim("04_network_tickets", "best_balance").evaluate(cpu, PARAMS)
    assert verdict == NOT_MEASURED and "16-bit with 2:4 pruning was not among the ranked" in measured.text
    generation = pd.DataFrame([{"task": "none", "phase": "generate", "status": "ok", "quant": "fp16", "prune": "2:4",
                                "energy_j": 1.0}])
    measured, verdict = _claim("04_network_tickets", "sixteen_bit").evaluate(generation, PARAMS)
    assert verdict == NOT_MEASURED and "both energy and task quality" in measured.text


# ---------------------------------------------------------------- the table


def test_table_has_one_column_and_verdict_per_source():
    live = _generation({"a": [0.85, 0.86], "b": [0.80, 0.81], "c": [0.83, 0.82]}).assign(
        device="cpu", energy_method="estimated")
    gpu = _generation({"a": [0.60, 0.61], "b": [0.62, 0.60], "c": [0.61, 0.61]}).assign(
        gpu="NVIDIA H200", energy_method="counter")
    table = claims.table("01_model_comparison", live, {"nvidia-h200": gpu})
    frame = table.frame
    assert list(frame.columns) == ["claim", "paper", "rule", "this run (cpu; energy estimated)", "verdict (this run)",
                                   "reference nvidia-h200 (NVIDIA H200; energy counter)",
                                   "verdict (reference nvidia-h200)"]
    assert frame.loc[0, "verdict (this run)"] == AGREES and frame.loc[0, "verdict (reference nvidia-h200)"] == DIFFERS
    assert "77–91 %" in frame.loc[0, "paper"]
    text = table._repr_markdown_()
    assert text.startswith("| claim | paper |") and "estimate from CPU time" in text


def test_table_without_reference_or_live_rows_says_not_measured():
    table = claims.table("03_dvfs", None, {})
    frame = table.frame
    assert len(frame) == 2
    assert (frame["verdict (this run)"] == NOT_MEASURED).all()
    assert (frame["GPU reference"] == "not measured: no GPU reference data committed").all()
    assert (frame["verdict (GPU reference)"] == NOT_MEASURED).all()
    assert "estimate from CPU time" not in table._repr_markdown_()


def test_markdown_escapes_pipes():
    frame = pd.DataFrame([{"claim": "a | b", "paper": "x\ny"}])
    assert "a \\| b | x y" in claims.ClaimsTable(frame, ())._repr_markdown_()


def test_a_share_interval_stays_inside_0_and_1_and_names_its_method():
    """Two cells at 5 % and 60 %: a t interval would reach below 0 ("−5.4 %–65 %")."""
    from nrg.book.claim_measures import SHARE_METHOD, share_interval, t_interval

    _, t_low, _ = t_interval([0.05, 0.60])
    assert t_low is not None and t_low < 0
    mean, low, high = share_interval([0.05, 0.60])
    assert low is not None and high is not None and 0 < low <= mean <= high < 1
    measured, _ = _claim("02_sequence_length", "decode_share").evaluate(_generation({"a": [0.05], "b": [0.60]}))
    assert measured.low is not None and measured.low > 0 and SHARE_METHOD in measured.text
