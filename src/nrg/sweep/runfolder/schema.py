"""The result columns, defined once: name, dtype, unit and meaning of every column a row may carry.

Why one schema: a run is read as one table -- by :func:`nrg.sweep.runfolder.store.load`,
by DuckDB (``read_parquet('RUN/cells/*.parquet')``) or by any Parquet reader.
That only works when every cell file has the same columns with the same types,
whether the cell measured (``ok``), failed or was unsupported. So
:meth:`nrg.sweep.runfolder.store.RunStore.write_cell` conforms every frame here before
writing: known columns are cast to their dtype, missing ones are added as
null (NaN / None), the columns come in schema order.

An **unknown column** is a column the code writes but forgot to declare.

* With ``NRG_STRICT_SCHEMA=1`` (the test suite sets it in ``tests/conftest.py``;
  cell processes inherit it) it raises :class:`SchemaError`:
  whoever adds a column must add it to :data:`COLUMNS` (the book's appendix
  and ARCHITECTURE.md are generated from it, and tests check both).
* Otherwise (a long GPU sweep) a measurement is worth more than tidiness: the
  column is kept after the schema columns with a warning, so nothing measured
  is lost; a value that cannot be cast is kept as text, also with a warning.

Columns of an axis registered outside nrg (``nrg.sweep.axes.register``) are
*extension* columns: the axis' own name and names starting with
``<axis>_`` are kept (types inferred) in both modes.

The columns themselves are listed in :mod:`nrg.sweep.runfolder.columns`;
``python -m nrg.sweep.runfolder.schema_doc --write`` regenerates ``book/schema.md`` and
the "Result columns" section of ARCHITECTURE.md from them.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from nrg.sweep.runfolder.columns import COLUMNS, GROUPS, Column

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "BY_NAME",
    "COLUMNS",
    "GROUPS",
    "NAMES",
    "STRICT_ENV",
    "WRITTEN_KEY",
    "Column",
    "SchemaError",
    "align",
    "strict_default",
    "to_arrow",
    "written_columns",
]

STRICT_ENV = "NRG_STRICT_SCHEMA"
WRITTEN_KEY = b"nrg.written_columns"   # Parquet metadata: the columns the code really wrote
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
_ARROW = {"string": "string", "float64": "float64", "int64": "int64", "bool": "bool_"}


class SchemaError(ValueError):
    """A frame does not fit the result schema (unknown column, or a value of the wrong type)."""


def strict_default() -> bool:
    """Strict only when ``NRG_STRICT_SCHEMA`` says so: the same code path in tests and in use."""
    value = os.environ.get(STRICT_ENV, "")
    return value.strip().lower() not in ("", "0", "false", "no")


def arrow_type(column: Column) -> pa.DataType:
    """The Parquet (Arrow) type a column is stored as."""
    import pyarrow as pa

    return getattr(pa, _ARROW[column.dtype])()


def _extension_axes() -> set[str]:
    """Axes registered outside the schema (their columns are allowed, types inferred)."""
    from nrg.sweep import axes

    return {name for name in axes.registered() if name not in BY_NAME}


_PER_GPU = re.compile(r"^gpu\d+_energy_j$")   # a model sharded over more GPUs than the schema lists


def _is_extension(name: str, extension_axes: Iterable[str]) -> bool:
    return bool(_PER_GPU.match(name)) or any(name == a or name.startswith(a + "_") for a in extension_axes)


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    try:
        import pandas as pd

        return value is pd.NA or value is pd.NaT
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False


def _as_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"{value!r} is a {type(value).__name__}, not a string")


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is a {type(value).__name__}, not a number")
    return float(value)


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is a {type(value).__name__}, not an integer")
    if isinstance(value, float) and not value.is_integer():
        raise TypeError(f"{value!r} is not a whole number")
    return int(value)


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{value!r} is a {type(value).__name__}, not a bool")
    return value


_CONVERT: dict[str, Callable[[Any], Any]] = {
    "string": _as_string, "float64": _as_float, "int64": _as_int, "bool": _as_bool}


def _cast(column: Column, values: list[Any], strict: bool) -> pa.Array:
    """Values of one column as an Arrow array of the column's type (nulls for missing values)."""
    import pyarrow as pa

    convert = _CONVERT[column.dtype]
    try:
        data = [None if _is_null(v) else convert(v) for v in values]
        return pa.array(data, type=arrow_type(column))
    except (TypeError, ValueError, OverflowError, pa.ArrowException) as exc:
        message = f"column {column.name!r} ({column.dtype}): {exc}"
        if strict:
            raise SchemaError(message + "; fix the value or the column's dtype in "
                              "nrg.sweep.runfolder.columns") from exc
        warnings.warn(f"nrg: {message}; stored as text", stacklevel=4)
        return pa.array([None if _is_null(v) else str(v) for v in values], type=pa.string())


