"""Chapter 3's power-limit and CPU-frequency sections: planned from the probe, swept on fake hardware.

The fake NVML and the fake cpufreq tree stand in for the hardware only; the
probe, the sections' plans, the sweep's axes and the analysis are the real ones.
"""
from __future__ import annotations

import dataclasses

import pytest

from nrg.book.chapters.c03_dvfs import analysis, sections
from nrg.book.chapters.c03_dvfs import driver as chapter
from nrg.errors import ParameterError

try:
    from fakes.nvml_dvfs import configure_fakes, on_fake_gpu
except ImportError:  # tests/ collected as a package
    from tests.fakes.nvml_dvfs import configure_fakes, on_fake_gpu

TINY = {"models": [{"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}], "input_tokens": 8,
        "output_tokens": 4, "repeats": 2, "warmup": 0, "idle_s": 0, "meters": ["estimate"], "isolate": False,
        "device": "cpu", "n_clocks": 3}


@pytest.fixture
def fake(tmp_path):
    return configure_fakes(tmp_path)  # conftest restores the default DVFS target afterwards


@pytest.fixture
def params(tmp_path):
    (tmp_path / "noref").mkdir()
    return chapter.Params(**TINY, run_dir=str(tmp_path / "run"), reference_dir=str(tmp_path / "noref"))


def _consented(params, **changes):
    """``params`` with consent and ``changes``, parsed and checked again (the work stays on the CPU)."""
    return dataclasses.replace(params, allow_hardware_settings=True, **changes)


def _consented_on_gpu(params, **changes):
    """Consented, on the fake GPU (which torch cannot see: see :func:`on_fake_gpu`)."""
    return on_fake_gpu(params, allow_hardware_settings=True, device="cuda", **changes)


def _scaling_max(fake) -> set[str]:
    return {p.read_text().strip() for p in fake.cpufreq.glob("cpu*/cpufreq/scaling_max_freq")}


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize("name, value, message", [
    ("cpu_max_freqs_khz", "fast", r"cpu_max_freqs_khz has invalid value 'fast'; give None, 'auto' or a list"),
    ("cpu_max_freqs_khz", [], "cpu_max_freqs_khz is empty"),
    ("cpu_max_freqs_khz", [2000000, 2000000], "names a value twice"),
    ("power_limits_w", [200, -1], r"power_limits_w has invalid value -1; give None, 'auto' or a list"),
])
def test_bad_section_parameters_are_refused(tmp_path, name, value, message):
    with pytest.raises(ParameterError, match=message):
        chapter.Params(**TINY, run_dir=str(tmp_path / "run"), **{name: value})
    assert not (tmp_path / "run").exists()


def test_section_parameters_take_auto_none_and_lists():
    parsed = chapter.Params(**TINY, power_limits_w="auto", cpu_max_freqs_khz="[2000000, 1200000]")
    assert parsed.power_limits_w == "auto" and parsed.cpu_max_freqs_khz == (2000000, 1200000)
    assert chapter.Params(**TINY, cpu_max_freqs_khz=None).cpu_max_freqs_khz is None
    assert chapter.Params(**TINY).cpu_max_freqs_khz == "auto"


# ---------------------------------------------------------------- power limit


def test_power_limit_section_sweeps_the_limits_with_consent(params, fake):
    on_gpu = _consented_on_gpu(params, power_limits_w=(250, 150))
    section = sections.power_limit(on_gpu, chapter.probe_machine(on_gpu))
    assert section.runs and section.axis == "power_limit_w" and section.values == (None, 250, 150)
    assert "swept on this machine" in section.text() and "250 W" in section.text()
    auto = sections.power_limit(on_fake_gpu(on_gpu, power_limits_w="auto"), chapter.probe_machine(on_gpu))
    assert auto.values == (None, 300, 200, 100)              # n_clocks=3 over the fake's 100-300 W


def test_power_limit_section_without_consent_sets_nothing_and_names_the_flag(params, fake):
    on_gpu = on_fake_gpu(params, device="cuda", power_limits_w=(250, 150))
    section = sections.power_limit(on_gpu, chapter.probe_machine(on_gpu))
    assert not section.runs and section.reasons == (sections.CONSENT,)
    assert "allow_hardware_settings=False" in section.text() and "Nothing was changed" in section.text()
    assert "-p allow_hardware_settings True -p device cuda -p power_limits_w" in section.text()
    assert sections.measure(on_gpu, section) is None
    assert fake.fake.state["calls"] == []                    # not even the probe's permission test


def test_power_limit_section_says_every_reason_it_cannot_run(params, fake):
    probe = chapter.probe_machine(_consented(params))
    on_cpu = sections.power_limit(_consented(params, power_limits_w=None), probe)
    assert len(on_cpu.reasons) == 2
    assert "device='cpu'" in on_cpu.reasons[0] and "cannot change work that does not run on GPU 0" in on_cpu.reasons[0]
    assert "`power_limits_w=None`" in on_cpu.reasons[1] and "100–300 W" in on_cpu.reasons[1]
    fake.fake.update(admin=False)
    on_gpu = _consented_on_gpu(params, power_limits_w=(200,))
    refused = sections.power_limit(on_gpu, chapter.probe_machine(on_gpu))
    assert not refused.runs and "may not set the power limit of Fake GPU" in refused.text()
    fake.fake.update(present=False)
    absent = sections.power_limit(on_gpu, chapter.probe_machine(on_gpu))
    assert len(absent.reasons) == 1 and absent.reasons[0].startswith("no NVIDIA GPU")
    with pytest.raises(ParameterError, match=r"power_limits_w has limit\(s\) \[400\] outside .* 100 to 300"):
        fake.fake.update(present=True, admin=True)
        sections.power_limit(on_fake_gpu(on_gpu, power_limits_w=(400,)), chapter.probe_machine(on_gpu))


def test_power_limit_sweep_sets_and_restores_each_limit_and_is_analysed(params, fake):
    on_gpu = _consented_on_gpu(params, power_limits_w=(250, 150), include_default_clock=False)
    section = sections.power_limit(on_gpu, chapter.probe_machine(on_gpu))
    fake.fake.state["calls"].clear()
    rows = sections.measure(_consented(params, include_default_clock=False), section, progress=False)  # work on the CPU
    assert set(rows["power_limit_w"]) == {250, 150} and set(rows["status"]) == {"ok"}
    assert "SetPowerManagementLimit 250000" in fake.fake.state["calls"]
    assert "SetPowerManagementLimit 150000" in fake.fake.state["calls"]
    assert fake.fake.state["power_limit_mw"] == 250_000                 # restored
    result = analysis.analyse(rows)
    assert result["axis"] == "power_limit_w"
    assert set(result["summary"]["setting"]) == {"250 W", "150 W"}
    assert all("MHz" not in s for s in result["findings"])


# ---------------------------------------------------------------- CPU frequency


def test_cpu_frequency_section_sweeps_caps_with_consent(params, fake):
    section = sections.cpu_frequency(_consented(params), chapter.probe_machine(_consented(params)))
    assert section.runs and section.axis == "cpu_max_freq_khz"
    assert "the default, 3000000 kHz, 1900000 kHz, 800000 kHz" in section.text()
    assert section.values == (None, 3_000_000, 1_900_000, 800_000)     # n_clocks=3 over 800-3000 MHz
    explicit = sections.cpu_frequency(_consented(params, cpu_max_freqs_khz=[2_000_000]),
                                      chapter.probe_machine(_consented(params)))
    assert explicit.values == (None, 2_000_000)
    with pytest.raises(ParameterError, match=r"cpu_max_freqs_khz has value\(s\) \[5000000\] .* 800000 to 3000000"):
        sections.cpu_frequency(_consented(params, cpu_max_freqs_khz=[5_000_000]),
                               chapter.probe_machine(_consented(params)))


def test_cpu_frequency_section_without_consent_writes_nothing(params, fake):
    before = _scaling_max(fake)
    section = sections.cpu_frequency(params, chapter.probe_machine(params))
    assert not section.runs and section.reasons == (sections.CONSENT,)
    assert "`allow_hardware_settings=False`" in section.text()
    assert "-p allow_hardware_settings True -p cpu_max_freqs_khz auto" in section.text()
    assert sections.measure(params, section) is None and _scaling_max(fake) == before


def test_cpu_frequency_section_names_a_missing_or_read_only_cpufreq(params, fake, tmp_path):
    import shutil

    probe = chapter.probe_machine(_consented(params))
    read_only = dataclasses.replace(probe, cpu=dataclasses.replace(
        probe.cpu, writable=False, reason="scaling_max_freq is not writable for cpu0, cpu1: needs root"))
    refused = sections.cpu_frequency(_consented(params), read_only)
    assert refused.reasons == ("this process may not write cpufreq (scaling_max_freq is not writable for "
                               "cpu0, cpu1: needs root; run as root)",)
    none_given = sections.cpu_frequency(_consented(params, cpu_max_freqs_khz=None), probe)
    assert "`cpu_max_freqs_khz=None`" in none_given.text() and "800000–3000000 kHz" in none_given.text()
    shutil.rmtree(fake.cpufreq)                          # a VM that exposes no cpufreq
    missing = sections.cpu_frequency(_consented(params), chapter.probe_machine(_consented(params)))
    assert not missing.runs and missing.reasons[0].startswith("this machine exposes no cpufreq: ")
    assert f"{fake.cpufreq}/cpu*/cpufreq does not exist" in missing.text()


def test_cpu_frequency_sweep_caps_and_restores_and_is_analysed(params, fake):
    before = _scaling_max(fake)
    consented = _consented(params, cpu_max_freqs_khz=[2_000_000, 1_000_000])
    section = sections.cpu_frequency(consented, chapter.probe_machine(consented))
    result = sections.analyse(consented, section, progress=False)
    (live,) = result.values()
    assert live["axis"] == "cpu_max_freq_khz"
    assert set(live["summary"]["setting"]) == {"default", "2000000 kHz", "1000000 kHz"}
    assert live["anova"] is not None                     # setting x model, like the clock sweep
    assert "cpu_freq_khz_observed_mean" in live["rows"].columns
    assert _scaling_max(fake) == before                  # every cap restored after its cell


# ---------------------------------------------------------------- checked once


def test_a_planned_sweep_checks_only_its_axes_the_rest_was_checked_with_the_params(params, fake, monkeypatch):
    """Building Params checks the base config; measuring the planned sweep checks only what it adds: its axes."""
    from nrg.book import sweeps
    from nrg.sweep import check
    from nrg.workloads import generation

    seen = {"models": 0, "axes": 0}

    def counting(module, name, key):
        real = getattr(module, name)

        def wrapper(cfg):
            seen[key] += 1
            return real(cfg)

        monkeypatch.setattr(module, name, wrapper)

    counting(generation, "check", "models")        # the generation workload's hook, as the registry finds it
    counting(check, "check_axes", "axes")
    consented = _consented(params, include_default_clock=False)
    assert seen == {"models": 1, "axes": 1}           # the base config, checked whole once
    on_gpu = _consented_on_gpu(params, power_limits_w=(250, 150), include_default_clock=False)
    section = sections.power_limit(on_gpu, chapter.probe_machine(on_gpu))
    seen.update(models=0, axes=0)
    rows = sections.measure(consented, section, progress=False)
    assert set(rows["power_limit_w"]) == {250, 150} and seen == {"models": 0, "axes": 1}
    again = chapter.measure(consented, chapter.Plan(True, "power_limit_w", (250, 150), "planned"), progress=False)
    assert len(again) == len(rows) and seen == {"models": 0, "axes": 2}   # the chapter's own sweep: the same rule
    changed = {**consented.sweep_config("power_limit_w", [250]), "input_tokens": [16]}
    sweeps.check_variant(changed, consented.checked[0])
    assert seen == {"models": 1, "axes": 3}           # more than its axes differs: checked whole
    with pytest.raises(ParameterError, match="allow_hardware_settings"):
        sweeps.check_variant(params.sweep_config("power_limit_w", [250]), params.checked[0])   # no consent
