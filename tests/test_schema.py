"""nrg.sweep.runfolder.schema: one schema for every row, conformed on write, documented from the code."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from nrg.sweep import axes
from nrg.sweep.run import run_sweep
from nrg.sweep.runfolder import schema, schema_doc, store
from nrg.sweep.runfolder.columns import COLUMNS, DTYPES, GROUPS
from nrg.sweep.runfolder.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
TINY = {"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}
# a sliding window of 0 tokens passes every check but fails inside attention: a model error
BROKEN = {"name": "mistral-7b-v0.1", "weights": "random", "layers": 1, "tiny": True,
          "overrides": {"sliding_window": 0}}


def test_every_column_is_declared_once_with_a_known_dtype_group_and_meaning():
    names = [c.name for c in COLUMNS]
    assert len(names) == len(set(names))
    for c in COLUMNS:
        assert c.dtype in DTYPES, c
        assert c.group in GROUPS, c
        assert c.meaning.strip(), c


def test_units_agree_with_the_labels_the_plots_use():
    from nrg.stats._data import LABELS

    shared = [c for c in COLUMNS if c.name in LABELS]
    assert len(shared) > 15
    assert {c.name: c.unit for c in shared} == {c.name: LABELS[c.name][1] for c in shared}


def test_units_follow_the_name_suffixes():
    suffix_unit = {"_j": "J", "_s": "s", "_w": "W", "_mhz": "MHz", "_khz": "kHz", "_bytes": "bytes"}
    for c in COLUMNS:
        for suffix, unit in suffix_unit.items():
            if c.name.endswith(suffix) and "_per_" not in c.name:
                assert c.unit == unit, c


def test_a_partial_frame_gets_every_column_in_order_with_the_schema_types():
    frame = pd.DataFrame({"status": ["failed"], "cell_id": ["abc"], "error": ["boom"], "repeat": [None]})
    table = schema.to_arrow(frame)
    assert table.column_names == list(schema.NAMES)
    assert [f.type for f in table.schema] == [schema.arrow_type(c) for c in COLUMNS]
    row = table.to_pylist()[0]
    assert row["status"] == "failed" and row["error"] == "boom"
    assert row["repeat"] is None and row["time_s"] is None and row["energy_valid"] is None
    assert schema.written_columns(table) == ["status", "cell_id", "error", "repeat"]


def test_integers_upcast_by_pandas_come_back_as_integers():
    frame = pd.DataFrame({"repeats_n": [3.0, float("nan")], "batch_size": [1, 2]})
    assert frame["repeats_n"].dtype == "float64"
    table = schema.to_arrow(frame)
    assert table.column("repeats_n").type == pa.int64()
    assert table.column("repeats_n").to_pylist() == [3, None]


@pytest.mark.parametrize(("column", "value"), [
    ("batch_size", "two"), ("batch_size", 1.5), ("time_s", "fast"), ("energy_valid", "yes"),
    ("model", 3), ("time_s", True)])
def test_a_value_of_the_wrong_type_is_an_error_in_strict_mode(column, value):
    with pytest.raises(schema.SchemaError, match=column):
        schema.to_arrow(pd.DataFrame({column: [value]}), strict=True)


def test_outside_strict_mode_a_bad_value_is_kept_as_text_with_a_warning():
    with pytest.warns(UserWarning, match="batch_size"):
        table = schema.to_arrow(pd.DataFrame({"batch_size": ["two"]}), strict=False)
    assert table.column("batch_size").to_pylist() == ["two"]


def test_an_undeclared_column_is_an_error_when_strict_and_kept_with_a_warning_otherwise(monkeypatch):
    frame = pd.DataFrame({"status": ["ok"], "joules_per_banana": [1.0]})
    monkeypatch.setenv(schema.STRICT_ENV, "1")
    assert schema.strict_default()
    with pytest.raises(schema.SchemaError, match=r"joules_per_banana.*nrg.sweep.runfolder.columns"):
        schema.to_arrow(frame)
    monkeypatch.setenv(schema.STRICT_ENV, "0")
    with pytest.warns(UserWarning, match="joules_per_banana"):
        table = schema.to_arrow(frame)
    assert table.column_names[-1] == "joules_per_banana"
    assert table.column("joules_per_banana").to_pylist() == [1.0]


def test_columns_of_an_axis_registered_outside_nrg_are_extension_columns(monkeypatch):
    monkeypatch.setitem(axes._REGISTRY, "fan_speed",
                        axes.Axis("fan_speed", None, validate=lambda values: None))
    table = schema.to_arrow(pd.DataFrame({"fan_speed": [3], "fan_speed_observed": [2.9]}), strict=True)
    assert table.column_names[-2:] == ["fan_speed", "fan_speed_observed"]
    with pytest.raises(schema.SchemaError, match="fans"):
        schema.to_arrow(pd.DataFrame({"fans": [3]}), strict=True)


def test_duplicate_columns_are_refused():
    frame = pd.DataFrame([[1, 2]], columns=["repeat", "repeat"])
    with pytest.raises(schema.SchemaError, match="more than once"):
        schema.to_arrow(frame)


def test_a_failed_row_written_by_the_store_has_every_column(tmp_path):
    from nrg.sweep.config import parse_config
    from nrg.sweep.schedule.context import SweepContext, failed_frame

    cell = parse_config({"models": [TINY]}).cells()[0]
    frame = failed_frame(cell, SweepContext(run_id="r-1", provenance={"hostname": "h"}), "boom")
    path = RunStore.at(tmp_path).write_cell(cell.cell_id, frame)
    assert pq.read_schema(path).names == list(schema.NAMES)
    df = store.load(tmp_path, all_columns=True)
    assert list(df.columns) == list(schema.NAMES)
    assert df["status"].tolist() == ["failed"] and math.isnan(df["time_s"].iloc[0])


def test_load_of_a_file_written_before_the_schema_aligns_it(tmp_path):
    run = RunStore.at(tmp_path)
    run.cells_dir.mkdir()
    old = pd.DataFrame({"cell_id": ["old"], "status": ["ok"], "repeat": [0], "time_s": [1.5]})
    pq.write_table(pa.Table.from_pandas(old, preserve_index=False), run.cell_path("old"))
    run.write_cell("new", pd.DataFrame({"cell_id": ["new"], "status": ["ok"], "repeat": [1],
                                        "energy_j": [2.0]}))
    df = store.load(tmp_path)
    assert list(df.columns) == ["cell_id", "status", "repeat", "time_s", "energy_j"]
    time_s = df.set_index("cell_id")["time_s"]
    assert time_s["old"] == 1.5 and math.isnan(time_s["new"])


# ------------------------------------------------------------------ generated documentation


def test_the_book_page_is_generated_from_the_schema():
    committed = (ROOT / schema_doc.BOOK_PAGE).read_text()
    assert committed == schema_doc.book_page(), \
        "book/schema.md is stale: run python -m nrg.sweep.runfolder.schema_doc --write"
    for c in COLUMNS:
        assert f"| `{c.name}` | {c.dtype} |" in committed


def test_architecture_result_columns_are_generated_from_the_schema():
    text = (ROOT / schema_doc.ARCHITECTURE).read_text()
    assert schema_doc.current_section(text) == schema_doc.architecture_section(), \
        "ARCHITECTURE.md's Result columns section is stale: run python -m nrg.sweep.runfolder.schema_doc --write"


def test_replacing_the_section_keeps_the_rest_of_the_page():
    text = f"# A\n\nintro\n\n{schema_doc.SECTION_TITLE}\n\nold list\n\n## After\n\nkept\n"
    out = schema_doc.replace_section(text, schema_doc.architecture_section())
    assert out.startswith("# A\n\nintro\n\n") and out.endswith("## After\n\nkept\n")
    assert "old list" not in out and schema_doc.current_section(out) == schema_doc.architecture_section()


def test_the_schema_page_is_in_the_books_appendix():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    appendix = next(p for p in toc["parts"] if p["caption"] == "Appendix")
    assert {"file": "book/schema"} in appendix["chapters"]


# ------------------------------------------------------------------ a real run, read by DuckDB


def _unsupported_quant_axis() -> axes.Axis:
    """The quant axis, with one value this 'device' does not support (NotImplementedError)."""
    def transform(loaded, value):
        if value == "fp3":
            raise NotImplementedError("fp3 is not supported on this device")
        return loaded, {"quant": value, "quant_bits": 32, "quant_status": "ok"}

    return axes.Axis("quant", "none", validate=lambda values: None, transform=transform)


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    """A run with ok, failed and unsupported cells, measured by the real runner."""
    import nrg.compress  # noqa: F401 - registers the real axes before one is replaced

    out = tmp_path_factory.mktemp("mixed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(axes._REGISTRY, "quant", _unsupported_quant_axis())
        cfg = {"name": "mixed", "models": [TINY, BROKEN], "input_tokens": [8], "output_tokens": [3],
               "repeats": 1, "warmup": 0, "idle_s": 0, "isolate": False, "quality": {"items": 0},
               "axes": {"quant": ["none", "fp3"]}}
        df = run_sweep(cfg, out, progress=False)
    return out, df


def test_a_mixed_run_has_ok_failed_and_unsupported_cells_with_identical_file_schemas(mixed_run):
    out, df = mixed_run
    statuses = df.drop_duplicates("cell_id").set_index(["model", "quant"])["status"].to_dict()
    assert statuses == {("gpt2", "none"): "ok", ("gpt2", "fp3"): "unsupported",
                        ("mistral-7b-v0.1", "none"): "failed", ("mistral-7b-v0.1", "fp3"): "unsupported"}
    schemas = {str(pq.read_schema(p).remove_metadata()) for p in (out / "cells").glob("*.parquet")}
    assert len(schemas) == 1


def test_duckdb_reads_the_run_without_union_by_name(mixed_run):
    duckdb = pytest.importorskip("duckdb")
    out, df = mixed_run
    got = duckdb.sql(f"SELECT * FROM read_parquet('{out}/cells/*.parquet') "
                     "ORDER BY cell_id, phase, repeat").df()
    assert list(got.columns) == list(schema.NAMES)
    assert len(got) == len(df) == len(store.load(out))
    assert sorted(got["status"].unique()) == ["failed", "ok", "unsupported"]
    ok = got[got["status"] == "ok"]
    expected = df[df["status"] == "ok"].sort_values(["cell_id", "phase", "repeat"])
    assert ok["time_s"].tolist() == expected["time_s"].tolist()
    assert ok["tokens"].tolist() == expected["tokens"].tolist()
    bad = got[got["status"] != "ok"]
    assert bad["error"].notna().all() and bad["time_s"].isna().all()
