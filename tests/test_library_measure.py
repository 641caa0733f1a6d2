"""``nrg.measure()``: the library face over EnergyMonitor.auto -- context manager, decorator, light import."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import nrg
from nrg.errors import ParameterError
from nrg.meters import EnergyMonitor, Measurement, Method

SRC = Path(__file__).resolve().parents[1] / "src"


def _work(n: int = 300_000) -> int:
    return sum(i * i for i in range(n))


@pytest.mark.process
def test_import_nrg_stays_light():
    code = ("import sys, nrg; heavy = [m for m in ('torch', 'pandas', 'pynvml', 'transformers', 'nrg.meters') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}).stdout
    assert out.strip() == "[]"


def test_measure_as_a_context_manager_exposes_the_measurement():
    with nrg.measure("block", meters=["estimate"]) as m:
        assert m.measurement is None
        _work()
    assert isinstance(m.measurement, Measurement) and m.measurement.name == "block"
    assert m.measurement.total_j() > 0 and m.measurement.method is Method.ESTIMATED
    assert m.measurement.elapsed_s > 0


def test_measure_as_a_decorator_keeps_the_return_value_and_the_last_measurement():
    @nrg.measure("step", meters="estimate")
    def step(n: int) -> int:
        return _work(n)

    assert step.last_measurement is None
    assert step(1000) == _work(1000)
    first = step.last_measurement
    step(200_000)
    assert isinstance(first, Measurement) and step.last_measurement is not first
    assert step.last_measurement.name == "step"


def test_a_failing_block_still_records_and_closes():
    with pytest.raises(RuntimeError), nrg.measure("boom", meters=["estimate"]) as m:
        raise RuntimeError("work failed")
    assert isinstance(m.measurement, Measurement) and m.monitor is not None


@pytest.mark.parametrize("make", [lambda: EnergyMonitor.auto(gpus=[63]),
                                  lambda: nrg.measure("x", gpus=[63]).__enter__()],
                         ids=["EnergyMonitor.auto", "nrg.measure"])
def test_a_gpu_that_is_not_there_is_an_error_not_a_cpu_measurement(make):
    """Today gpus=[0] without that GPU silently measured CPU and DRAM only."""
    with pytest.raises(ParameterError, match=r"gpus=\[63\].*GPU\(s\) \[63\]"):
        make()


def test_bad_arguments_are_refused():
    with pytest.raises(ParameterError, match="idle_s"):
        nrg.measure("x", idle_s=-1)
    with pytest.raises(ParameterError, match="name"):
        nrg.measure("")
