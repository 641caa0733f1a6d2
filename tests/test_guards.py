"""Every guard of a generated sentence, with data that trips it (issue 20, deliverable 1 and 9).

Each test builds the defect the issue saw -- a ranking of a classifier that
learned nothing, overlapping intervals called "most efficient", a poor fit
quoted as a share, fine-tune rows under load, estimate-only energy, a sentence
with an empty slot -- and checks the sentence is withheld or replaced by what
cannot be concluded; then that the same code still speaks when the data carry it.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nrg.book import findings as F
from nrg.book import found, quality, statement
from nrg.errors import ParameterError
from nrg.stats import anova, rank_configs
from nrg.stats.energy_time import energy_beyond_time, energy_lead

# ------------------------------------------------------------------ empty slots


def test_a_sentence_with_an_empty_slot_is_refused() -> None:
    with pytest.raises(ParameterError, match="empty slot"):
        statement.fill("Of the variance in {what}: {shares}.", {"what": "macro_f1", "shares": ""})
    with pytest.raises(ParameterError, match="empty slot"):
        statement.fill("R = {r}.", {"r": math.nan})
    assert statement.empty_slots("Of the variance in macro_f1: .") == [": ."]
    assert statement.empty_slots("With w = 0.5, the best is fp16 / 2:4 (R = 0.71).") == []
    with pytest.raises(ParameterError, match="empty slot"):
        statement.say(["Of the variance in macro_f1: ."])


def test_a_failed_check_gives_the_fallback_or_nothing() -> None:
    check = statement.Check("n", False, "only 2 configurations")
    said = statement.Finding("best is {x}.", {"x": "a"}, (check,), fallback="No best: {why}.")
    assert said.text() == "No best: only 2 configurations."
    assert statement.Finding("best is {x}.", {"x": "a"}, (check,)).text() is None
    assert statement.Finding("best is {x}.", {"x": "a"}).text() == "best is a."


def test_anova_with_no_finite_share_prints_no_empty_list() -> None:
    """ "Of the variance in macro_f1: ." came from a constant quality (macro-F1 0 everywhere)."""
    df = pd.DataFrame({"quant": ["a", "b", "c"] * 2, "prune": ["x"] * 3 + ["y"] * 3, "macro_f1": 0.0})
    text = list(F.anova_findings(anova(df, "macro_f1", ["quant", "prune"]), "macro_f1"))
    assert text and not any(statement.empty_slots(s) for s in text)
    assert not any(s.startswith("Of the variance in macro_f1") for s in text)


# ------------------------------------------------------------------ "best" from degenerate quality


def _ranked(quality: list[float], energy: list[float] | None = None, reps: int = 1):  # type: ignore[no-untyped-def]
    energy = energy or [10.0 + i for i in range(len(quality))]
    rows = [{"quant": f"q{i}", "prune": "none", "energy_j": e, "macro_f1": q, "train_repeat": r}
            for i, (q, e) in enumerate(zip(quality, energy, strict=True)) for r in range(reps)]
    return rank_configs(pd.DataFrame(rows), by=["quant", "prune"], quality="macro_f1", replicate="train_repeat")


def test_a_classifier_that_learned_nothing_gets_no_best() -> None:
    ranked = _ranked([0.0] * 9)
    first = F.ranking_findings(ranked).sentences[0]
    assert first.startswith("No best configuration is named") and "the same macro_f1" in first
    assert "R = 1.00" not in first


def test_two_configurations_are_not_ranked() -> None:
    first = F.ranking_findings(_ranked([0.8, 0.5])).sentences[0]
    assert first.startswith("No best configuration is named") and "only 2 configurations ranked" in first


def test_quality_at_chance_gets_no_best_and_quality_above_it_does() -> None:
    low = _ranked([0.10, 0.12, 0.11])
    assert "does not rise above chance (0.125)" in F.ranking_findings(low, chance=0.125).sentences[0]
    good = _ranked([0.80, 0.60, 0.70])
    assert F.ranking_findings(good, chance=0.125).sentences[0].startswith("With w = 0.5, the best configuration")


def test_chance_is_judged_on_the_lower_end_of_the_quality_interval() -> None:
    rows = [{"quant": q, "prune": "none", "energy_j": e, "macro_f1": f, "train_repeat": r}
            for q, e, fs in (("a", 5.0, (0.05, 0.45)), ("b", 9.0, (0.2, 0.22)), ("c", 12.0, (0.1, 0.12)))
            for r, f in enumerate(fs)]
    ranked = rank_configs(pd.DataFrame(rows), by=["quant", "prune"], quality="macro_f1", replicate="train_repeat")
    assert ranked.table.iloc[0]["quant"] == "a" and ranked.table.iloc[0]["quality_ci_low"] < 0.125
    assert "does not rise above chance" in F.ranking_findings(ranked, chance=0.125).sentences[0]


def test_chance_of_the_tickets_tasks_comes_from_the_tickets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    from nrg.book.chapters.c04_network_tickets import driver as chapter
    from nrg.book.chapters.c04_network_tickets.chance import chance_quality

    params = chapter.Params(n_tickets=60, run_dir=str(tmp_path / "run"))
    root = chance_quality(params, "root_cause", "macro_f1")
    assert root is not None and 0.05 < root < 0.5
    reply = chance_quality(params, "response", "rouge_l")
    assert reply is not None and 0 < reply < 1
    assert chance_quality({}, "root_cause", "macro_f1") is None


# ------------------------------------------------------------------ overlapping intervals


def _calibration(spread: float) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for size, rate in ((256, 5.0), (512, 6.8), (1024, 6.6)):
        for repeat in range(5):
            gflop = 2 * size**3 / 1e9
            energy = gflop / (rate + rng.normal(0, spread))
            rows.append({"matrix_size": size, "repeat": repeat, "gflop": gflop, "time_s": energy / 25,
                         "energy_j": energy, "gflop_per_j": gflop / energy, "energy_method": "estimated",
                         "energy_source": "cpu=estimate: CPU 'AMD EPYC' not in the table"})
    return pd.DataFrame(rows)


def test_most_efficient_only_when_its_interval_clears_the_runner_up() -> None:
    overlapping = found.collect("00_how_energy_is_measured", _calibration(spread=0.5), {})
    assert not any(s.startswith("The most efficient size is") for s in overlapping)
    assert any("is not distinguishable from size 1024" in s for s in overlapping)
    clear = found.collect("00_how_energy_is_measured", _calibration(spread=0.01), {})
    assert any(s.startswith("The most efficient size is 512") for s in clear)
    assert not any("Energy was obtained by" in s or "AMD EPYC" in s for s in clear)   # no raw source string


def test_cheapest_only_when_separated() -> None:
    rng = np.random.default_rng(1)
    rows = [{"model": m, "task": "qa", "energy_per_token_j": mean + rng.normal(0, sd)}
            for m, mean, sd in (("a", 1.0, 0.3), ("b", 1.1, 0.3), ("c", 3.0, 0.01)) for _ in range(4)]
    said = found.extremes(pd.DataFrame(rows), ["model", "task"])
    assert said[0].startswith("Mean energy per token ranges from") and said[1].startswith("No single cheapest")
    rows = [{"model": m, "task": "qa", "energy_per_token_j": mean + rng.normal(0, 0.01)}
            for m, mean in (("a", 1.0), ("b", 2.0), ("c", 3.0)) for _ in range(4)]
    assert found.extremes(pd.DataFrame(rows), ["model", "task"])[1].startswith("The cheapest, a, qa")


def test_measurement_spread_only_for_differences_within_it() -> None:
    """0.152 s (sd 0.003) vs 0.221 s (sd 0.020) is not "measurement spread"."""
    from nrg.book.chapters.c04_network_tickets import analysis

    table = pd.DataFrame([{"task": "root_cause", "quant": "none", "prune": "2:4", "kernel": "dense",
                           "saves_compute": "no: dense kernels multiply the zeros", "time_s": 0.221,
                           "time_sd_s": 0.020, "time_s_unpruned": 0.152, "time_sd_s_unpruned": 0.003,
                           "time_vs_unpruned": 0.221 / 0.152}])
    text = analysis.kernel_sentence(table, "cpu")
    assert "Beyond the measurement spread" in text and "Within the measurement spread" not in text
    close = table.assign(time_s=0.154)
    assert "Within the measurement spread" in analysis.kernel_sentence(close, "cpu")


# ------------------------------------------------------------------ robust verdicts and shares


def test_effect_verdicts_follow_the_robust_test_where_they_differ() -> None:
    rng = np.random.default_rng(0)
    rows = [{"model": m, "task": t, "energy_per_token_j": base + rng.normal(0, 0.3 if (m, t) == ("falcon", "qa") else 0.01)}
            for m, base in (("gpt2", 0.1), ("falcon", 0.6), ("t5", 0.3))
            for t in ("qa", "generation", "summarization") for _ in range(4)]
    res = anova(pd.DataFrame(rows), "energy_per_token_j", ["model", "task"])
    assert res.row("model:task")["p"] < 0.05    # the classical test calls the interaction significant
    text = list(F.anova_findings(res))
    verdict = next(s for s in text if "model × task interaction" in s)
    assert verdict.startswith("The model × task interaction is not significant (robust p")
    assert any("the verdicts above follow the robust test" in s for s in text)
    assert not any(s.startswith("Simple effects of") for s in text)   # no follow-up of an overturned term


def test_shares_that_do_not_add_up_say_why() -> None:
    rng = np.random.default_rng(2)
    rows = [{"a": a, "b": b, "y": (a == "x") * 1.0 + (b == "u") * 0.5 + rng.normal(0, 0.1)}
            for a, b, n in (("x", "u", 2), ("x", "v", 6), ("z", "u", 6), ("z", "v", 2)) for _ in range(n)]
    res = anova(pd.DataFrame(rows), "y", ["a", "b"])
    total = res.table["eta_sq"].sum()
    assert abs(total - 1) > 0.005
    assert any("not 100 %" in s and "Partial η²" in s for s in F.anova_findings(res))


# ------------------------------------------------------------------ interference and missed CI targets


def _finetune_rows(flag: object) -> pd.DataFrame:
    rows = [{"cell_id": c, "status": "ok", "phase": p, "repeat": 0, "quant": c, "prune": "none",
             "ci_rel_halfwidth": 0.02, "ci_rel_target": 0.05, "other_cpu_frac": frac, "interference": flag}
            for c, frac in (("a", 0.66), ("b", 0.78), ("c", 0.05)) for p in ("finetune", "inference")]
    return pd.DataFrame(rows)


def test_fine_tune_rows_under_load_are_counted_even_without_a_flag() -> None:
    """Chapter 4's fine-tune rows recorded other_cpu_frac 0.66-0.78 and interference null."""
    rows = _finetune_rows(None)
    assert quality.interference_count(rows) == 4     # a and b, both phases
    text = quality.disturbance(rows)[0]
    assert "4 of 6 measured repeats were flagged for interference" in text and "other_cpu_frac" in text


