"""The data behind every figure and table, written beside the page and linked under it.

A reader of the book should be able to take the numbers behind a figure, not
only its picture. When ``nrg book`` executes a chapter it names the executed
notebook in ``$NRG_PAGE`` (:func:`page_env`); :func:`data_link` then writes a
table as CSV and Parquet into ``data/<chapter>/`` next to that notebook and
returns the Markdown link shown under the figure. Jupyter Book copies a file
linked from a Markdown output into ``_build/html/_downloads/`` and rewrites
the link, so the link works in the built HTML (and a link to a file that was
not written fails the strict build). Without ``$NRG_PAGE`` -- a chapter opened
in JupyterLab -- nothing is written and no link is shown: the DataFrames are
in the kernel already.
"""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from nrg.book.paths import environment

if TYPE_CHECKING:
    import pandas as pd

PAGE_ENV = "NRG_PAGE"
DATA_DIR = "data"

_used: dict[str, set[str]] = {}


def page() -> Path | None:
    """The executed notebook this kernel renders (``$NRG_PAGE``), or None outside a book build."""
    value = os.environ.get(PAGE_ENV)
    return Path(value).resolve() if value else None


@contextlib.contextmanager
def page_env(notebook: str | Path) -> Iterator[None]:
    """Set ``$NRG_PAGE`` for a kernel started inside the block (papermill's kernel inherits it)."""
    with environment(PAGE_ENV, str(Path(notebook).resolve())):
        yield


def slug(name: str) -> str:
    """A file-name-safe version of ``name``: letters, digits, ``-`` and ``_`` only."""
    text = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")
    return text[:80] or "data"


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` as a flat table: a meaningful index becomes columns, column names become strings.

    A default 0..n-1 index is dropped (it is a row number, not data); named or
    non-integer index levels (a pivot table's rows) are kept as columns, and
    MultiIndex columns are joined with "/".
    """
    import pandas as pd

    out = df.copy()
    if isinstance(out.columns, pd.MultiIndex):
        out.columns = ["/".join(str(v) for v in col if str(v) != "") for col in out.columns]
    else:
        out.columns = [str(c) for c in out.columns]
    out.columns.name = None
    default = isinstance(out.index, pd.RangeIndex) and out.index.name is None
    if default:
        return out.reset_index(drop=True)
    names = [n if n is not None else ("" if out.index.nlevels == 1 else f"level_{i}")
             for i, n in enumerate(out.index.names)]
    out.index = out.index.set_names(names)
    return out.reset_index()


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Columns Parquet cannot hold as they are (mixed objects, lists) as text; names non-empty."""
    out = df.rename(columns={"": "item"})
    for column in out.columns:
        if out[column].dtype == object:
            kinds = {type(v) for v in out[column].dropna()}
            if len(kinds) > 1 or not kinds <= {str, bool, int, float}:
                out[column] = out[column].map(lambda v: None if v is None else str(v))
    return out


def write(df: pd.DataFrame, name: str, notebook: Path) -> tuple[Path, Path]:
    """Write ``df`` (tidied) as ``<name>.csv`` and ``<name>.parquet`` under the page's data folder."""
    folder = notebook.parent / DATA_DIR / notebook.stem
    folder.mkdir(parents=True, exist_ok=True)
    flat = tidy(df)
    csv, parquet = folder / f"{name}.csv", folder / f"{name}.parquet"
    flat.to_csv(csv, index=False)
    _parquet_safe(flat).to_parquet(parquet, index=False)
    return csv, parquet


def unique_name(kind: str, name: str | None, notebook: Path) -> str:
    """``<chapter>-<kind>NN[-name]``: numbered in display order, unique within the page."""
    used = _used.setdefault(str(notebook), set())
    number = sum(1 for n in used if n.startswith(f"{notebook.stem}-{kind}")) + 1
    stem = f"{notebook.stem}-{kind}{number:02d}" + (f"-{slug(name)}" if name else "")
    used.add(stem)
    return stem


def data_link(df: pd.DataFrame, name: str | None = None, kind: str = "table",
              notebook: Path | None = None) -> str | None:
    """Write ``df`` beside the page and return the Markdown line linking to it.

    Returns None (and writes nothing) when no page is being built. ``kind``
    ("figure" or "table") and ``name`` make the file names readable:
    ``02_sequence_length-figure03-energy_j-vs-input_tokens.csv``.
    """
    notebook = notebook or page()
    if notebook is None or df.shape[0] == 0 or df.shape[1] == 0:   # no download of an empty table
        return None
    stem = unique_name(kind, name, notebook)
    csv, parquet = write(df, stem, notebook)
    rel = f"{DATA_DIR}/{notebook.stem}"
    what = "figure" if kind == "figure" else "table"
    return f"Data behind this {what}: [CSV]({rel}/{csv.name}) · [Parquet]({rel}/{parquet.name})"


def reset(notebook: Path | None = None) -> None:
    """Forget the names used so far (all pages, or one): a rerun numbers from 01 again."""
    if notebook is None:
        _used.clear()
    else:
        _used.pop(str(notebook), None)



def rows_link(rows: pd.DataFrame | None, notebook: Path | None = None) -> str:
    """Markdown: the chapter's raw rows as one Parquet file beside the page, so a reader can redo its analyses.

    Every column of the rows is kept as measured (no rounding, no renaming);
    outside a book build (no ``$NRG_PAGE``) the rows are in the kernel already
    and the line says so.
    """
    notebook = notebook or page()
    if rows is None or rows.shape[0] == 0:
        return "*No rows were measured, so there is no raw data to download.*"
    if notebook is None:
        return f"The chapter's {rows.shape[0]} raw rows are in this kernel (the data frame shown above)."
    folder = notebook.parent / DATA_DIR / notebook.stem
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{notebook.stem}-rows.parquet"
    _parquet_safe(tidy(rows)).to_parquet(path, index=False)
    return (f"**Raw rows:** every measured row of this chapter ({rows.shape[0]} rows × {rows.shape[1]} columns, "
            f"as stored by the sweep): [Parquet]({DATA_DIR}/{notebook.stem}/{path.name}). "
            "`pandas.read_parquet` loads it; the appendix lists each column's unit and meaning.")
