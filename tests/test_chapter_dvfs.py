"""Chapter 3 (DVFS): parameter checks, the plan from the capability probe, the reference config,
the analysis on a sweep measured on fake GPU hardware, and the notebook's CPU path through papermill.

The fake GPUs stand in for hardware only (NVML for clocks and for energy); the
runner, the DVFS axes and the analysis under test are the real ones. Fake data
lives under ``tmp_path`` and never reaches the book.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml
from matplotlib.figure import Figure

from nrg import dvfs
from nrg.book import build as book
from nrg.book import common
from nrg.book.chapters import validate
from nrg.book.chapters.c03_dvfs import analysis
from nrg.book.chapters.c03_dvfs import driver as chapter
from nrg.book.chapters.c03_dvfs.params import _clock_list
from nrg.errors import ParameterError
from nrg.stats import AnovaResult
from nrg.sweep.config import parse_config
from nrg.sweep.run import run_sweep
from nrg.sweep.runfolder import store

try:
    from fakes.nvml import FakeGpu, FakeNvml
    from fakes.nvml_dvfs import configure_fakes, on_fake_gpu
except ImportError:  # tests/ collected as a package
    from tests.fakes.nvml import FakeGpu, FakeNvml
    from tests.fakes.nvml_dvfs import configure_fakes, on_fake_gpu

ROOT = Path(__file__).resolve().parents[1]
TINY_MODELS = [{"name": "gpt2", "weights": "random", "layers": 1, "tiny": True},
               {"name": "smollm2-135m", "weights": "random", "layers": 1, "tiny": True}]
TINY = {"models": TINY_MODELS, "input_tokens": 8, "output_tokens": 4, "repeats": 2, "warmup": 0,
        "idle_s": 0, "meters": ["nvml", "estimate"], "isolate": False, "device": "cpu"}


@pytest.fixture(scope="module")
def params(tmp_path_factory):
    return chapter.Params(**TINY, run_dir=str(tmp_path_factory.mktemp("run")),
                          reference_dir=str(tmp_path_factory.mktemp("noref")))


@pytest.fixture
def fake_gpu(tmp_path):
    return configure_fakes(tmp_path)  # conftest restores the default DVFS target afterwards


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize("value, message", [
    ([], "gpu_clocks_mhz is empty"),
    ("[]", "gpu_clocks_mhz is empty"),
    (["fast"], "invalid value 'fast'"),
    ([1410, -5], "invalid value -5"),
    ([1410, 600.5], "invalid value 600.5"),
    ([1410, 1410], "names a value twice"),
    ("[1410, ", "not valid YAML"),
    (None, "gpu_clocks_mhz=None is not valid"),
])
def test_bad_clock_lists_are_refused(value, message):
    with pytest.raises(ParameterError, match=message):
        chapter.Params(**TINY, gpu_clocks_mhz=value)


@pytest.mark.parametrize("changes, message", [
    ({"modle": ["gpt2"]}, r"unknown parameter\(s\) \['modle'\]"),
    ({"n_clocks": 1}, "n_clocks=1 is not valid"),
    ({"power_limits_w": []}, "power_limits_w is empty"),
    ({"device": "tpu"}, "device"),
    ({"dtype": "int4"}, "dtype"),
    ({"include_default_clock": "maybe"}, "include_default_clock='maybe' is not valid"),
    ({"output_tokens": 1}, "output_tokens=1 is not valid"),
    ({"models": ["no-such-model"]}, "no-such-model"),
])
def test_bad_parameters_are_refused_before_any_work(tmp_path, changes, message):
    with pytest.raises(ParameterError, match=message):   # as `nrg book run` checks them
        validate(chapter.CHAPTER, {**TINY, "run_dir": str(tmp_path / "run"), **changes})
    assert not (tmp_path / "run").exists()


def test_papermill_strings_are_parsed(params):
    assert params.gpu_clocks_mhz == "auto"
    parsed = chapter.Params(**{**TINY, "power_limits_w": "[200, 250]", "n_clocks": "4", "meters": "[estimate]",
                               "include_default_clock": "false", "layers": "1", "repeats": "2"})
    assert parsed.power_limits_w == (200, 250)
    assert _clock_list("gpu_clocks_mhz", "[1410, 600]", allow_auto=True) == (1410, 600)
    assert parsed.n_clocks == 4 and parsed.dtype == "float32" and parsed.meters == ("estimate",)
    assert parsed.include_default_clock is False and {m.layers for m in parsed.models} == {1}
    assert parsed.repeats.to_dict() == {"min": 2, "max": 2, "ci_rel": None}


def test_device_and_dtype_auto_are_resolved_on_this_machine(params):
    import torch

    auto = chapter.Params(**{**TINY, "device": "auto", "dtype": "auto"})
    assert (auto.device, auto.dtype) == (("cuda", "bfloat16") if torch.cuda.is_available() else ("cpu", "float32"))
    assert chapter.Params(**{**TINY, "dtype": "auto"}).dtype == "float32"             # on the CPU
    assert [c.config.dtypes for c in auto.checked] == [(auto.dtype,)]


# ---------------------------------------------------------------- plan


def _consented_probe():
    return dvfs.probe(test_lock=True, allow_hardware_settings=True)


def test_plan_sweeps_supported_clocks_on_a_gpu_that_allows_locking(params, fake_gpu):
    on_gpu = on_fake_gpu(params, device="cuda", n_clocks=3, allow_hardware_settings=True)
    probe = chapter.probe_machine(on_gpu)
    assert fake_gpu.fake.state["calls"][-2:] == ["SetGpuLockedClocks 1410 1410", "ResetGpuLockedClocks"]
    plan = chapter.plan(on_gpu, probe)
    assert plan.live and plan.axis == "gpu_clock_mhz"
    assert plan.values == (None, 1410, 1005, 210)          # default first, then spread over 210..1410
    explicit = chapter.plan(on_fake_gpu(on_gpu, gpu_clocks_mhz=(1395, 600), include_default_clock=False), probe)
    assert explicit.values == (1395, 600)
    with pytest.raises(ParameterError, match=r"does not support.*1410, 1395"):
        chapter.plan(on_fake_gpu(on_gpu, gpu_clocks_mhz=(1500,)), probe)


def test_plan_measures_only_the_default_where_nothing_can_be_changed(params, fake_gpu):
    fake_gpu.fake.update(present=False)
    plan = chapter.plan(on_fake_gpu(params, device="cuda", allow_hardware_settings=True), _consented_probe())
    assert plan.live and not plan.sweeps and plan.axis == "gpu_clock_mhz" and plan.values == (None,)
    assert "No frequency can be changed on this machine" in plan.reason
    assert "no NVIDIA GPU" in plan.reason and "Only the default setting is measured" in plan.reason
    assert "no GPU clock can be observed here" in plan.reason
    with pytest.raises(ParameterError, match="nothing to measure"):
        chapter.measure(params, chapter.Plan(False, None, (), "nothing"))


def test_plan_changes_no_gpu_setting_for_a_cpu_workload(params, fake_gpu):
    plan = chapter.plan(dataclasses.replace(params, allow_hardware_settings=True), _consented_probe())
    assert plan.values == (None,) and "device='cpu'" in plan.reason


def test_without_consent_the_plan_observes_the_default_and_says_why(params, fake_gpu):
    assert params.allow_hardware_settings is False                      # off by default
    on_gpu = on_fake_gpu(params, device="cuda")
    probe = chapter.probe_machine(on_gpu)
    plan = chapter.plan(on_gpu, probe)
    assert plan.live and not plan.sweeps and plan.values == (None,)
    assert "Clocks were not swept: hardware settings are not allowed" in plan.reason
    assert "GPU 0 (Fake GPU) reports settings that could be changed" in plan.reason
    assert "allow_hardware_settings=True" in plan.reason
    assert "Fake GPU chose by itself are sampled" in plan.reason
    assert "not tried: allow_hardware_settings is off" in probe.gpu.permission_reason
    assert fake_gpu.fake.state["calls"] == []                             # the probe wrote nothing
    fake_gpu.fake.update(present=False)
    nothing = chapter.plan(params, chapter.probe_machine(params))
    assert "Nothing could be changed here anyway" in nothing.reason and nothing.values == (None,)


def test_without_consent_the_chapter_measures_the_default_and_sets_nothing(params, fake_gpu, tmp_path):
    one_model = dataclasses.replace(params, models=TINY_MODELS[:1])
    on_gpu = on_fake_gpu(one_model, device="cuda")                       # the fake GPU; work runs on the CPU
    plan = chapter.plan(on_gpu, chapter.probe_machine(on_gpu))
    df = run_sweep(one_model.sweep_config(plan.axis, plan.values), tmp_path / "run", progress=False, isolate=False)
    assert set(df["status"]) == {"ok"} and df["gpu_clock_mhz"].isna().all()
    assert (df["gpu_clock_mhz_observed_mean"] == 1410).all()            # what the GPU chose itself
    assert fake_gpu.fake.state["calls"] == [] and not fake_gpu.marker.exists()
    result = analysis.analyse(df)
    assert result["findings"].sentences[0].startswith("Only the default setting was measured")   # said first
    assert not any("whether each lock took" in s for s in result["findings"])   # no lock was asked
    assert result["sensitivity"].empty and result["anova"] is None
    observed = result["observed"]
    assert list(observed["requested"]) == ["default"] and observed.loc[0, "observed_mean"] == 1410


@pytest.mark.parametrize("value, expected", [(False, False), (True, True), ("True", True), ("false", False)])
def test_consent_parameter_is_a_strict_flag(value, expected):
    assert chapter.Params(**TINY, allow_hardware_settings=value).allow_hardware_settings is expected


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_consent_parameter_rejects_anything_but_a_flag(tmp_path, value):
    with pytest.raises(ParameterError, match=r"allow_hardware_settings=.* is not valid; choose one of: True, False"):
        chapter.Params(**TINY, run_dir=str(tmp_path / "run"), allow_hardware_settings=value)
    assert not (tmp_path / "run").exists()


def test_plan_falls_back_to_power_limits_when_clocks_cannot_be_locked(params, fake_gpu):
    probe = _consented_probe()
    locked_out = dataclasses.replace(probe, axes={**probe.axes, "gpu_clock_mhz": False})
    on_gpu = on_fake_gpu(params, device="cuda", power_limits_w=(150, 200), allow_hardware_settings=True)
    plan = chapter.plan(on_gpu, locked_out)
    assert plan.live and plan.axis == "power_limit_w" and plan.values == (None, 150, 200)
    no_limits = chapter.plan(on_fake_gpu(on_gpu, power_limits_w=None), locked_out)
    assert no_limits.values == (None,) and "power_limits_w" in no_limits.reason


# ---------------------------------------------------------------- reference config


def test_reference_config_is_a_valid_gpu_sweep(params):
    text = chapter.reference_sweep_yaml(params)
    assert text.startswith("# gpu_clocks_mhz is 'auto'")       # says which clocks to add
    config = yaml.safe_load(text)
    assert config["device"] == "cuda" and config["dtypes"] == ["bfloat16"]
    assert config["axes"] == {"gpu_clock_mhz": [None]}
    assert parse_config(config).chapter == chapter.CHAPTER
    assert config["allow_hardware_settings"] is False and "lets nrg lock the clocks" in text
    explicit = chapter.reference_sweep_config(on_fake_gpu(params, gpu_clocks_mhz=(1980, 1200)))
    assert explicit["axes"] == {"gpu_clock_mhz": [None, 1980, 1200]}
    message = chapter.no_reference_message(params, clocks=[1410, 600])
    assert "No reference data has been committed" in message
    assert "nrg sweep dvfs.yaml --allow-hardware-settings" in message
    assert "gpu_clock_mhz: [null, 1410, 600]" in message
    on_gpu = yaml.safe_load(chapter.reference_sweep_yaml(on_fake_gpu(params, device="cuda")))   # its own models
    assert [m["name"] for m in on_gpu["models"]] == [m.name for m in params.models]
    assert parse_config(on_gpu).models == params.models


# ---------------------------------------------------------------- analysis of a measured sweep


@pytest.fixture(scope="module")
def measured(params, tmp_path_factory):
    """The chapter's sweep on a fake GPU whose locks are accepted but do not move the clock."""
    tmp = tmp_path_factory.mktemp("fakegpu")
    env = configure_fakes(tmp, clocks_follow_lock=False)
    consented = dataclasses.replace(params, allow_hardware_settings=True)
    try:
        probe = chapter.probe_machine(consented)
        plan = chapter.plan(on_fake_gpu(consented, device="cuda", gpu_clocks_mhz=(1410, 600)), probe)
        energy = FakeNvml([FakeGpu(power_mw=100_000)])
        df = run_sweep(consented.sweep_config(plan.axis, plan.values), params.run_dir,
                       progress=False, isolate=False, monitor_options={"nvml_module": energy})
    finally:
        dvfs.configure()
    assert env.fake.state["gpu_locked"] is None                   # every lock was reset
    return df