def test_every_box_names_interference_and_missed_targets() -> None:
    rng = np.random.default_rng(0)
    rows = [{"cell_id": f"c{b}", "status": "ok", "phase": "generate", "repeat": r, "model": "m", "batch_size": b,
             "energy_j": 10 + 2 * b + rng.normal(0, 0.05), "time_s": 1 + 0.1 * b, "tokens": 4 * b,
             "energy_per_token_j": (10 + 2 * b) / (4 * b), "tokens_per_s": 4 * b / (1 + 0.1 * b),
             "ci_rel_halfwidth": 0.2, "ci_rel_target": 0.05, "interference": True, "energy_method": "counter"}
            for b in (1, 2, 4) for r in range(3)]
    box = found.collect("05_batch_size", pd.DataFrame(rows), {"alpha": 0.05})
    assert any("3 of 3 cells missed their 95% CI target" in s and "9 of 9 measured repeats were flagged" in s
               for s in box)


# ------------------------------------------------------------------ estimate-only energy


def _estimated_rows(power_w: float = 27.0, jitter: float = 0.002) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    time_s = rng.uniform(0.5, 3.0, 30)
    return pd.DataFrame({"time_s": time_s, "energy_j": time_s * power_w * (1 + rng.normal(0, jitter, 30)),
                         "energy_method": "estimated", "status": "ok"})


