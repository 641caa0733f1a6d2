"""Damaged cell files: named, skipped by load, moved aside and measured again by the next sweep."""
from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nrg.sweep.run import run_sweep
from nrg.sweep.runfolder import schema, store
from nrg.sweep.runfolder.store import RunStore

TINY = {"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}
CONFIG = {"name": "damage", "models": [TINY], "input_tokens": [8, 9], "output_tokens": [3],
          "repeats": 1, "warmup": 0, "idle_s": 0, "roofline": False, "isolate": False}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not parquet\n" * 50)


def _empty_file(path: Path) -> None:
    path.write_bytes(b"")


def _foreign(path: Path) -> None:
    pq.write_table(pa.table({"x": [1, 2], "y": ["a", "b"]}), path)


def _no_rows(path: Path) -> None:
    pq.write_table(schema.to_arrow(pd.DataFrame({"cell_id": [path.stem], "status": ["ok"]})).slice(0, 0), path)


def _other_cells_rows(path: Path) -> None:
    table = pq.read_table(path)
    ids = pa.array(["0123456789abcdef"] * table.num_rows)
    pq.write_table(table.set_column(table.column_names.index("cell_id"), "cell_id", ids), path)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": _truncate, "garbage": _garbage, "zero-byte": _empty_file,
    "foreign parquet": _foreign, "valid file with 0 rows": _no_rows, "rows of another cell": _other_cells_rows,
}
REASONS = {"truncated": "cannot be read", "garbage": "cannot be read", "zero-byte": "cannot be read",
           "foreign parquet": "no cell_id, status column", "valid file with 0 rows": "has no rows",
           "rows of another cell": "holds rows of cell"}


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("measured")
    run_sweep(CONFIG, out, progress=False)
    return out


@pytest.fixture
def damaged_run(measured, tmp_path, request) -> tuple[Path, Path, Path]:
    """A copy of a 2-cell run with one cell file damaged; (run, damaged file, intact file)."""
    out = tmp_path / "run"
    shutil.copytree(measured, out)
    first, second = sorted((out / "cells").glob("*.parquet"))
    DAMAGE[request.param](first)
    return out, first, second


@pytest.mark.parametrize("damaged_run", list(DAMAGE), indirect=True)
def test_load_warns_names_the_file_and_returns_the_other_cells(damaged_run, request):
    out, bad, good = damaged_run
    kind = request.node.callspec.params["damaged_run"]
    with pytest.warns(UserWarning, match=rf"{bad.name}.*{REASONS[kind]}"):
        df = store.load(out)
    assert set(df["cell_id"]) == {good.stem}
    scan = RunStore.at(out).scan()
    assert scan.finished == {good.stem: "ok"}
    assert [d.path for d in scan.damaged] == [bad]


@pytest.mark.parametrize("damaged_run", list(DAMAGE), indirect=True)
def test_the_next_sweep_moves_the_file_aside_and_measures_the_cell_again(damaged_run):
    out, bad, good = damaged_run
    good_mtime = good.stat().st_mtime_ns
    with pytest.warns(UserWarning, match=rf"damaged cell file {bad.name} .* moved to"):
        df = run_sweep(CONFIG, out, progress=False)
    assert df.attrs["damaged_files"] == [bad.name]
    assert set(df["cell_id"]) == {bad.stem, good.stem} and (df["status"] == "ok").all()
    assert good.stat().st_mtime_ns == good_mtime           # the intact cell was not measured again
    assert RunStore.at(out).cell_status(bad.stem) == "ok"  # the damaged one was
    corrupt = out / "cells" / "corrupt"
    assert (corrupt / bad.name).is_file()
    assert bad.name in (corrupt / f"{bad.name}.why").read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(store.load(out)) == len(df)             # nothing damaged left: no warning


def test_a_file_replaced_after_it_was_judged_is_not_moved(measured, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(measured, out)
    run = RunStore.at(out)
    path = sorted(run.cells_dir.glob("*.parquet"))[0]
    good = path.read_bytes()
    _garbage(path)
    damaged = run.scan().damaged
    path.unlink()
    path.write_bytes(good)                                  # another sweep measured it again
    assert run.quarantine(damaged) == []
    assert path.is_file() and run.cell_status(path.stem) == "ok"


def test_write_cell_refuses_an_empty_frame(tmp_path):
    with pytest.raises(ValueError, match="no rows"):
        RunStore.at(tmp_path).write_cell("aaa", pd.DataFrame({"cell_id": [], "status": []}))