@pytest.fixture(scope="module")
def result(measured):
    return analysis.analyse(measured)


def test_analysis_of_a_measured_sweep(measured, result):
    assert (measured["status"] == "ok").all()
    assert result["axis"] == "gpu_clock_mhz"
    optimal = result["optimal"]
    assert sorted(optimal["model"]) == ["gpt2", "smollm2-135m"]          # one row per model
    assert set(optimal["energy_optimal"]) <= {1410.0, 600.0} and set(optimal["edp_optimal"]) <= {1410.0, 600.0}
    assert (optimal["reference"] == "default").all()
    assert optimal["energy_optimal_energy_saving"].notna().all()
    summary = result["summary"]
    assert len(summary) == 2 * 3 * 3 and set(summary["setting"]) == {"default", "1410 MHz", "600 MHz"}
    sens = result["sensitivity"]
    assert len(sens) == 2 * 3 and (sens["high"] == 1410).all() and (sens["low"] == 600).all()
    assert sens["roofline_fraction_high"].notna().all()
    assert isinstance(result["anova"], AnovaResult)
    assert "gpu_clock_mhz" in set(result["anova"].table["source"])
    for metric in analysis.MEASURES:
        fig = result["figures"][metric]
        assert isinstance(fig, Figure) and len(fig.axes) == 3
    shares = result["phase_share"]
    assert set(shares.index.get_level_values("measure")) == {"time_s", "energy_j"}
    assert list(shares.columns) == ["600 MHz", "1410 MHz", "default"]
    assert len(result["findings"]) > 0 and len(result["anova_findings"]) > 0
    assert "Energy method" in set(result["provenance"]["item"])
    assert result["failures"].empty


