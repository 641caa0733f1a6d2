"""Meters on the lent GPU image, which has no codecarbon: NVML first, carried constants for CPU and DRAM."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from fakes.nvml import FakeGpu, FakeNvml
from nrg.errors import ParameterError
from nrg.meters import EnergyMonitor, Method, choose_sources, codecarbon_data, dram, estimate


@pytest.fixture
def no_codecarbon(monkeypatch: pytest.MonkeyPatch):
    """codecarbon absent as the image has it: its package (and so its files) cannot be found."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):
        return None if name == "codecarbon" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for cached in (codecarbon_data.package_dir, codecarbon_data.read_csv, codecarbon_data.read_json,
                   estimate._matched):
        cached.cache_clear()
    yield
    for cached in (codecarbon_data.package_dir, codecarbon_data.read_csv, codecarbon_data.read_json,
                   estimate._matched):
        cached.cache_clear()


def test_the_cpu_estimate_falls_back_to_the_carried_constant_and_says_why(no_codecarbon) -> None:
    with pytest.raises(codecarbon_data.CodecarbonDataMissing):
        estimate.cpu_power_table()                              # the fixture really hides the table
    watts, source = estimate.resolve_power(cpu_model="AMD EPYC 7763 64-Core Processor")
    assert watts == estimate.DEFAULT_POWER_PER_CORE_W == 4.0      # not 280 W / 64 cores from the table
    assert "not looked up: codecarbon is not installed" in source
    assert "default 4 W/core" in source and "a constant nrg carries" in source
    assert "pip install" not in source                         # no hint that cannot work on the image
    dram_w, dram_source = dram.resolve_dram_power(memory_gb=23.5, arm=False)
    assert dram_w == 20.0 and "RAM rule carried by nrg" in dram_source and "not installed here" in dram_source


def test_nvml_and_estimate_work_without_codecarbon(no_codecarbon, tmp_path: Path) -> None:
    fake = FakeNvml([FakeGpu(power_mw=100_000)])
    with EnergyMonitor.auto(meters="nvml,estimate", sysfs_root=tmp_path, nvml_module=fake) as mon:
        chosen = {d.domain: (d.chosen, d.method) for d in mon.decisions}
        assert chosen == {"gpu:0": ("nvml-counter", Method.COUNTER), "cpu": ("estimate", Method.ESTIMATED),
                          "dram": ("estimate-dram", Method.ESTIMATED)}
        cpu = next(d for d in mon.decisions if d.domain == "cpu")
        assert "codecarbon is not installed" in (cpu.detail or "") and "4 W/core" in (cpu.detail or "")
        with mon.window("w") as w:
            sum(range(10_000))
    assert w.measurement is not None and w.measurement.valid
    assert "codecarbon is not installed" in w.measurement.to_record()["energy_source"]


def test_the_error_hint_is_not_a_pip_command_for_the_image(no_codecarbon) -> None:
    with pytest.raises(codecarbon_data.CodecarbonDataMissing) as caught:
        codecarbon_data.package_dir()
    message = str(caught.value)
    assert "lent GPU image" in message and "fall back to constants nrg carries" in message
    assert message.index("make install") > message.index("grid-intensity")   # install only for carbon figures


def test_nvml_is_probed_before_the_estimate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nrg.meters import nvml

    order: list[str] = []
    real_estimate, real_probe_nvml = estimate.probe_estimate, nvml.probe_nvml

    def probe_estimate(**options):
        order.append("estimate")
        return real_estimate(**options)

    def probe_nvml(*args, **kwargs):
        order.append("nvml")
        return real_probe_nvml(*args, **kwargs)

    monkeypatch.setattr(estimate, "probe_estimate", probe_estimate)
    monkeypatch.setattr(nvml, "probe_nvml", probe_nvml)
    chain = choose_sources("estimate,nvml", nvml_module=FakeNvml([FakeGpu()]), sysfs_root=tmp_path)
    for release in chain.releases:
        release()
    assert order == ["nvml", "estimate"]


class _CountingNvml(FakeNvml):
    inits = 0

    def nvmlInit(self) -> None:
        type(self).inits += 1
        super().nvmlInit()


def test_bad_estimate_options_are_refused_before_nvml_is_touched(tmp_path: Path) -> None:
    fake = _CountingNvml([FakeGpu()])
    for options in ({"power_per_core_w": -1}, {"dram_power_w": "x"}, {"watts": 3}):
        with pytest.raises(ParameterError):
            choose_sources("nvml,estimate", nvml_module=fake, sysfs_root=tmp_path, **options)
    assert _CountingNvml.inits == 0
    choose_sources("nvml,estimate", nvml_module=fake, sysfs_root=tmp_path).releases[0]()
    assert _CountingNvml.inits == 1                              # the count does see a probe
