"""Prefill and decode from one generate call: the monitor's cut, the streamer hook, ITL."""
from __future__ import annotations

import time

import pytest

from fakes.nvml import FakeGpu, FakeNvml
from nrg.errors import ParameterError
from nrg.meters import EnergyMonitor
from nrg.models import ModelSpec, load
from nrg.workloads.generation import GenerationInputs
from nrg.workloads.phases import PHASE_METHOD, FirstTokenSplit, itl_percentiles, measure_repeat


def nvml_monitor(fake: FakeNvml) -> EnergyMonitor:
    return EnergyMonitor.auto(meters=["nvml"], nvml_module=fake, sample_period_s=0.01)


def test_cut_parts_add_up_to_the_whole_window_exactly() -> None:
    with nvml_monitor(FakeNvml([FakeGpu(power_mw=100_000)])) as mon:
        mon.begin_window("whole")
        time.sleep(0.05)
        first = mon.split_window("whole", "first", "rest")
        assert set(mon.open_windows) == {"whole", "rest"}
        time.sleep(0.05)
        whole, rest = mon.end_windows("whole", "rest")
        assert mon.open_windows == ()
    assert first.name == "first" and rest.name == "rest"
    assert first.elapsed_s + rest.elapsed_s == pytest.approx(whole.elapsed_s, abs=1e-12)
    assert first.total_j() + rest.total_j() == pytest.approx(whole.total_j(), abs=1e-9)
    assert first.total_j() > 0 and rest.total_j() > 0
    assert first.valid and rest.valid and whole.valid


def test_sampled_power_is_integrated_up_to_and_from_the_cut() -> None:
    fake = FakeNvml([FakeGpu(power_mw=100_000, counter_supported=False)])   # sampling only
    with nvml_monitor(fake) as mon:
        assert mon.sources[0].name == "nvml-sampling"
        mon.begin_window("g")
        time.sleep(0.3)
        before = mon.split_window("g", "before", "after")
        fake.set_power(0, 300_000)
        time.sleep(0.3)
        _, after = mon.end_windows("g", "after")
    # trapezoids smear the step over one 10 ms sample at most
    assert before.total_j() / before.elapsed_s == pytest.approx(100, rel=0.1)
    assert after.total_j() / after.elapsed_s == pytest.approx(300, rel=0.1)


def test_cut_and_multi_end_refuse_bad_names() -> None:
    with nvml_monitor(FakeNvml([FakeGpu()])) as mon:
        with pytest.raises(ParameterError, match="'nope' is not open"):
            mon.split_window("nope", "a", "b")
        mon.begin_window("w")
        with pytest.raises(ParameterError, match="already open"):
            mon.split_window("w", "a", "w")
        with pytest.raises(ParameterError, match="'x' is not open"):
            mon.end_windows("w", "x")
        assert mon.open_windows == ("w",)          # nothing ended by the failed call
        with pytest.raises(ParameterError, match="ended once"):
            mon.end_windows("w", "w")


def test_itl_percentiles_of_known_token_times() -> None:
    times = [0.0, 0.1, 0.2, 0.3, 1.3]              # gaps 0.1, 0.1, 0.1, 1.0
    itl = itl_percentiles(times)
    assert itl["itl_p50_s"] == pytest.approx(0.1)
    assert itl["itl_p90_s"] == pytest.approx(0.1 + 0.7 * 0.9)    # numpy's linear interpolation
    assert itl["itl_p50_s"] <= itl["itl_p90_s"] <= itl["itl_p99_s"] <= 1.0
    assert all(v != v for v in itl_percentiles([0.5]).values())    # one token: NaN, not 0


class _Recorder:
    """A monitor stand-in that only counts cuts (the hook's own logic under test)."""

    def __init__(self) -> None:
        self.cuts = 0

    def split_window(self, name: str, first: str, rest: str) -> str:
        self.cuts += 1
        return f"{name}->{first}|{rest}"


def test_hook_ignores_the_prompt_and_cuts_once_at_the_first_token() -> None:
    import torch

    rec = _Recorder()
    hook = FirstTokenSplit(rec)
    hook.put(torch.zeros(2, 7, dtype=torch.long))       # the prompt: no cut, no stamp
    assert rec.cuts == 0 and hook.token_times_s == [] and hook.prefill is None
    for _ in range(3):
        hook.put(torch.zeros(2, dtype=torch.long))      # one step of a batch of 2
    assert rec.cuts == 1 and len(hook.token_times_s) == 3
    assert hook.prefill == "generate->prefill|decode"
    assert hook.token_times_s == sorted(hook.token_times_s)


@pytest.fixture(scope="module")
def models():
    """Tiny random decoder-only and encoder-decoder models (built offline in milliseconds)."""
    return {name: load(ModelSpec(name, weights="random", layers=1, tiny=True)) for name in ("gpt2", "t5-3b")}


@pytest.mark.parametrize("name", ["gpt2", "t5-3b"])
@pytest.mark.parametrize("batch", [1, 3])
def test_one_generate_gives_prefill_decode_and_token_times(models, name, batch) -> None:
    loaded = models[name]
    workload = GenerationInputs(loaded, loaded.synthetic_inputs(batch, 12), output_tokens=6)
    with EnergyMonitor.auto(meters=["estimate"]) as mon:
        one = measure_repeat(workload, mon)
        assert mon.open_windows == ()
    assert len(one.token_times_s) == 6                   # one stamp per decoder step of the batch
    assert one.prefill.elapsed_s > 0 and one.decode.elapsed_s > 0
    assert one.prefill.elapsed_s + one.decode.elapsed_s == pytest.approx(one.generate.elapsed_s, abs=1e-12)
    assert one.prefill.total_j() >= 0 and one.decode.total_j() >= 0
    assert one.prefill.total_j() + one.decode.total_j() == pytest.approx(one.generate.total_j(), abs=1e-9)
    # the first stamp is the cut, inside the window; the last comes before the end
    assert one.token_times_s[-1] - one.token_times_s[0] <= one.decode.elapsed_s
    assert PHASE_METHOD == "one-pass-hook"


class _Silent:
    """A workload whose generate never calls the streamer (a mode without streaming)."""

    output_tokens = 4

    def generate(self, streamer: object = None) -> None:
        time.sleep(0.01)


def test_a_generate_that_never_streams_is_an_error_not_a_silent_zero() -> None:
    with EnergyMonitor.auto(meters=["estimate"]) as mon:
        with pytest.raises(RuntimeError, match="never passed a new token"):
            measure_repeat(_Silent(), mon)  # type: ignore[arg-type]
        assert mon.open_windows == ()