def test_a_lock_that_did_not_take_is_shown(result):
    observed = result["observed"].set_index(["model", "requested"])
    assert observed.loc[("gpt2", "600 MHz"), "observed_mean"] == 1410         # the fake ignored the lock
    assert observed.loc[("gpt2", "600 MHz"), "took"] == False  # noqa: E712
    assert observed.loc[("gpt2", "1410 MHz"), "took"] == True  # noqa: E712
    assert observed.loc[("gpt2", "default"), "took"] is None
    assert any("did not take" in s and "600 MHz ran at 1410 MHz" in s for s in result["findings"])


def test_reference_runs_are_analysed_under_their_label(measured, params, tmp_path):
    target = tmp_path / "ref" / "Fake-GPU" / chapter.CHAPTER
    shutil.copytree(params.run_dir, target)
    reference = common.reference_runs(common.reference_root(str(tmp_path / "ref")), chapter.CHAPTER)
    analyses = analysis.analyse_all(measured, reference)
    labels = list(analyses)
    assert labels[0].startswith("Measured live on this machine")
    assert labels[1].startswith("Reference data measured on Fake-GPU")
    assert len(analyses[labels[1]]["optimal"]) == 2
    assert analysis.analyse_all(None, {}) == {}


# ---------------------------------------------------------------- the notebook, CPU path


