"""nrg.stats on synthetic result tables with known effects.

Each generator plants an effect (a model that costs more, a per-token slope,
an energy minimum at one clock) so the tests check that the analysis finds it,
and that it does not find effects that were not planted.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats as sps
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multicomp import pairwise_tukeyhsd

from nrg.errors import ParameterError
from nrg.stats import (
    add_edp,
    anova,
    cell_precision,
    check_normality,
    clock_profile,
    efficiency_score,
    fit_lengths,
    optimal_clocks,
    pareto_front,
    pareto_mask,
    per_token_costs,
    performance_score,
    phase_share,
    provenance_summary,
    rank_configs,
    simple_effects,
    summarize,
    tukey_hsd,
)

MODEL_EFFECT_J = {"gpt2": 0.10, "gpt-neo": 0.50, "falcon": 1.00}


def model_task_frame(repeats: int = 6, noise: float = 0.03, task_effect: float = 0.0,
                     hetero: bool = False, seed: int = 0) -> pd.DataFrame:
    """Energy per token = model effect + task effect + noise (noise ∝ mean if hetero)."""
    rng = np.random.default_rng(seed)
    rows = []
    for model, base in MODEL_EFFECT_J.items():
        for task, shift in (("qa", 0.0), ("generation", task_effect), ("summarization", 0.0)):
            for r in range(repeats):
                sd = noise * (base * 10 if hetero else 1)
                rows.append({"model": model, "task": task, "repeat": r, "status": "ok",
                             "energy_per_token_j": base + shift + rng.normal(0, sd)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- summarize

def test_summarize_matches_t_interval_and_skips_failed_rows():
    df = pd.DataFrame({"model": ["a"] * 4 + ["b"] * 2, "energy_j": [1.0, 2.0, 3.0, 4.0, 10.0, 99.0],
                       "status": ["ok"] * 5 + ["failed"]})
    out = summarize(df, "model", ["energy_j"])
    a = out[out["model"] == "a"].iloc[0]
    lo, hi = sps.t.interval(0.95, 3, loc=2.5, scale=np.std([1, 2, 3, 4], ddof=1) / 2)
    assert (a["mean"], a["n"]) == (2.5, 4)
    assert a["ci_low"] == pytest.approx(lo) and a["ci_high"] == pytest.approx(hi)
    b = out[out["model"] == "b"].iloc[0]
    assert b["n"] == 1 and b["mean"] == 10.0 and np.isnan(b["ci_halfwidth"])


def test_summarize_long_form_over_measures_and_bad_parameters():
    df = model_task_frame().assign(time_s=1.0)
    out = summarize(df, ["model", "task"], ["energy_per_token_j", "time_s"])
    assert len(out) == 2 * 9 and set(out["measure"]) == {"energy_per_token_j", "time_s"}
    with pytest.raises(ParameterError, match="confidence"):
        summarize(df, "model", "time_s", confidence=95)
    with pytest.raises(ParameterError, match="nope"):
        summarize(df, "model", "nope")


# ---------------------------------------------------------------- ANOVA

def test_anova_finds_planted_model_effect_and_not_absent_task_effect():
    res = anova(model_task_frame(), "energy_per_token_j", ["model", "task"])
    model, task = res.row("model"), res.row("task")
    assert model["p"] < 1e-10 and model["eta_sq"] > 0.95
    assert task["p"] > 0.05
    assert res.significant() == ["model"]
    # balanced design: the type II sums of squares add up to the total
    assert res.table["eta_sq"].sum() == pytest.approx(1.0)
    ss_res = res.row("Residual")["sum_sq"]
    assert model["partial_eta_sq"] == pytest.approx(model["sum_sq"] / (model["sum_sq"] + ss_res))


def test_anova_matches_statsmodels_directly():
    df = model_task_frame(task_effect=0.05, seed=3)
    res = anova(df, "energy_per_token_j", ["model", "task"])
    direct = anova_lm(smf.ols("energy_per_token_j ~ C(model) * C(task)", data=df).fit(), typ=2)
    assert res.row("task")["F"] == pytest.approx(direct.loc["C(task)", "F"])
    assert res.row("model:task")["p"] == pytest.approx(direct.loc["C(model):C(task)", "PR(>F)"])
    assert res.row("task")["p"] < 0.001


def test_anova_type3_uses_sum_contrasts_and_equals_type2_when_balanced():
    df = model_task_frame(task_effect=0.05, seed=4)
    t2 = anova(df, "energy_per_token_j", ["model", "task"], typ=2)
    t3 = anova(df, "energy_per_token_j", ["model", "task"], typ="III")
    assert "Sum" in t3.formula and t3.typ == 3
    assert "Intercept" not in set(t3.table["source"])
    assert t3.row("task")["F"] == pytest.approx(t2.row("task")["F"])


def test_anova_unbalanced_says_so_for_type2():
    df = model_task_frame(seed=5).drop(index=[0, 1, 2])
    res = anova(df, "energy_per_token_j", ["model", "task"])
    assert any("unbalanced" in n for n in res.notes)


def test_single_level_factor_is_dropped_with_a_note():
    df = model_task_frame()
    df = df[df["task"] == "qa"]
    res = anova(df, "energy_per_token_j", ["model", "task"])
    assert res.factors == ("model",)
    assert any("task has a single level (qa)" in n for n in res.notes)
    assert list(res.effects["source"]) == ["model"]


def test_no_factor_left_returns_empty_table_with_message():
    df = model_task_frame()
    df = df[(df["task"] == "qa") & (df["model"] == "gpt2")]
    res = anova(df, "energy_per_token_j", ["model", "task"])
    assert res.effects.empty and any("nothing to test" in n for n in res.notes)


def test_no_replication_fits_main_effects_only():
    df = model_task_frame(repeats=1, task_effect=0.2)
    res = anova(df, "energy_per_token_j", ["model", "task"])
    assert "model:task" not in set(res.table["source"])
    assert any("No replication" in n for n in res.notes)
    assert res.row("model")["p"] < 0.01


def test_missing_combinations_fit_main_effects_only():
    df = model_task_frame()
    df = df[~((df["model"] == "falcon") & (df["task"] == "qa"))]
    res = anova(df, "energy_per_token_j", ["model", "task"])
    assert "model:task" not in set(res.table["source"])
    assert any("8 of 9 combinations" in n for n in res.notes)


def test_zero_residual_variance_is_reported_not_crashed():
    df = model_task_frame(noise=0.0, task_effect=0.1)
    res = anova(df, "energy_per_token_j", ["model", "task"])
    assert any("Residual variance is zero" in n for n in res.notes)
    assert res.effects["F"].isna().all()
    assert res.row("model")["eta_sq"] + res.row("task")["eta_sq"] == pytest.approx(1.0)
    constant = df.assign(energy_per_token_j=0.5)
    assert any("constant" in n for n in anova(constant, "energy_per_token_j", ["model", "task"]).notes)


def test_odd_column_names_are_quoted_and_missing_levels_kept_as_none():
    df = model_task_frame().rename(columns={"model": "model name", "energy_per_token_j": "energy/token"})
    df["quant"] = np.where(df["task"] == "qa", None, "int8")
    res = anova(df, "energy/token", ["model name", "quant"])
    assert 'Q("model name")' in res.formula
    assert res.row("model name")["p"] < 1e-10
    assert any("form the level 'none'" in n for n in res.notes)


def test_heteroscedastic_data_fail_levene_and_get_robust_tables():
    df = model_task_frame(hetero=True, seed=1)
    res = anova(df, "energy_per_token_j", ["model", "task"])
    homogeneity = next(c for c in res.checks if c.name == "homogeneity")
    assert homogeneity.passed is False and "Levene" in homogeneity.message
    assert res.assumptions_ok is False
    assert list(res.robust_table.columns) == ["source", "df", "F", "p"]
    assert res.log_table is not None and res.log_table is not res.table
    assert anova(df, "energy_per_token_j", ["model", "task"], robust="never").robust_table is None


def test_robust_always_even_when_checks_pass_and_hc1_fallback_without_replication():
    res = anova(model_task_frame(seed=2), "energy_per_token_j", ["model", "task"], robust="always")
    assert res.robust_table is not None
    single = anova(model_task_frame(repeats=1), "energy_per_token_j", ["model"], robust="always")
    assert single.robust_table is not None


def test_log_table_refused_for_non_positive_response():
    df = model_task_frame(hetero=True, seed=1)
    df.loc[0, "energy_per_token_j"] = -1.0
    res = anova(df, "energy_per_token_j", ["model", "task"], robust="always")
    assert res.log_table is None and any("log-response" in n for n in res.notes)


def test_normality_check_switches_to_dagostino_above_5000():
    rng = np.random.default_rng(0)
    assert check_normality(rng.normal(size=200)).test == "Shapiro–Wilk"
    big = check_normality(rng.exponential(size=6000))
    assert big.test == "D'Agostino K²" and big.passed is False
    assert check_normality(np.array([1.0, 2.0])).passed is None


def test_tukey_one_way_equals_pairwise_tukeyhsd():
    rng = np.random.default_rng(7)
    groups = np.repeat(["a", "b", "c"], [5, 7, 6])
    y = rng.normal(size=18) + (groups == "c") * 1.5
    ours = tukey_hsd(pd.DataFrame({"g": groups, "y": y}), "y", "g")
    ref = pairwise_tukeyhsd(y, groups)
    assert ours["meandiff"].to_numpy() == pytest.approx(ref.meandiffs)
    assert ours["p_adj"].to_numpy() == pytest.approx(ref.pvalues, abs=1e-4)
    assert ours["ci_low"].to_numpy() == pytest.approx(ref.confint[:, 0])


def test_tukey_in_anova_uses_model_error_and_finds_the_planted_pairs():
    res = anova(model_task_frame(task_effect=0.05), "energy_per_token_j", ["model", "task"])
    assert set(res.tukey) == {"model", "task"}
    task = res.tukey["task"]
    differs = {frozenset((a, b)) for a, b, r in zip(task["group1"], task["group2"], task["reject"], strict=True) if r}
    assert differs == {frozenset(("generation", "qa")), frozenset(("generation", "summarization"))}
    assert res.tukey["model"]["reject"].all()
    assert "task" not in anova(model_task_frame(), "energy_per_token_j", ["model", "task"]).tukey


def interaction_frame(seed: int = 1, repeats: int = 4) -> pd.DataFrame:
    """Models differ on qa only (falcon costs 0.5 J/token more there): a pure model × task interaction."""
    rng = np.random.default_rng(seed)
    rows = [{"model": m, "task": t, "status": "ok",
             "energy_per_token_j": 1.0 + (0.5 if (m == "falcon" and t == "qa") else 0.0) + rng.normal(0, 0.05)}
            for m in ("falcon", "gpt2", "t5") for t in ("generation", "qa", "summarization") for _ in range(repeats)]
    return pd.DataFrame(rows)


def test_simple_effects_compare_within_each_level_with_the_pooled_error():
    df = interaction_frame()
    out = simple_effects(df, "energy_per_token_j", "model", "task")
    assert list(out.columns) == ["task", "group1", "group2", "meandiff", "p_adj", "ci_low", "ci_high", "reject"]
    assert len(out) == 3 * 3
    fit = smf.ols("energy_per_token_j ~ C(model) * C(task)", data=df).fit()
    ms, dfr = fit.ssr / fit.df_resid, fit.df_resid
    for row in out.itertuples():
        part = df[df["task"] == row.task].groupby("model")["energy_per_token_j"]
        diff = part.mean()[row.group2] - part.mean()[row.group1]
        se = np.sqrt(ms / 2 * (1 / part.size()[row.group1] + 1 / part.size()[row.group2]))
        assert row.meandiff == pytest.approx(diff)
        assert row.p_adj == pytest.approx(sps.studentized_range.sf(abs(diff) / se, 3, dfr), abs=1e-6)
        falcon_on_qa = row.task == "qa" and "falcon" in (row.group1, row.group2)
        assert row.reject == falcon_on_qa            # the planted differences, and no others
    both = simple_effects(df.assign(dtype=np.where(df.index % 2, "fp16", "fp32")), "energy_per_token_j",
                          "model", ["task", "dtype"])
    assert list(both.columns[:2]) == ["task", "dtype"] and len(both) == 3 * 2 * 3
    with pytest.raises(ParameterError, match="within"):
        simple_effects(df, "energy_per_token_j", "model", "model")


def test_significant_interaction_brings_caveat_and_simple_effects():
    res = anova(interaction_frame(), "energy_per_token_j", ["model", "task"])
    assert res.row("model:task")["p"] < 0.001 and {"model", "task"} <= set(res.tukey)
    assert {(c[0], c[1]) for c in res.tukey.caveats} == {("model", "model:task"), ("task", "model:task")}
    assert {(s.factor, s.within) for s in res.simple_effects} == {("model", ("task",)), ("task", ("model",))}
    by_task = next(s for s in res.simple_effects if s.factor == "model").table
    direct = simple_effects(interaction_frame(), "energy_per_token_j", "model", "task")
    pd.testing.assert_frame_equal(by_task, direct)
    html = res._repr_html_()
    assert "Simple effects of model within each task" in html and "need not hold" in html
    assert "Simple effects of task within each model" in res.tukey._repr_html_()
    plain = anova(model_task_frame(task_effect=0.05), "energy_per_token_j", ["model", "task"])
    assert plain.row("model:task")["p"] > 0.05
    assert plain.simple_effects == () and plain.tukey.caveats == ()


@pytest.mark.parametrize("kwargs, match", [
    ({"typ": 4}, "typ"), ({"robust": "hc9"}, "robust"), ({"alpha": 1.5}, "alpha"),
    ({"factors": []}, "factors"), ({"factors": ["model", "model"]}, "twice"),
    ({"response": "missing"}, "missing"),
])
def test_anova_bad_parameters_raise_before_work(kwargs, match):
    args = {"response": "energy_per_token_j", "factors": ["model", "task"], **kwargs}
    with pytest.raises(ParameterError, match=match):
        anova(model_task_frame(), args.pop("response"), args.pop("factors"), **args)


def test_anova_display_shows_table_checks_and_robust_table():
    res = anova(model_task_frame(hetero=True, seed=1), "energy_per_token_j", ["model", "task"])
    frame = res.to_frame()
    assert list(frame.columns) == ["source", "sum_sq", "df", "F", "p", "eta_sq", "partial_eta_sq", "omega_sq"]
    html = res._repr_html_()
    for text in ("partial_eta_sq", "Levene", "Robust (HC3)", "log(energy_per_token_j)", "&lt;0.001"):
        assert text in html
    assert "Tukey HSD for model" in str(res)
    with pytest.raises(ParameterError, match="source"):
        res.row("colour")


# ---------------------------------------------------------------- lengths

J_PER_INPUT, J_PER_OUTPUT = {"gpt2": 0.001, "falcon": 0.004}, {"gpt2": 0.02, "falcon": 0.08}


def length_frame(seed: int = 0, repeats: int = 3) -> pd.DataFrame:
    """Prefill costs J_PER_INPUT per input token, decode J_PER_OUTPUT per output token."""
    rng = np.random.default_rng(seed)
    rows = []
    for model in J_PER_INPUT:
        for n_in in (64, 128, 256, 512):
            for n_out in (16, 32, 64):
                for r in range(repeats):
                    pre = J_PER_INPUT[model] * n_in + rng.normal(0, 0.005)
                    dec = J_PER_OUTPUT[model] * n_out + rng.normal(0, 0.005)
                    common = {"model": model, "input_tokens": n_in, "output_tokens": n_out, "repeat": r,
                              "status": "ok"}
                    rows += [{**common, "phase": "prefill", "energy_j": pre, "time_s": pre / 100},
                             {**common, "phase": "decode", "energy_j": dec, "time_s": dec / 50},
                             {**common, "phase": "generate", "energy_j": pre + dec, "time_s": pre / 100 + dec / 50}]
    return pd.DataFrame(rows)


def test_fit_lengths_recovers_per_token_costs_within_ci():
    df = length_frame()
    gen = df[(df["phase"] == "generate") & (df["model"] == "falcon")]
    fit = fit_lengths(gen, "energy_j")
    for term, truth in (("input_tokens", J_PER_INPUT["falcon"]), ("output_tokens", J_PER_OUTPUT["falcon"])):
        row = fit.coefficient(term)
        assert row["ci_low"] < truth < row["ci_high"]
        assert row["p"] < 1e-10
    assert fit.r2 > 0.99 and fit.n_obs == len(gen)


def test_fit_lengths_interaction_and_single_valued_length():
    gen = length_frame().query("phase == 'generate' and model == 'gpt2'")
    fit = fit_lengths(gen, "energy_j", interaction=True)
    assert "input_tokens:output_tokens" in set(fit.coefficients["term"])
    assert fit.coefficient("input_tokens:output_tokens")["p"] > 0.01
    fixed = fit_lengths(gen[gen["output_tokens"] == 32], "energy_j")
    assert "output_tokens" not in set(fixed.coefficients["term"])
    assert any("single value" in n for n in fixed.notes)
    with pytest.raises(ParameterError, match="cov_type"):
        fit_lengths(gen, cov_type="HC9")


def test_hc3_intervals_use_t_with_residual_df_like_ols():
    rng = np.random.default_rng(3)
    gen = length_frame().query("phase == 'generate' and model == 'gpt2'").copy()
    gen["energy_j"] += rng.normal(0, 1, len(gen)) * gen["output_tokens"] / 64   # spread grows with length
    fit = fit_lengths(gen, "energy_j", cov_type="HC3")
    x = np.column_stack([np.ones(len(gen)), gen["input_tokens"], gen["output_tokens"]]).astype(float)
    y = gen["energy_j"].to_numpy()
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    bread = np.linalg.inv(x.T @ x)
    h = np.einsum("ij,jk,ik->i", x, bread, x)
    se = np.sqrt(np.diag(bread @ (x.T * (resid**2 / (1 - h) ** 2)) @ x @ bread))
    df_resid = len(y) - 3
    t = sps.t.ppf(0.975, df_resid)
    for i, term in enumerate(("Intercept", "input_tokens", "output_tokens")):
        row = fit.coefficient(term)
        assert row["std_err"] == pytest.approx(se[i])
        assert row["ci_low"] == pytest.approx(beta[i] - t * se[i]) and row["ci_high"] == pytest.approx(beta[i] + t * se[i])
        assert row["p"] == pytest.approx(2 * sps.t.sf(abs(beta[i] / se[i]), df_resid))


def test_per_token_costs_per_model():
    costs = per_token_costs(length_frame().query("phase == 'generate'"), "energy_j", by="model")
    assert len(costs) == 4 and set(costs["unit"]) == {"J/token"}
    for row in costs.itertuples():
        truth = (J_PER_INPUT if row.term == "input_tokens" else J_PER_OUTPUT)[row.model]
        assert row.ci_low < truth < row.ci_high


def test_phase_share_matches_planted_costs_and_falls_back_to_generate():
    df = length_frame()
    share = phase_share(df, measures="energy_j")
    cell = share[(share["model"] == "gpt2") & (share["input_tokens"] == 512) & (share["output_tokens"] == 16)].iloc[0]
    expected = 0.02 * 16 / (0.001 * 512 + 0.02 * 16)
    assert cell["decode_share"] == pytest.approx(expected, abs=0.02)
    assert cell["prefill_share"] + cell["decode_share"] == pytest.approx(1.0)
    assert set(share["decode_source"]) == {"measured"}
    derived = phase_share(df[df["phase"] != "decode"], measures="energy_j")
    assert set(derived["decode_source"]) == {"generate − prefill"}
    assert derived["decode_share"].to_numpy() == pytest.approx(share["decode_share"].to_numpy(), abs=1e-9)
    with pytest.raises(ParameterError, match="prefill"):
        phase_share(df[df["phase"] == "generate"])


def test_length_anova_treats_lengths_as_categories():
    gen = length_frame().query("phase == 'generate' and model == 'gpt2'")
    res = anova(gen, "energy_j", ["input_tokens", "output_tokens"])
    assert res.row("input_tokens")["df"] == 3 and res.row("output_tokens")["df"] == 2


# ---------------------------------------------------------------- DVFS

CLOCKS_MHZ = (900, 1200, 1410, 1700, 1980)


def clock_frame(seed: int = 0, default_rows: bool = False) -> pd.DataFrame:
    """Time ∝ 0.1 + 900/f, power = 120 + 240 (f/1980)³: energy is lowest at a middle clock."""
    rng = np.random.default_rng(seed)
    rows = []
    clocks = list(CLOCKS_MHZ) + ([None] if default_rows else [])
    for model, scale in (("gpt2", 1.0), ("falcon", 4.0)):
        for f in clocks:
            mhz = 1980 if f is None else f
            for r in range(4):
                t = scale * (0.1 + 900 / mhz) * (1 + rng.normal(0, 0.005))
                p = 120 + 240 * (mhz / 1980) ** 3 * (1.1 if f is None else 1.0)
                rows.append({"model": model, "gpu_clock_mhz": f, "repeat": r, "phase": "generate",
                             "status": "ok", "time_s": t, "avg_power_w": p, "energy_j": t * p})
    return pd.DataFrame(rows)


def _true_means(df: pd.DataFrame, model: str) -> pd.DataFrame:
    part = add_edp(df[(df["model"] == model) & df["gpu_clock_mhz"].notna()])
    return part.groupby("gpu_clock_mhz")[["energy_j", "time_s", "edp_j_s"]].mean()


def test_optimal_clocks_find_energy_minimum_and_compare_with_max():
    df = clock_frame()
    out = optimal_clocks(df).set_index("model")
    for model in ("gpt2", "falcon"):
        means = _true_means(df, model)
        best = means["energy_j"].idxmin()
        assert best not in (900, 1980)  # the planted minimum is inside the range
        row = out.loc[model]
        assert row["optimal_clock_mhz"] == best and row["reference_clock"] == "1980"
        assert row["energy_saving"] == pytest.approx(1 - means.at[best, "energy_j"] / means.at[1980, "energy_j"])
        assert row["latency_change"] == pytest.approx(means.at[best, "time_s"] / means.at[1980, "time_s"] - 1)
        assert row["energy_saving"] > 0 and row["latency_change"] > 0 and row["p_energy"] < 0.001


def test_edp_optimum_is_at_a_higher_clock_than_energy_optimum():
    df = clock_frame()
    energy = optimal_clocks(df).set_index("model")
    edp = optimal_clocks(df, objective="edp").set_index("model")
    for model in ("gpt2", "falcon"):
        assert edp.at[model, "optimal_clock_mhz"] == _true_means(df, model)["edp_j_s"].idxmin()
        assert edp.at[model, "optimal_clock_mhz"] > energy.at[model, "optimal_clock_mhz"]


def test_reference_default_rows_and_explicit_clock():
    df = clock_frame(default_rows=True)
    auto = optimal_clocks(df)
    assert set(auto["reference_clock"]) == {"default"}
    default_e = df[(df["model"] == "gpt2") & df["gpu_clock_mhz"].isna()]["energy_j"].mean()
    assert auto.set_index("model").at["gpt2", "energy_ref_j"] == pytest.approx(default_e)
    at_1410 = optimal_clocks(df, reference=1410)
    assert set(at_1410["reference_clock"]) == {"1410"}
    with pytest.raises(ParameterError, match="1410"):
        optimal_clocks(df, reference=1000)
    with pytest.raises(ParameterError, match="objective"):
        optimal_clocks(df, objective="power")
    with pytest.raises(ParameterError, match="default clock"):
        optimal_clocks(clock_frame(), reference="default")


def test_mixed_phases_need_phase_in_by():
    df = pd.concat([clock_frame(), clock_frame(seed=1).assign(phase="prefill")])
    with pytest.raises(ParameterError, match="phase"):
        optimal_clocks(df)
    assert len(optimal_clocks(df, by=["model", "phase"])) == 4


def test_clock_profile_has_edp_and_power_per_clock():
    prof = clock_profile(clock_frame())
    assert set(prof["measure"]) == {"energy_j", "time_s", "avg_power_w", "edp_j_s", "ed2p_j_s2"}
    assert len(prof) == 2 * len(CLOCKS_MHZ) * 5
    res = anova(clock_frame(), "energy_j", ["gpu_clock_mhz", "model"])
    assert res.row("gpu_clock_mhz")["p"] < 0.001 and res.row("gpu_clock_mhz:model")["p"] < 0.001


# ---------------------------------------------------------------- ranking and Pareto

CONFIGS = {("fp32", None): (10.0, 0.80), ("fp16", None): (6.0, 0.80), ("int8", None): (4.0, 0.75),
           ("nf4", None): (3.0, 0.60), ("fp16", "2:4"): (4.5, 0.78), ("int8", "2:4"): (5.0, 0.70)}


def quant_frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [{"quant": q, "prune_method": p, "energy_j": e + rng.normal(0, 0.05),
             "score": s + rng.normal(0, 0.002), "status": "ok"}
            for (q, p), (e, s) in CONFIGS.items() for _ in range(3)]
    return pd.DataFrame(rows)


def test_phi_rho_formulas_and_all_equal_case():
    assert efficiency_score([2.0, 4.0, 6.0]) == pytest.approx([1.0, 0.5, 0.0])
    assert performance_score([0.2, 0.4, 0.6]) == pytest.approx([0.0, 0.5, 1.0])
    assert efficiency_score([3.0, 3.0]) == pytest.approx([1.0, 1.0])
    same = quant_frame().assign(score=0.5)
    ranked = rank_configs(same)
    assert (ranked.table["rho"] == 1.0).all()
    assert any("same quality" in n for n in ranked.notes)


def test_ranking_weights_move_the_winner():
    df = quant_frame()
    energy_only = rank_configs(df, w=1.0).best
    quality_only = rank_configs(df, w=0.0).best
    assert (energy_only["quant"], energy_only["prune_method"]) == ("nf4", "none")
    assert quality_only["quant"] in ("fp32", "fp16") and quality_only["prune_method"] == "none"
    balanced = rank_configs(df, w=0.5)
    t = balanced.table
    assert t["R"].is_monotonic_decreasing and list(t["rank"]) == list(range(1, 7))
    assert t["R"].to_numpy() == pytest.approx(0.5 * t["phi"] + 0.5 * t["rho"])
    for bad in (-0.1, 1.5, True, "half"):
        with pytest.raises(ParameterError, match="w="):
            rank_configs(df, w=bad)


def test_pareto_mask_on_known_points():
    energy = [1.0, 2.0, 3.0, 2.5, 2.0, np.nan]
    quality = [0.5, 0.7, 0.9, 0.6, 0.7, 1.0]
    assert list(pareto_mask(energy, quality)) == [True, True, True, False, True, False]
    df = pd.DataFrame({"energy_j": energy, "score": quality})
    front = pareto_front(df)
    assert list(front["energy_j"]) == [1.0, 2.0, 2.0, 3.0]
    ranked = rank_configs(quant_frame())
    dominated = ranked.table[~ranked.table["pareto"]]
    assert set(zip(dominated["quant"], dominated["prune_method"], strict=True)) == {("int8", "2:4")}


def test_quant_prune_anova_with_phase():
    df = pd.concat([quant_frame().assign(phase="inference"),
                    quant_frame(seed=1).assign(phase="finetune", energy_j=lambda d: d["energy_j"] * 20)])
    res = anova(df, "energy_j", ["quant", "prune_method", "phase"])
    assert "quant:prune_method" not in set(res.table["source"])  # not all combinations measured
    assert res.row("phase")["p"] < 0.001 and res.row("quant")["p"] < 0.001


# ---------------------------------------------------------------- provenance

def test_provenance_summary_says_estimated_and_counts_repeats():
    df = model_task_frame(repeats=3).assign(
        hostname="box", cpu="EPYC", gpu=None, torch="2.13.0", energy_method="estimated",
        energy_source="estimate", cell_id=lambda d: d["model"] + d["task"], phase="generate",
        repeats_n=3, ci_rel_halfwidth=lambda d: np.where(d["model"] == "gpt2", 0.02, 0.05))
    summary = provenance_summary(df).set_index("item")["value"]
    assert summary["CPU"] == "EPYC" and summary["torch"] == "2.13.0"
    assert summary["Energy method"] == "estimated (27 rows)"
    assert summary["Repeats per cell"] == "3"
    assert summary["95% CI half-width (relative to the mean)"].startswith("2.0%–5.0%")
    assert "CPU energy on this machine is estimated, not measured" in summary["Note"]
    assert len(cell_precision(df)) == 9
    measured = provenance_summary(df.assign(energy_method="counter"))
    assert "Note" not in set(measured["item"])
