"""No row is ever negative: every energy source, in-process and isolated cells, both model kinds.

Prefill and decode come from one generate call cut at the first token, so a
busy machine can slow a phase down but never make one negative -- as the old
``generate - prefill`` of two runs did. Checked for every column of time,
energy and latency: ``time_s``, every ``*energy_j`` but the net one (gross
minus an idle baseline may honestly be negative), ``ttft_s``, ``tpot_s`` and
the inter-token latency percentiles.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from fakes.nvml import FakeGpu, FakeNvml
from fakes.sysfs import FakePowercap
from nrg.sweep.run import run_sweep

MODELS = [{"name": "gpt2", "weights": "random", "layers": 1, "tiny": True},
          {"name": "t5-3b", "weights": "random", "layers": 1, "tiny": True}]   # decoder-only, encoder-decoder
NON_NEGATIVE = ("time_s", "energy_j", "gpu_energy_j", "cpu_energy_j", "dram_energy_j", "ttft_s",
                "tpot_s", "itl_p50_s", "itl_p90_s", "itl_p99_s", "energy_per_token_j", "other_cpu_s")
SOURCES = ("nvml-counter", "nvml-sampling", "rapl", "estimate")


def config(**changes: Any) -> dict[str, Any]:
    return {"name": "nn", "models": MODELS, "batch_sizes": [1, 2], "input_tokens": [8],
            "output_tokens": [5], "repeats": 2, "warmup": 0, "idle_s": 0, "isolate": False,
            "roofline": False, "interference": {"max_retries": 0}, **changes}


@contextmanager
def hardware(source: str, root) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """The meters and monitor options that put ``source`` (fake hardware or the estimate) in."""
    if source == "estimate":
        yield ["estimate"], {}
    elif source.startswith("nvml"):
        fake = FakeNvml([FakeGpu(power_mw=80_000, counter_supported=source == "nvml-counter")])
        yield ["nvml"], {"nvml_module": fake, "sample_period_s": 0.005}
    else:
        sysfs = FakePowercap(root)
        package, dram = sysfs.add_package(0), sysfs.add_dram(0)
        with sysfs.running({package: 20.0, dram: 5.0}):   # updated every 1 ms like RAPL
            yield ["rapl"], {"sysfs_root": root}


def assert_never_negative(df: Any, source: str) -> None:
    assert (df["status"] == "ok").all(), df[["model", "error"]].drop_duplicates().to_string()
    assert set(df["phase"]) == {"prefill", "decode", "generate"}
    assert df["energy_source"].str.contains(source.split("-")[0]).all()
    for column in NON_NEGATIVE:
        values = df[column].dropna()
        assert (values >= 0).all(), f"{source}: negative {column}:\n{df[values < 0][['phase', column]]}"
    for column in ("time_s", "energy_j", "ttft_s", "tpot_s", "itl_p50_s"):   # measured, never missing
        assert df[column].notna().all(), f"{source}: {column} missing"


@pytest.mark.parametrize("source", SOURCES)
def test_in_process_cells_of_every_source_are_never_negative(tmp_path, source) -> None:
    with hardware(source, tmp_path / "root") as (meters, options):
        df = run_sweep(config(meters=meters), tmp_path / "run", progress=False, monitor_options=options)
    assert df["model"].nunique() == 2 and df["batch_size"].nunique() == 2
    assert_never_negative(df, source)


@pytest.mark.process
def test_isolated_cells_are_never_negative(tmp_path) -> None:
    """A cell process gets no fake hardware (objects cannot cross processes): the CPU estimate."""
    df = run_sweep(config(isolate=True, batch_sizes=[2]), tmp_path / "run", progress=False)
    assert df["model"].nunique() == 2
    assert_never_negative(df, "estimate")