def _outputs(path: Path) -> str:
    nb = json.loads(path.read_text())
    texts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            texts.append("".join(out.get("text", "")))
            for value in out.get("data", {}).values():
                texts.append("".join(value) if isinstance(value, list) else str(value))
    return "\n".join(texts)


@pytest.mark.process
def test_notebook_cpu_path_measures_the_default_and_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("NRG_RUNS_DIR", str(tmp_path / "runs"))
    (tmp_path / "noref").mkdir()
    out = book.execute_chapter(ROOT, chapter.CHAPTER, tmp_path / "out.ipynb", {
        "models": ["gpt2"], "layers": 1, "input_tokens": 16, "output_tokens": 4, "device": "cpu",
        "repeats": 2, "warmup": 0, "idle_s": 0.2, "reference_dir": str(tmp_path / "noref")})
    text = _outputs(out)
    assert "Clocks were not swept: hardware settings are not allowed" in text
    assert "Only the default setting is measured" in text
    assert "Only the default setting was measured" in text              # the analysis of those rows
    assert "not tried: allow_hardware_settings is off" in text or "GPU 0: not available" in text
    assert "No reference data has been committed" in text and "nrg sweep dvfs.yaml" in text
    assert "The GPU power limit was not swept:" in text           # the two sections say why not
    assert "The CPU frequency cap was not swept:" in text and "allow_hardware_settings" in text
    rows = store.load(tmp_path / "runs" / chapter.CHAPTER)
    assert set(rows["status"]) == {"ok"} and rows["gpu_clock_mhz"].isna().all()


def test_a_refused_lock_is_a_failed_cell_listed_with_its_error(params, fake_gpu, tmp_path):
    fake_gpu.fake.update(admin=False)            # the driver refuses every change
    config = dataclasses.replace(params, models=TINY_MODELS[:1], meters=["estimate"],
                                 allow_hardware_settings=True).sweep_config("gpu_clock_mhz", [600])
    df = run_sweep(config, tmp_path / "run", progress=False, isolate=False)
    failed = analysis.failures(df, "gpu_clock_mhz")
    assert len(failed) == 1 and failed.loc[0, "status"] == "failed"
    assert "permission" in failed.loc[0, "error"].lower()
    with pytest.raises(ParameterError, match="no successful"):
        analysis.analyse(df)
    (explained,) = analysis.analyse_all(df, {}).values()     # the notebook shows why, and the failures
    assert "Nothing to analyse" in next(iter(explained["findings"])) and len(explained["failures"]) == 1


def test_the_phase_share_of_estimated_energy_says_estimated(measured):
    said = analysis.analyse(measured.assign(energy_method="estimated"))["findings"].sentences
    assert any(s.startswith("Decode takes") and "of estimated energy across" in s for s in said)
    counted = analysis.analyse(measured.assign(energy_method="counter"))["findings"].sentences
    assert any(s.startswith("Decode takes") and " of energy across" in s for s in counted)
