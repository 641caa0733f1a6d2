"""The chapters' reference section and claims table on a reference folder measured in the test.

The folder is what ``nrg reference --out <root>/<gpu-slug>`` writes: the same
sweep configs (:func:`nrg.reference.parts.parts`, cut to one-layer models so
the test stays short) run into ``<root>/<gpu-slug>/<chapter>/``, on a fake
H200 behind pynvml (tests/fakes/h200.py): the rows carry its name, its driver
and a counter-measured energy. The fake stands in for the GPU only; the
sweep, the store, the section and the claims are the real ones. The folder
lives under ``tmp_path`` -- fake data never reaches ``results/``.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nrg import dvfs
from nrg.book import claims, common
from nrg.book import reference_section as reference
from nrg.book.chapters.c01_model_comparison import driver as model_comparison
from nrg.book.chapters.c02_sequence_length import driver as sequence_length
from nrg.book.chapters.c03_dvfs import analysis as dvfs_analysis
from nrg.book.chapters.c03_dvfs.reference import CLOCK_SWEEP_COMMAND
from nrg.book.chapters.c04_network_tickets import driver as tickets
from nrg.errors import ParameterError
from nrg.reference.parts import parts
from nrg.sweep.run import run_sweep

try:
    from fakes.h200 import FakeH200
except ImportError:  # tests/ collected as a package
    from tests.fakes.h200 import FakeH200

SLUG = "nvidia-h200"
CHAPTERS = ("01_model_comparison", "02_sequence_length", "03_dvfs", "04_network_tickets")


def _trim(config: dict, models: list[str], **changes: object) -> dict:
    """A reference config with one-layer models, in-process, metered by the (fake) NVML counter only."""
    entries = [{**m, "layers": 1} for m in config["models"] if m["name"] in models]
    return {**config, "models": entries, "isolate": False, "meters": ["nvml"], **changes}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """``<tmp>/results/reference/nvidia-h200/<chapter>/`` for chapters 1-4, and the fake's state file."""
    tmp = tmp_path_factory.mktemp("ref")
    root = tmp / "results" / "reference"
    state = tmp / "h200.json"
    planned = {p.chapter: p for p in parts("cpu")}
    tickets_config = planned["04_network_tickets"].configs[0]
    configs = {
        "02_sequence_length": _trim(planned["02_sequence_length"].configs[0], ["gpt2"]),
        "01_model_comparison": _trim(planned["01_model_comparison"].configs[0], ["gpt2", "gpt-neo-2.7b"]),
        "03_dvfs": _trim(planned["03_dvfs"].configs[0], ["gpt-neo-2.7b"]),
        "04_network_tickets": _trim(tickets_config, ["smollm2-135m"], axes={**tickets_config["axes"], "quant": ["none"]}),
    }
    fake = FakeH200(state, counter_update_s=0.001)   # short windows of tiny models read a counter step
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "pynvml", fake)
        dvfs.configure(nvml_module=fake)
        try:
            for chapter, config in configs.items():
                run_sweep(config, root / SLUG / chapter, progress=False, isolate=False,
                          monitor_options={"nvml_module": fake})
        finally:
            dvfs.configure()
    return root, state


def _params(chapter: str, root: Path | None) -> dict:
    reference_dir = str(root) if root is not None else None
    if chapter == "01_model_comparison":
        return model_comparison.Params(models=["gpt2"], reference_dir=reference_dir)
    if chapter == "02_sequence_length":
        return sequence_length.Params(reference_dir=reference_dir)
    if chapter == "04_network_tickets":
        return tickets.Params(reference_dir=reference_dir)
    from nrg.book.chapters.c03_dvfs import driver as chapter3

    return chapter3.Params(models=["gpt2"], device="cpu", reference_dir=reference_dir)


def test_the_layout_nrg_reference_writes_is_what_the_chapters_read(measured):
    root, state = measured
    for chapter in CHAPTERS:
        assert common.reference_runs(root, chapter) == {SLUG: root / SLUG / chapter}
        assert _params(chapter, root)["reference"] == {SLUG: root / SLUG / chapter}
    assert json.loads(state.read_text())["calls"] == []        # nothing was set on the GPU


def test_an_archive_unpacked_under_the_gpu_folder_is_found(measured, tmp_path):
    root, _ = measured
    target = tmp_path / "reference" / SLUG / "ref" / "02_sequence_length"   # tar of --out ref, under <slug>/
    shutil.copytree(root / SLUG / "02_sequence_length", target)
    (tmp_path / "reference" / "empty-gpu").mkdir()
    assert common.reference_runs(tmp_path / "reference", "02_sequence_length") == {SLUG: target}
    assert common.reference_runs(tmp_path / "reference", "03_dvfs") == {}
    assert common.reference_runs(None, "03_dvfs") == {}


