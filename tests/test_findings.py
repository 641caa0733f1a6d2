"""nrg.book.findings: sentences whose numbers come from the analysis of synthetic data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nrg.book import findings as F
from nrg.errors import ParameterError
from nrg.stats import anova, optimal_clocks, per_token_costs, phase_share, rank_configs


def frame(task_effect: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [{"model": m, "task": t, "energy_per_token_j": base + (task_effect if t == "qa" else 0) + rng.normal(0, 0.02)}
            for m, base in (("gpt2", 0.1), ("falcon", 0.6), ("t5", 0.3))
            for t in ("qa", "generation") for _ in range(5)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("p, text", [(0.0004, "p < 0.001"), (0.0042, "p = 0.004"), (0.0312, "p = 0.03"),
                                     (0.41, "p = 0.41"), (0.999, "p > 0.99"), (float("nan"), "p not available")])
def test_p_text(p, text):
    assert F.p_text(p) == text


def test_number_formats():
    assert F.pct(0.8214) == "82%" and F.pct(0.046) == "4.6%" and F.pct(0.0004) == "<0.1%"
    assert F.num(0.0123456) == "0.0123" and F.num(1.2e-5) == "1.2×10⁻⁵" and F.num(-2.5) == "−2.5"


def test_anova_findings_report_the_computed_shares_and_the_null_effect():
    res = anova(frame(), "energy_per_token_j", ["model", "task"])
    text = F.anova_findings(res)
    model = res.row("model")
    first = text.sentences[0]
    assert first.startswith(f"Model explains {F.pct(model['eta_sq'])} of the variance in energy per token")
    assert F.p_text(model["p"]) in first
    task_p = res.row("task")["p"]
    assert task_p > 0.05
    assert f"Task has no significant effect on energy per token ({F.p_text(task_p)}" in text.to_markdown()
    assert "interaction is not significant" in text.to_markdown()


def test_anova_findings_with_two_significant_factors_and_tukey():
    res = anova(frame(task_effect=0.1), "energy_per_token_j", ["model", "task"])
    first = F.anova_findings(res).sentences[0]
    assert f"task explains {F.pct(res.row('task')['eta_sq'])} (partial η²" in first
    assert any(s.startswith("Tukey HSD: 3 of 3 pairs of model") for s in F.anova_findings(res))


def test_anova_findings_for_degenerate_data_repeat_the_reason():
    res = anova(frame().assign(energy_per_token_j=lambda d: d["model"].map({"gpt2": 1, "falcon": 2, "t5": 3})),
                "energy_per_token_j", ["model", "task"])
    text = F.anova_findings(res).to_markdown()
    assert "Residual variance is zero" in text and "model accounts for 100%" in text


def test_length_findings_scale_slopes_and_call_null_slopes_not_significant():
    rng = np.random.default_rng(1)
    rows = [{"model": "gpt2", "input_tokens": i, "output_tokens": o,
             "energy_j": 0.002 * i + rng.normal(0, 0.05)} for i in (64, 128, 256) for o in (16, 32, 64) for _ in range(3)]
    costs = per_token_costs(pd.DataFrame(rows), "energy_j")
    text = F.length_findings(costs, "energy_j", per=100)
    slope = costs.set_index("term").at["input_tokens", "estimate"]
    assert text.sentences[0].startswith(f"For gpt2, energy rises by {F.num(100 * slope)} J per 100 input tokens (95% CI")
    out_p = costs.set_index("term").at["output_tokens", "p"]
    assert out_p > 0.05 and "no significant change with output length" in text.sentences[1]
    with pytest.raises(ParameterError, match="per"):
        F.length_findings(costs, per=0)


def test_phase_share_findings_give_the_range():
    rows = [{"model": "m", "input_tokens": i, "output_tokens": 32, "phase": ph, "time_s": t}
            for i, pre in ((64, 1.0), (512, 3.0)) for ph, t in (("prefill", pre), ("decode", 9.0))]
    shares = phase_share(pd.DataFrame(rows), measures="time_s")
    sentence = F.phase_share_findings(shares).sentences[0]
    assert sentence.startswith(f"Decode takes {F.pct(9 / 12)}–{F.pct(0.9)}") and "of time across 2 cell(s)" in sentence


def clock_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for f, e, t in ((1410, 69.0, 1.04), (1700, 85.0, 1.01), (1980, 100.0, 1.0)):
        for _ in range(4):
            rows.append({"model": "gpt2", "gpu_clock_mhz": f, "energy_j": e + rng.normal(0, 0.5),
                         "time_s": t + rng.normal(0, 0.002)})
    return pd.DataFrame(rows)


def test_clock_findings_sentence_uses_the_table():
    best = optimal_clocks(clock_table())
    row = best.iloc[0]
    sentence = F.clock_findings(best).sentences[0]
    expected = (f"The energy-optimal clock for gpt2 is 1410 MHz: {F.pct(row['energy_saving'])} less energy than "
                f"1980 MHz for {F.pct(row['latency_change'])} more latency.")
    assert sentence == expected
    edp = F.clock_findings(optimal_clocks(clock_table(), objective="edp")).sentences[0]
    assert edp.startswith("The EDP-optimal clock for gpt2")


def test_clock_findings_at_reference_and_not_significant():
    df = clock_table()
    df.loc[df["gpu_clock_mhz"] == 1980, "energy_j"] -= 40  # now the top clock is best
    assert "already energy-optimal" in F.clock_findings(optimal_clocks(df)).sentences[0]
    noisy = clock_table()
    noisy["energy_j"] = [90.0, 110.0, 95.0, 101.0, 120.0, 121.0, 119.0, 122.0, 95.0, 115.0, 100.0, 110.0]
    best = optimal_clocks(noisy)
    row = best.iloc[0]
    assert row["optimal_clock_mhz"] == 1410 and row["p_energy"] > 0.05
    sentence = F.clock_findings(best).sentences[0]
    assert f"(the energy difference is not significant, {F.p_text(row['p_energy'])})" in sentence
    assert sentence.startswith("For gpt2, no energy-optimal clock can be named")     # not separated: not "optimal"


def test_ranking_findings_name_best_and_front():
    rows = [{"quant": q, "prune_method": p, "energy_j": e, "score": s}
            for q, p, e, s in (("fp32", "none", 10, 0.8), ("fp16", "2:4", 4, 0.78), ("nf4", "none", 3, 0.5),
                               ("int8", "2:4", 6, 0.7))]
    ranked = rank_configs(pd.DataFrame(rows), w=0.5)
    text = F.ranking_findings(ranked)
    best = ranked.best
    assert text.sentences[0].startswith(
        f"With w = 0.5, the best configuration is quantization fp16, pruning method 2:4 (R = {best['R']:.2f}")
    assert text.sentences[1].startswith("3 of 4 configurations are on the energy–quality Pareto front")


def test_provenance_findings_and_markdown():
    df = pd.DataFrame({"energy_method": ["estimated"] * 2, "hostname": ["box"] * 2, "status": ["ok", "failed"]})
    text = F.provenance_findings(df)
    assert "CPU energy on this machine is estimated, not measured" in text.to_markdown()
    assert text._repr_markdown_().startswith("- ") and len(text + F.Findings(("x",))) == len(text) + 1


def noisy_cell_frame(seed: int = 0) -> pd.DataFrame:
    """No interaction in truth, but one cell (falcon on qa) is 30 times noisier than the others."""
    rng = np.random.default_rng(seed)
    rows = [{"model": m, "task": t, "energy_per_token_j": base + rng.normal(0, 0.3 if (m, t) == ("falcon", "qa") else 0.01)}
            for m, base in (("gpt2", 0.1), ("falcon", 0.6), ("t5", 0.3))
            for t in ("qa", "generation", "summarization") for _ in range(4)]
    return pd.DataFrame(rows)


def test_robust_verdict_sentence_comes_from_the_bootstrap_table():
    res = anova(noisy_cell_frame(), "energy_per_token_j", ["model", "task"])
    classical = res.row("model:task")["p"]
    robust = res.robust_table.set_index("source").at["model:task", "p"]
    assert classical < 0.01 and robust > 0.05      # the noisy cell fools the classical test only
    sentence = next(s for s in F.anova_findings(res) if s.startswith("The robust (HC3) ANOVA"))
    assert "wild-bootstrap p-values) changes the verdict for" in sentence
    assert f"model × task (robust {F.p_text(robust)}, classical {F.p_text(classical)})" in sentence
    agree = anova(frame(task_effect=0.1), "energy_per_token_j", ["model", "task"], robust="always")
    assert any(s.startswith("The robust (HC3) ANOVA") and "agrees on which terms" in s for s in F.anova_findings(agree))


def test_significant_interaction_adds_caveat_and_simple_effects_sentences():
    rng = np.random.default_rng(1)
    df = pd.DataFrame([{"model": m, "task": t, "energy_per_token_j": 1.0 + (0.5 if (m, t) == ("falcon", "qa") else 0)
                        + rng.normal(0, 0.05)}
                       for m in ("falcon", "gpt2", "t5") for t in ("generation", "qa", "summarization") for _ in range(4)])
    res = anova(df, "energy_per_token_j", ["model", "task"])
    text = list(F.anova_findings(res))
    caveat = [s for s in text if s.startswith("Caveat:")]
    assert caveat == [f"Caveat: the model × task interaction is significant ({F.p_text(res.row('model:task')['p'])}), "
                      "so the Tukey comparisons of model and of task above average over the levels of the other factor "
                      "and need not hold within each level; the simple effects below say where they do."]
    by_task = next(s for s in text if s.startswith("Simple effects of model within each task"))
    assert "qa: 2 of 3 pairs differ (not separated: gpt2–t5)" in by_task
    assert "generation: 0 of 3 pairs differ" in by_task and "summarization: 0 of 3 pairs differ" in by_task
    assert any(s.startswith("Simple effects of task within each model") for s in text)
    plain = F.anova_findings(anova(frame(), "energy_per_token_j", ["model", "task"])).to_markdown()
    assert "Caveat" not in plain and "Simple effects" not in plain


def dvfs_table(default_energy_j: float, seed: int = 0) -> pd.DataFrame:
    """gpt2 at the default clock (None), 1410 and 900 MHz; 1410 MHz uses 100 J, 900 MHz 110 J."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame([{"model": "gpt2", "gpu_clock_mhz": clock, "energy_j": e + rng.normal(0, 0.5),
                          "time_s": t + rng.normal(0, 0.002)}
                         for clock, e, t in ((None, default_energy_j, 1.0), (1410, 100.0, 1.05), (900, 110.0, 1.4))
                         for _ in range(4)])