def test_estimated_energy_that_is_only_time_says_so_first() -> None:
    found_ = energy_beyond_time(_estimated_rows())
    assert found_ is not None and found_.corr > 0.99 and found_.only_time
    lead = energy_lead(_estimated_rows())
    assert lead[0].startswith("**Energy here is estimated, not measured**") and "corr(energy, time) = " in lead[0]
    assert "latency comparison times an assumed power" in lead[1]
    measured = _estimated_rows().assign(energy_method="counter")
    assert energy_lead(measured) == []
    varied = _estimated_rows(jitter=0.3)
    assert not energy_beyond_time(varied).only_time and len(energy_lead(varied)) == 1  # type: ignore[union-attr]


def test_estimated_energy_is_labelled_on_axes_tables_and_analyses() -> None:
    from nrg.book import labels, plots

    rows = _estimated_rows().assign(model="m", task="qa", energy_per_token_j=lambda d: d["energy_j"] / 10)
    fig = plots.bar_by_group(rows, measure="energy_per_token_j", x="model", hue="task")
    assert fig.axes[0].get_ylabel().startswith("Estimated energy per token")
    assert plots.bar_by_group(rows, measure="time_s", x="model", hue="task").axes[0].get_ylabel() == "Time (s)"
    table = labels.mark_estimated(pd.DataFrame({"energy_j mean": [1.0], "time_s": [1.0]}), rows)
    assert list(table.columns) == ["energy_j mean (estimated)", "time_s"]
    res = anova(rows.assign(model=["a", "b", "c"] * 10), "energy_per_token_j", ["model"])
    assert res.estimated and "estimated energy" in res._repr_html_()
    assert "estimated energy per token" in " ".join(F.anova_findings(res, "energy per token"))


