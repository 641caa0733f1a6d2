"""Chapter 0 keeps its measurements and reuses them while machine, parameters and measuring code are the same.

Each "build" below opens the chapter's monitor as the notebook does (a new
kernel: the in-process registry is emptied first), measures idle power, the
calibration and the codecarbon comparison (without codecarbon's tracker, so it
is nrg's window alone), and closes. The CPU-time estimate is the meter: real, cheap.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from nrg.book.chapters.c00_how_energy_is_measured import codecarbon_compare
from nrg.book.chapters.c00_how_energy_is_measured import driver as chapter
from nrg.errors import ParameterError
from nrg.meters import hardware
from nrg.models import ModelSpec

SMALL = {"idle_s": 0.05, "meters": "estimate", "matrix_sizes": [16, 32], "min_duration_s": 0.01, "repeats": 2}


@pytest.fixture(autouse=True)
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NRG_RUNS_DIR", str(tmp_path / "runs"))
    # codecarbon's start and stop take seconds: the comparison is nrg's window alone here
    monkeypatch.setattr(codecarbon_compare, "_tracker", lambda *args: (None, "not in this test"))
    monkeypatch.setattr(chapter, "_OPEN", {})
    return tmp_path / "runs" / chapter.CHAPTER / chapter.RECORD_FILE


def tiny_work() -> codecarbon_compare.GenerationWork:
    return codecarbon_compare.GenerationWork(ModelSpec("gpt2", weights="random", tiny=True), 4, 2)


SHARED = tiny_work()     # loaded once for the module where a test does not look at the loading


def build(work: codecarbon_compare.GenerationWork = SHARED, **changes: Any) -> dict[str, Any]:
    """What the notebook measures, in a fresh kernel."""
    chapter._OPEN.clear()
    params = chapter.Params(**{**SMALL, **changes})
    with chapter.open_monitor(params) as monitor:
        out = {"note": monitor.measurements.note(), "reused": monitor.measurements.reused,
               "idle": monitor.measure_idle(params.idle_s), "idle_measurement": monitor.idle_measurement,
               "calib": chapter.calibration(monitor, params.matrix_sizes, params.min_duration_s, params.repeats)}
    out["side"] = codecarbon_compare.side_by_side(work, params, min_duration_s=0.05)
    out["loaded"] = work.loaded
    return out


def test_a_second_build_reuses_every_measurement_and_says_so(runs: Path) -> None:
    first = build(tiny_work())
    assert not first["reused"] and first["note"].startswith("Measured for this page on ") and first["loaded"]
    assert runs.is_file()
    second = build(tiny_work())
    assert second["reused"]
    assert second["note"].startswith("Reused the measurements of ") and "same machine and parameters" in second["note"]
    assert "-p remeasure true" in second["note"] and str(runs) in second["note"]
    assert second["idle"] == first["idle"]
    assert second["idle_measurement"] == first["idle_measurement"]
    pd.testing.assert_frame_equal(second["calib"], first["calib"])
    assert second["side"].nrg == first["side"].nrg and second["side"].units == first["side"].units
    assert not second["loaded"]          # a reused comparison never loads its model


def test_changed_parameters_or_remeasure_measure_again(runs: Path) -> None:
    first = build()
    again = build(repeats=3)
    assert not again["reused"] and len(again["calib"]) == 3 * len(SMALL["matrix_sizes"])
    assert build(repeats=3)["reused"]            # the new record is kept in place of the old
    assert not build(remeasure="true")["reused"]
    assert build(region="FRA")["reused"] is False  # codecarbon's figures follow the country
    assert len(first["calib"]) == 2 * len(SMALL["matrix_sizes"])


def test_another_machine_or_a_damaged_record_measures_again(runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build()
    real = hardware.provenance
    monkeypatch.setattr(hardware, "provenance", lambda *a, **k: {**real(*a, **k), "cpu": "another CPU"})
    assert not build()["reused"]
    assert build()["reused"]
    runs.write_bytes(runs.read_bytes()[:20])         # truncated: measured again, not a crash
    assert not build()["reused"]


def test_a_different_calibration_call_is_measured_not_taken_from_the_record() -> None:
    build()
    chapter._OPEN.clear()
    params = chapter.Params(**SMALL)
    with chapter.open_monitor(params) as monitor:
        assert monitor.measurements.reused
        calib = chapter.calibration(monitor, [8], params.min_duration_s, params.repeats)
    assert list(calib["matrix_size"].unique()) == [8]


def test_remeasure_is_checked() -> None:
    with pytest.raises(ParameterError, match="remeasure"):
        chapter.Params(remeasure="sometimes")


def test_the_same_values_given_as_papermill_strings_reuse_the_measurements() -> None:
    """``-p matrix_sizes '[16, 32]'`` and friends parse to the values the kept record was taken with."""
    first = build()
    again = build(idle_s="0.05", meters="[estimate]", matrix_sizes="[16, 32]", min_duration_s="0.01", repeats="2")
    assert again["reused"] and again["idle"] == first["idle"]
    pd.testing.assert_frame_equal(again["calib"], first["calib"])


@pytest.mark.parametrize("given, names", [
    ({"meters": "nvml,watts"}, ("meters", "'estimate'")),
    ({"repeats": 1}, ("repeats", ">= 2")),
    ({"matrix_sizes": "[256, big]"}, ("matrix_sizes",)),
    ({"idle_s": 0}, ("idle_s", "> 0")),
    ({"power_per_core_w": -1.0}, ("power_per_core_w", "> 0")),
    ({"region": "Atlantis"}, ("region='Atlantis'",)),
])
def test_a_bad_value_names_the_parameter_before_anything_is_written(given: dict[str, Any], names: tuple[str, ...],
                                                                     runs: Path) -> None:
    with pytest.raises(ParameterError) as info:
        chapter.Params(**given)
    assert all(n in str(info.value) for n in names), str(info.value)
    assert not runs.parent.exists()