def test_clock_findings_say_the_default_is_best_when_it_uses_least_energy():
    best = optimal_clocks(dvfs_table(default_energy_j=90.0))
    row = best.iloc[0]
    assert bool(row["default_best"]) and row["best_setting"] == "default" and row["energy_saving"] < 0
    sentence = F.clock_findings(best).sentences[0]
    extra = row["energy_opt_j"] / row["energy_default_j"] - 1
    assert sentence.startswith("For gpt2, the default clock is best for energy: no locked clock measured uses less; "
                               f"the best locked clock, 1410 MHz, uses {F.pct(extra)} more energy than the default clock")
    edp = F.clock_findings(optimal_clocks(dvfs_table(default_energy_j=90.0), objective="edp")).sentences[0]
    assert edp.startswith("For gpt2, the default clock is best for EDP")
    for text in (sentence, edp):
        assert "optimal" not in text and "less energy" not in text


def test_clock_findings_name_the_lock_when_it_beats_the_default():
    best = optimal_clocks(dvfs_table(default_energy_j=120.0))
    row = best.iloc[0]
    assert not row["default_best"] and row["best_setting"] == "1410" and row["energy_saving"] > 0
    sentence = F.clock_findings(best).sentences[0]
    assert sentence == (f"The energy-optimal clock for gpt2 is 1410 MHz: {F.pct(row['energy_saving'])} less energy "
                        f"than the default clock for {F.pct(row['latency_change'])} more latency.")