# ------------------------------------------------------------------ names that tell the truth


def test_a_model_that_is_not_the_published_one_says_so() -> None:
    from nrg.book.labels import model_label, with_model_labels

    rows = pd.DataFrame([{"model": "t5-3b", "layers": 2, "weights": "random", "tiny": False, "n_params": 268e6,
                          "quant": "none", "prune": "none"},
                         {"model": "gpt2", "layers": None, "weights": "real", "tiny": False, "n_params": 124e6,
                          "quant": "none", "prune": "none"},
                         {"model": "minilm-l6", "layers": None, "weights": "real", "tiny": False, "n_params": 22e6,
                          "quant": "int8-dynamic", "prune": "2:4"}])
    labelled = with_model_labels(rows)
    assert labelled["model"].tolist() == ["t5-3b [2/24 layers, random, 268 M params]", "gpt2 [124 M params]",
                                          "minilm-l6 [int8-dynamic, pruned 2:4, 22 M params]"]
    assert labelled["model_name"].tolist() == ["t5-3b", "gpt2", "minilm-l6"]
    assert with_model_labels(labelled)["model"].equals(labelled["model"])        # labelling twice: same
    assert model_label({"model": "mistral-7b-v0.1", "layers": 1, "weights": "random"}, with_params=False) \
        == "mistral-7b-v0.1 [1/32 layers, random]"


def test_summary_tables_of_estimated_energy_say_so_in_their_headers() -> None:
    from nrg.book import display
    from nrg.stats import summarize
    from nrg.stats._data import is_energy

    rows = _estimated_rows().assign(model=["a", "b", "c"] * 10)
    summary = summarize(rows, by=["model"], measures=["energy_j", "time_s"])
    pivot = summary.pivot_table(index="model", columns="measure", values="mean")
    headers = list(display.table(pivot).data.columns)
    assert "Estimated energy (J)" in headers and "Time (s)" in headers
    assert "Estimated energy (J)" in set(display.table(summary).data["Measure"])
    measured = summarize(rows.assign(energy_method="counter"), by=["model"], measures=["energy_j"])
    assert "Energy (J)" in set(display.table(measured).data["Measure"])
    assert not is_energy("energy_method") and is_energy("energy_per_token_j")


def test_a_fall_in_energy_is_called_spread_only_within_the_spread() -> None:
    calib = _calibration(spread=0.01)
    calib.loc[calib["matrix_size"] == 1024, "energy_j"] = 0.001        # far below size 512, every window
    said = " ".join(found.collect("00_how_energy_is_measured", calib, {}))
    assert "by more than the windows' spread" in said and "512 → 1024" in said
    rng = np.random.default_rng(0)
    noisy = _calibration(spread=0.01)
    noisy["energy_j"] = 1.0 + rng.normal(0, 0.2, len(noisy))          # no trend, all spread
    said = " ".join(found.collect("00_how_energy_is_measured", noisy, {}))
    assert "within the windows' spread" in said or "rises with the work" in said


def test_per_token_fits_of_estimated_energy_say_estimated() -> None:
    from nrg.stats import per_token_costs

    rng = np.random.default_rng(0)
    rows = pd.DataFrame([{"model": "m", "input_tokens": i, "output_tokens": o, "status": "ok",
                          "energy_j": 1 + 0.01 * i + 0.1 * o + rng.normal(0, 0.01), "energy_method": "estimated"}
                         for i in (8, 16, 32) for o in (2, 4, 8) for _ in range(2)])
    costs = per_token_costs(rows, response="energy_j", by=["model"])
    assert all(s.startswith("For m, estimated energy rises") for s in F.length_findings(costs, "energy_j"))
    measured = per_token_costs(rows.assign(energy_method="counter"), response="energy_j", by=["model"])
    assert all(s.startswith("For m, energy rises") for s in F.length_findings(measured, "energy_j"))


