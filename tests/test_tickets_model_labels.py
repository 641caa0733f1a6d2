"""Chapter 4's per-configuration tables name the model as it ran, with its parameter count.

The rows stand for what chapter 4's cells write (a truncated MiniLM, fp32 / nf4,
unpruned / 2:4); the tables are the chapter's own functions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from nrg.book.chapters.c04_network_tickets import analysis
from nrg.book.labels import with_model_labels


def _rows() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for q, p, f1 in (("none", "none", 0.8), ("nf4", "none", 0.7), ("none", "2:4", 0.6), ("nf4", "2:4", 0.5)):
        for phase, windows in (("finetune", 1), ("inference", 3)):
            for w in range(windows):
                rows.append({"task": "root_cause", "model": "minilm-l6", "weights": "real", "layers": 2,
                             "tiny": False, "n_params": 22.7e6, "quant": q, "prune": p, "phase": phase,
                             "status": "ok", "window": w, "train_repeat": 0, "energy_j": 10 + rng.normal(0, 0.1),
                             "time_s": 1 + rng.normal(0, 0.01), "macro_f1": f1, "accuracy": f1,
                             "energy_method": "estimated", "kernel": "dense", "sparsity": 0.5 if p != "none" else 0.0,
                             "prune_method": "2:4" if p != "none" else "none", "prune_note": "",
                             "finetune_path": "lora"})
    return pd.DataFrame(rows)


def test_combinations_ranking_and_kernels_carry_the_label_and_the_parameter_count() -> None:
    for rows in (_rows(), with_model_labels(_rows())):      # raw rows, or labelled as measure() returns them
        table = analysis.combinations(rows, "root_cause", ["macro_f1"]).set_index(["quant", "prune", "phase"])
        assert table.loc[("nf4", "2:4", "inference"), "model"] == "minilm-l6 [2/6 layers, nf4, pruned 2:4, 22.7 M params]"
        assert table.loc[("none", "none", "finetune"), "model"] == "minilm-l6 [2/6 layers, 22.7 M params]"
        assert set(table["params"]) == {"22.7 M"}
        ranked = analysis.ranking(rows, "root_cause", "inference", "macro_f1", 0.5).table
        assert list(ranked.columns[:5]) == ["rank", "quant", "prune", "model", "params"]
        top = ranked.iloc[0]
        assert top["model"].startswith("minilm-l6 [2/6 layers") and (top["quant"] in top["model"]) == (top["quant"] != "none")
        kernels = analysis.kernels(rows)
        assert list(kernels["model"]) == ["minilm-l6 [2/6 layers, pruned 2:4, 22.7 M params]",
                                          "minilm-l6 [2/6 layers, nf4, pruned 2:4, 22.7 M params]"]


def test_the_shown_ranking_names_the_model_and_says_its_energy_is_estimated(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from nrg.book import display

    shown: list[dict] = []
    monkeypatch.setattr(display, "_publish", lambda data, metadata=None: shown.append(data))
    display.show_rank(analysis.ranking(_rows(), "root_cause", "inference", "macro_f1", 0.5))
    html = shown[0]["text/html"]
    assert "Estimated energy mean" in html and "minilm-l6 [2/6 layers, nf4, pruned 2:4, 22.7 M params]" in html
