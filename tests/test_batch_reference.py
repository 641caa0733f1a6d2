"""Chapter 5 reads the folder ``nrg reference`` writes: ``results/reference/<gpu-slug>/05_batch_size/``.

Unit level: the run folder is written here with the store's own API (a manifest
and one cell file of rows standing for a GPU run), under ``tmp_path``; no model
runs. The part that writes it on a GPU is :func:`nrg.reference.parts.parts`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nrg.book import common
from nrg.book import reference_section as reference
from nrg.book.chapters.c05_batch_size import driver as batch_size
from nrg.reference.parts import parts
from nrg.sweep.runfolder import manifest
from nrg.sweep.runfolder.store import RunStore

SLUG = "nvidia-h200"


def _write_run(folder: Path, sizes: tuple[int, ...] = (1, 4, 16)) -> Path:
    rng = np.random.default_rng(0)
    rows = [{"run_id": "r", "chapter": batch_size.CHAPTER, "cell_id": f"c{b}", "status": "ok", "repeat": r,
             "phase": "generate", "model": "gpt2", "weights": "random", "n_params": 124e6, "batch_size": b,
             "input_tokens": 256, "output_tokens": 64, "tokens": 64 * b, "time_s": 0.5 + 0.02 * b,
             "energy_j": 50.0 + 5.0 * b + rng.normal(0, 0.2), "energy_per_token_j": (50.0 + 5.0 * b) / (64 * b),
             "tokens_per_s": 64 * b / (0.5 + 0.02 * b), "energy_method": "counter",
             "energy_source": "gpu:0=nvml-counter", "gpu": "NVIDIA H200", "driver": "570.1", "device": "cuda",
             "started_at": "2026-12-01T10:00:00+00:00"}
            for b in sizes for r in range(3)]
    store = RunStore.at(folder)
    store.create()
    manifest.open_session(folder, "05_batch_size-reference", batch_size.CHAPTER, {"name": "x"}, {})
    frame = pd.DataFrame(rows)
    for cell_id, part in frame.groupby("cell_id"):
        store.write_cell(str(cell_id), part)
    return folder


def test_nrg_reference_on_a_gpu_writes_the_folder_chapter_5_reads() -> None:
    (part,) = [p for p in parts("cuda") if p.chapter == batch_size.CHAPTER]
    assert all(c["chapter"] == batch_size.CHAPTER and len(c["batch_sizes"]) >= 2 for c in part.configs)


def test_chapter_5_finds_and_shows_the_reference_layout(tmp_path: Path) -> None:
    root = tmp_path / "results" / "reference"
    run = _write_run(root / SLUG / batch_size.CHAPTER)
    params = batch_size.Params(reference_dir=str(root), run_dir=str(tmp_path / "runs"))
    assert params["reference"] == {SLUG: run} == common.reference_runs(root, batch_size.CHAPTER)
    shown = reference.section(batch_size.CHAPTER, params)
    label = str(shown[0])
    assert label.startswith("**Reference data: NVIDIA H200**") and "Energy method: counter" in label
    assert f"results/reference/{SLUG}/05_batch_size" in label and "3 of 3 cells ok" in label
    table = shown[1]
    assert list(table["batch_size"]) == [1, 4, 16] and table["model"].iloc[0] == "gpt2 [random, 124 M params]"
    assert "going from batch 1 to 16" in str(shown[2])


def test_an_archive_level_and_a_budget_cut_run_are_handled(tmp_path: Path) -> None:
    root = tmp_path / "reference"
    run = _write_run(root / SLUG / "ref" / batch_size.CHAPTER, sizes=(1,))     # tar of --out ref, one size
    params = batch_size.Params(reference_dir=str(root), run_dir=str(tmp_path / "runs"))
    assert params["reference"] == {SLUG: run}
    said = " ".join(str(x) for x in reference.section(batch_size.CHAPTER, params) if isinstance(x, common.Text))
    assert "Only batch size 1 was measured" in said
    empty = batch_size.Params(reference_dir=str(tmp_path / "none"), run_dir=str(tmp_path / "runs"))
    (text,) = reference.section(batch_size.CHAPTER, empty)
    assert "results/reference/<gpu-slug>/05_batch_size/" in str(text) and "nrg reference" in str(text)