def _infer(values: list[Any]) -> pa.Array:
    """An undeclared column's values; text when Arrow cannot find one type for them."""
    import pyarrow as pa

    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        return pa.array([None if _is_null(v) else str(v) for v in values], type=pa.string())


def _undeclared(names: list[str], strict: bool) -> list[str]:
    """The columns outside the schema that may be kept; raises or warns for the others."""
    unknown = [n for n in names if n not in BY_NAME]
    if not unknown:
        return []
    extension = _extension_axes()
    bad = [n for n in unknown if not _is_extension(n, extension)]
    if bad:
        message = (f"column(s) {', '.join(map(repr, bad))} are not in the result schema; "
                   "declare them (name, dtype, unit, meaning) in nrg.sweep.runfolder.columns")
        if strict:
            raise SchemaError(message)
        warnings.warn(f"nrg: {message}; kept after the schema columns", stacklevel=4)
    return unknown


def to_arrow(frame: pd.DataFrame, strict: bool | None = None) -> pa.Table:
    """``frame`` as a table with every schema column, in schema order, with the schema's types.

    The Parquet metadata remembers which columns ``frame`` really had
    (:func:`written_columns`), so a reader can show the columns a run measured
    rather than the whole schema.
    """
    import json

    import pyarrow as pa

    strict = strict_default() if strict is None else strict
    names = [str(c) for c in frame.columns]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise SchemaError(f"column(s) {', '.join(map(repr, duplicated))} appear more than once")
    extra = _undeclared(names, strict)
    n = len(frame)
    arrays = [_cast(c, frame[c.name].tolist(), strict) if c.name in frame.columns
              else pa.nulls(n, arrow_type(c)) for c in COLUMNS]
    arrays += [_infer(frame[name].tolist()) for name in extra]
    table = pa.table(arrays, names=[*NAMES, *extra])
    return table.replace_schema_metadata({WRITTEN_KEY: json.dumps(names).encode()})


def written_columns(table: pa.Table) -> list[str]:
    """The columns the writer really provided (all columns for files written before the schema)."""
    import json

    metadata = table.schema.metadata or {}
    if WRITTEN_KEY in metadata:
        try:
            return [str(n) for n in json.loads(metadata[WRITTEN_KEY])]
        except (ValueError, TypeError):
            pass
    return list(table.column_names)


def align(table: pa.Table) -> pa.Table:
    """A table read from disk in schema form, whatever wrote it (never raises for a readable table).

    Files written before the schema existed lack columns or carry other types:
    missing columns become nulls, castable ones are cast, others stay as they are.
    """
    import pyarrow as pa

    arrays, names = [], []
    for column in COLUMNS:
        target = arrow_type(column)
        if column.name in table.column_names:
            array = table.column(column.name)
            if array.type != target:
                with contextlib.suppress(pa.ArrowException, ValueError):
                    array = array.cast(target)
        else:
            array = pa.chunked_array([pa.nulls(table.num_rows, target)])
        arrays.append(array)
        names.append(column.name)
    for name in table.column_names:
        if name not in BY_NAME:
            arrays.append(table.column(name))
            names.append(name)
    return pa.table(arrays, names=names)