@pytest.mark.parametrize("name, slug", [("NVIDIA H200", "nvidia-h200"),
                                        ("NVIDIA A100-SXM4-80GB", "nvidia-a100-sxm4-80gb"), ("???", "gpu")])
def test_gpu_slug(name, slug):
    assert common.gpu_slug(name) == slug


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_section_labels_the_data_and_shows_the_key_table(measured, chapter):
    root, _ = measured
    shown = reference.section(chapter, _params(chapter, root))
    label = str(shown[0])
    for part in ("NVIDIA H200", "driver fake-570.00", "Energy method: counter", "gpu:0=nvml-counter",
                 f"results/reference/{SLUG}/{chapter}", "Measured on "):
        assert part in label, (part, label)
    tables = [x for x in shown if isinstance(x, pd.DataFrame)]
    assert len(tables) == 1 and not tables[0].empty
    assert not any("No table" in str(x) for x in shown)


def test_the_key_tables_are_computed_from_the_reference_rows(measured):
    root, _ = measured
    rows = reference.load(_params("02_sequence_length", root))[SLUG]
    costs = next(x for x in reference.section("02_sequence_length", _params("02_sequence_length", root))
                 if isinstance(x, pd.DataFrame))
    assert set(costs["term"]) == {"input_tokens", "output_tokens"} and set(costs["model"]) == set(rows["model"])
    assert costs["n"].iloc[0] == len(rows[(rows["phase"] == "generate") & (rows["status"] == "ok")])
    ticket_table = next(x for x in reference.section("04_network_tickets", _params("04_network_tickets", root))
                        if isinstance(x, pd.DataFrame))
    assert set(ticket_table["prune"]) == {"none", "2:4"}
    assert ticket_table.set_index("prune").loc["none", "energy_vs_unpruned"] == pytest.approx(1.0)
    dvfs_table = next(x for x in reference.section("03_dvfs", _params("03_dvfs", root)) if isinstance(x, pd.DataFrame))
    assert list(dvfs_table.index.get_level_values("setting")) == ["default"]
    assert dvfs_table["gpu_clock_mhz_observed_mean"].iloc[0] == 1980             # observed, never set


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_without_reference_data_the_section_says_so_and_gives_the_command(chapter, tmp_path):
    (tmp_path / "noref").mkdir()
    shown = reference.section(chapter, _params(chapter, tmp_path / "noref"))
    assert len(shown) == 1
    text = str(shown[0])
    assert "No GPU reference data has been committed" in text
    assert "`nrg reference --budget-s 480 --out results/reference/<gpu-slug>`" in text
    assert f"`{CLOCK_SWEEP_COMMAND}`" in text and "owner agrees" in text


def test_a_run_without_rows_is_labelled_and_says_so(measured, tmp_path):
    root, _ = measured
    empty = tmp_path / "reference" / "some-gpu" / "02_sequence_length"
    empty.mkdir(parents=True)
    shutil.copy(root / SLUG / "02_sequence_length" / "manifest.json", empty)
    params = _params("02_sequence_length", tmp_path / "reference")
    shown = reference.section("02_sequence_length", params)
    assert "0 of 0 cells ok" in str(shown[0]) and "No table from this run: the run holds no measured rows" in str(shown[1])
    frame = claims.section("02_sequence_length", None, params).frame
    assert (frame["verdict (reference some-gpu)"] == claims.NOT_MEASURED).all()


def test_section_refuses_an_unknown_chapter():
    with pytest.raises(ParameterError, match="chapter"):
        reference.section("05_nothing", {"reference": {}})


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_claims_have_a_column_for_the_reference_run(measured, chapter):
    root, _ = measured
    params = _params(chapter, root)
    ref = reference.load(params)[SLUG]
    table = claims.section(chapter, None, params)
    title = f"reference {SLUG} (NVIDIA H200; energy counter)"
    assert title in table.frame.columns
    assert set(table.frame[f"verdict (reference {SLUG})"]) <= set(claims.VERDICTS)
    for claim, text in zip(claims.claims_of(chapter), table.frame[title], strict=True):
        assert text.startswith(claim.evaluate(ref, params)[0].text)     # computed from the reference rows


def test_reference_decode_share_is_measured_and_chapter_4_lacks_quality(measured):
    root, _ = measured
    params = _params("02_sequence_length", root)
    frame = claims.section("02_sequence_length", None, params).frame.set_index("claim")
    share = frame.iloc[0][f"reference {SLUG} (NVIDIA H200; energy counter)"]
    assert share.split(" ")[0].endswith("%") and "4 cells" in share
    frame4 = claims.section("04_network_tickets", None, _params("04_network_tickets", root)).frame
    assert (frame4[f"verdict (reference {SLUG})"] == claims.NOT_MEASURED).all()
    assert frame4[f"reference {SLUG} (NVIDIA H200; energy counter)"].str.contains("task quality").all()


