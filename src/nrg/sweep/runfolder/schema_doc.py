"""The result schema as text: the book's appendix page and ARCHITECTURE.md's "Result columns".

Why generated: a hand-written list drifted (it missed 22 of 74 columns). Both
texts come from :data:`nrg.sweep.runfolder.columns.COLUMNS`; tests compare the committed
files with what this module generates, so a column added in the code without
regenerating fails the suite. Regenerate with::

    python -m nrg.sweep.runfolder.schema_doc --write
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from nrg.sweep.runfolder.columns import COLUMNS, GROUPS, Column

BOOK_PAGE = Path("book") / "schema.md"
ARCHITECTURE = Path("ARCHITECTURE.md")
SECTION_TITLE = "## Result columns (one row per measured phase per repeat)"
_GENERATED = "Generated from `nrg.sweep.runfolder.columns` by `python -m nrg.sweep.runfolder.schema_doc --write`; do not edit by hand."


def _by_group() -> dict[str, list[Column]]:
    out: dict[str, list[Column]] = {group: [] for group in GROUPS}
    for column in COLUMNS:
        out[column.group].append(column)
    return out


def _cell(text: str) -> str:
    """Table-cell text: ``|`` would end the cell, ``<...>`` would read as an HTML tag."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def book_page() -> str:
    """The appendix page: one table per group (column, dtype, unit, meaning)."""
    lines = [
        "# Result columns", "",
        f"<!-- {_GENERATED} -->", "",
        "Every row of every run -- measured (`status` ok), failed or unsupported -- has all of",
        "these columns, in this order, with these types; a value that does not apply is null",
        "(NaN or None). Each cell of a run is one Parquet file in `RUN/cells/`, so a run reads",
        "as one table with pandas (`nrg.sweep.runfolder.store.load(RUN)`) or with any Parquet reader,",
        "for example DuckDB:", "",
        "```sql",
        "SELECT model, phase, avg(energy_per_token_j) AS j_per_token",
        "FROM read_parquet('RUN/cells/*.parquet')",
        "WHERE status = 'ok'",
        "GROUP BY ALL;",
        "```", "",
        "`nrg.sweep.runfolder.store.load` returns the columns the run's code wrote; `load(RUN, all_columns=True)`",
        "returns all of them. In pandas an `int64` column with a null reads as `float64` and a",
        "`bool` column with a null as `object`.", "",
    ]
    for group, columns in _by_group().items():
        lines += [f"## {GROUPS[group]}", "", "| column | dtype | unit | meaning |", "|---|---|---|---|"]
        lines += [f"| `{c.name}` | {c.dtype} | {_cell(c.unit)} | {_cell(c.meaning)} |" for c in columns]
        lines.append("")
    return "\n".join(lines)


def architecture_section() -> str:
    """ARCHITECTURE.md's "Result columns" section: the names by group."""
    lines = [
        SECTION_TITLE, "",
        *textwrap.wrap(
            f"{_GENERATED} The book's appendix (`book/schema.md`) gives each column's dtype, unit "
            "and meaning. Every cell file has all of them, in this order, with the same types "
            "(null where not applicable): `RunStore.write_cell` conforms each frame "
            "(`nrg.sweep.runfolder.schema.to_arrow`), and an undeclared column is an error under test.",
            width=100),
        "",
    ]
    for group, columns in _by_group().items():
        names = ", ".join(c.name for c in columns)
        lines += textwrap.wrap(f"{GROUPS[group]}: `{names}`.", width=100, break_on_hyphens=False)
    return "\n".join(lines) + "\n"


def replace_section(text: str, section: str) -> str:
    """``text`` (ARCHITECTURE.md) with its "Result columns" section replaced by ``section``."""
    start = text.index(SECTION_TITLE)
    end = text.find("\n## ", start + len(SECTION_TITLE))
    tail = "" if end < 0 else text[end + 1:]
    return text[:start] + section + ("\n" + tail if tail else "")


def current_section(text: str) -> str:
    """The "Result columns" section as it stands in ``text``."""
    start = text.index(SECTION_TITLE)
    end = text.find("\n## ", start + len(SECTION_TITLE))
    return text[start:] if end < 0 else text[start:end]


def main(argv: list[str] | None = None) -> int:
    """``python -m nrg.sweep.runfolder.schema_doc [--write] [--root DIR]``: print or write both texts."""
    parser = argparse.ArgumentParser(prog="python -m nrg.sweep.runfolder.schema_doc", description=main.__doc__)
    parser.add_argument("--write", action="store_true", help="update book/schema.md and ARCHITECTURE.md")
    parser.add_argument("--root", default=".", help="repository root (default: current folder)")
    ns = parser.parse_args(argv)
    if not ns.write:
        print(book_page())
        return 0
    root = Path(ns.root)
    (root / BOOK_PAGE).write_text(book_page())
    arch = root / ARCHITECTURE
    arch.write_text(replace_section(arch.read_text(), architecture_section()))
    print(f"wrote {root / BOOK_PAGE} and the Result columns section of {arch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