def _generation_rows(seed: int = 0) -> pd.DataFrame:
    """Generation rows as a sweep writes them (prefill, decode, generate per repeat), estimated energy."""
    rng = np.random.default_rng(seed)
    rows = []
    for model, scale in (("gpt2 [tiny widths, random, 3.88 M params]", 1.0), ("smollm2-135m [135 M params]", 3.0)):
        for task, (n_in, n_out) in (("qa", (32, 2)), ("summarization", (128, 4))):
            for repeat in range(3):
                time_s = scale * (0.01 * n_in + 0.1 * n_out) * (1 + rng.normal(0, 0.02))
                for phase, share in (("prefill", 0.2), ("decode", 0.8), ("generate", 1.0)):
                    t = time_s * share
                    rows.append({"cell_id": f"{model}-{task}", "repeat": repeat, "phase": phase, "status": "ok",
                                 "model": model, "task": task, "input_tokens": n_in, "output_tokens": n_out,
                                 "time_s": t, "energy_j": 21 * t, "energy_per_token_j": 21 * t / n_out,
                                 "tokens_per_s": n_out / t, "energy_method": "estimated", "interference": False,
                                 "ci_rel_halfwidth": 0.03, "ci_rel_target": 0.05, "block": repeat,
                                 "run_order": repeat, "run_id": "r"})
    return pd.DataFrame(rows)


def test_every_generated_box_sentence_is_whole() -> None:
    """The boxes of chapters 1, 2 and 5 on constructed rows: no empty slot, estimated energy framed first."""
    rows = _generation_rows()
    boxes = {"01_model_comparison": found.collect("01_model_comparison", rows, {"alpha": 0.05})}
    params2 = {"alpha": 0.05, "joint_input_tokens": [32, 128], "joint_output_tokens": [2, 4]}
    boxes["02_sequence_length"] = found.collect("02_sequence_length", rows, params2)
    batch = rows.assign(batch_size=rows["task"].map({"qa": 1, "summarization": 2}))
    boxes["05_batch_size"] = found.collect("05_batch_size", batch, {"alpha": 0.05})
    for chapter, sentences in boxes.items():
        assert sentences[0].startswith("**Energy here is estimated"), chapter
        assert not any(statement.empty_slots(s) for s in sentences), chapter
        assert any("flagged for interference" in s for s in sentences), chapter


def test_a_single_window_is_not_called_spread_and_prints_no_nan() -> None:
    from nrg.book.chapters.c04_network_tickets import analysis

    table = pd.DataFrame([{"task": "root_cause", "quant": "none", "prune": "2:4", "kernel": "dense",
                           "saves_compute": "no: dense kernels multiply the zeros", "time_s": 0.2,
                           "time_sd_s": float("nan"), "time_s_unpruned": 0.15, "time_sd_s_unpruned": float("nan"),
                           "time_vs_unpruned": 0.2 / 0.15}])
    text = analysis.kernel_sentence(table, "cpu")
    assert "Within the measurement spread" not in text and "nan" not in text and "(one window)" in text


def test_serving_box_opens_with_the_estimate_and_names_interference_without_a_flag_column() -> None:
    """Chapter 6's rows record other processes' share but no `interference` column: the box says so truthfully."""
    from nrg.book.chapters.c06_serving import findings as serving_findings

    rng = np.random.default_rng(1)
    rows = [{"cell_id": "s", "status": "ok", "phase": "steady", "model": "m", "concurrency": c, "block": b,
             "repeat": 5 * b + i, "energy_j": (30 + c) * (1 + rng.normal(0, 0.01)), "time_s": 1 + c / 30,
             "tokens": 32 * c, "energy_per_token_j": (30 + c) / (32 * c), "itl_p50_s": 0.05 + 0.003 * c,
             "ci_rel_halfwidth": 0.05, "repeats_n": 3, "other_cpu_frac": 0.6 if c == 4 else 0.05,
             "energy_method": "estimated", "energy_source": "cpu=estimate"}
            for b in range(3) for i, c in enumerate((1, 4))]
    box = serving_findings.found(pd.DataFrame(rows), {"alpha": 0.05, "skip_reason": None})
    assert box[0].startswith("**Energy here is estimated, not measured**")
    trust = next(s for s in box if "measured repeats were flagged for interference" in s)
    assert "3 of 6 measured repeats were flagged" in trust and "`other_cpu_frac` column" in trust
    assert "marked in the `interference` column" not in trust and "no CI target" in trust