def test_chapter_3_analysis_labels_reference_runs_with_gpu_and_method(measured):
    root, _ = measured
    analyses = dvfs_analysis.analyse_all(None, common.reference_runs(root, "03_dvfs"))
    (label,) = analyses
    assert "NVIDIA H200" in label and "counter" in label


# ---------------------------------------------------------------- one path for GPU owners

ROOT = Path(__file__).resolve().parents[1]


def _documented(path: Path) -> list[str]:
    """The `nrg reference` and `nrg book run 03_dvfs` lines of a page's code blocks."""
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip().startswith(("nrg reference ", "nrg book run 03_dvfs "))]


def test_readme_reproduce_and_chapter_3_give_the_same_gpu_commands():
    commands = reference.gpu_owner_commands()
    for page in (ROOT / "README.md", ROOT / "book" / "reproduce.md"):
        assert _documented(page) == list(commands), page.name
    from nrg.book.chapters.c03_dvfs import driver as chapter3

    message = chapter3.no_reference_message(_params("03_dvfs", None))
    assert all(f"`{c}`" in message for c in commands)
    out = shlex.split(commands[0])[shlex.split(commands[0]).index("--out") + 1]
    sweep = shlex.split(commands[1])
    assert sweep[sweep.index("run_dir") + 1] == f"{out}/03_dvfs"        # the folder chapter 3 reads
    assert "allow_hardware_settings" in sweep and sweep[sweep.index("allow_hardware_settings") + 1] == "true"


def test_the_handed_out_sweep_covers_the_gpus_clocks_with_the_paper_models():
    import yaml

    from nrg.book import build as book
    from nrg.book.chapters.c03_dvfs import driver as chapter3

    paper = book.load_profile(ROOT, "gpu-paper")["03_dvfs"]
    assert paper["gpu_clocks_mhz"] == "auto" and paper["models"] == [m["name"] for m in chapter3.PAPER_SETTING["models"]]
    assert (paper["input_tokens"], paper["output_tokens"]) == (chapter3.PAPER_SETTING["input_tokens"],
                                                               chapter3.PAPER_SETTING["output_tokens"])
    on_cpu = _params("03_dvfs", None)                      # the chapter ran here on a CPU with small models
    config = yaml.safe_load(chapter3.reference_sweep_yaml(on_cpu, clocks=[1980, 1410, 600]))
    assert [m["name"] for m in config["models"]] == paper["models"]
    assert config["axes"]["gpu_clock_mhz"] == [None, 1980, 1410, 600] and config["device"] == "cuda"


@pytest.mark.slow
def test_the_documented_reference_command_feeds_a_chapter(tmp_path, monkeypatch):
    """README's `nrg reference` (with --device cpu) into results/reference/<gpu>/; chapter 2 then shows it."""
    from nrg.book import build as book

    # The documented command, shortened to what this test reads: chapter 2's part (`--chapters`), one
    # cell of it (`--one-per-part`). The whole run took 137-166 s of this test on a quiet machine for
    # cells it never read; the key tables on a full reference run are checked on the fake H200's run
    # (test_section_labels_the_data_and_shows_the_key_table). One cell cannot fit a slope: the page says so.
    command = reference.gpu_owner_commands()[0].replace("<gpu-slug>", "cpu-test").replace("480", "150")
    args = [*shlex.split(command)[1:], "--device", "cpu", "--no-progress", "--chapters", "02_sequence_length",
            "--one-per-part"]
    env = {**os.environ, "NRG_RUNS_DIR": str(tmp_path / "runs")}
    done = subprocess.run([sys.executable, "-m", "nrg", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode in (0, 1), done.stderr[-3000:]          # 1: some cells did not fit the budget
    ref_root = tmp_path / "results" / "reference"
    assert common.reference_runs(ref_root, "02_sequence_length") == {"cpu-test": ref_root / "cpu-test" / "02_sequence_length"}
    params = {**book.load_profile(ROOT, "tiny").get("02_sequence_length", {}), "reference_dir": str(ref_root),
              "run_dir": str(tmp_path / "runs" / "02")}
    out = tmp_path / "02.ipynb"
    monkeypatch.setenv("NRG_RUNS_DIR", str(tmp_path / "runs"))
    book.execute_chapter(ROOT, "02_sequence_length", out, params)
    shown = out.read_text()
    assert "Reference data:" in shown and "results/reference/cpu-test/02_sequence_length" in shown
    assert "1 of 1 cells ok" in shown and "Empty table: no rows" in shown   # one length: no slope to fit
    assert "No GPU reference data has been committed" not in shown
