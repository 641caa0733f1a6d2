"""ARCHITECTURE.md's package map names every module under src/nrg, and nothing that is not there.

The map is the table under "## Package map": its first column names modules
(``errors.py``) or packages (``meters/``), several per row where they share a
line (``plots.py``, ``findings.py``), or a package's every module at once
(``commands/*.py``); the second column names a package's modules by file name
(``measurement.py``), relative to the row's package when the row has one. A
new module the map does not mention, or a mention of a file that was moved or
removed, fails here with the names to fix.
"""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "nrg"
MAP_HEADING = "## Package map"

# A backticked file-like name: `a.py`, `pkg/`, `pkg/a.py`, `pkg/*.py` (not `<run>/cache/` nor `nrg.x`).
_FILE_TOKEN = re.compile(r"`((?:[A-Za-z_][\w]*/)*(?:[A-Za-z_][\w]*\.py|[A-Za-z_][\w]*/|\*\.py))`")


def _map_rows(text: str) -> list[tuple[str, str]]:
    """The (module column, owns column) of each row of the package map's table."""
    section = text.split(MAP_HEADING, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not line.lstrip().startswith("|") or set(cells[0]) <= set("-: ") or cells[0] == "module":
            continue
        rows.append((cells[0], "|".join(cells[1:])))
    return rows


def _listed(rows: list[tuple[str, str]]) -> tuple[set[str], list[str]]:
    """Module files the map covers (paths under src/nrg) and the mentions that name no file there."""
    covered: set[str] = set()
    missing: list[str] = []
    for modules, owns in rows:
        heads = _FILE_TOKEN.findall(modules)
        packages = [h for h in heads if h.endswith("/")]
        base = packages[0] if len(packages) == 1 and len(heads) == 1 else ""
        for token in heads + [base + t for t in _FILE_TOKEN.findall(owns)]:
            if token.endswith("*.py"):
                found = sorted((SRC / token[:-4]).glob("*.py"))
            else:
                found = [SRC / token] if (SRC / token).exists() else []
            if not found:
                missing.append(token)
            for path in found:
                covered.add(str((path / "__init__.py" if path.is_dir() else path).relative_to(SRC)))
    return covered, missing


def _modules() -> set[str]:
    """Every module file under src/nrg but the package's own ``__init__.py`` and ``__main__.py``."""
    return {str(p.relative_to(SRC)) for p in SRC.rglob("*.py")} - {"__init__.py", "__main__.py"}


def test_the_package_map_lists_every_module_and_only_modules_that_exist():
    covered, missing = _listed(_map_rows((ROOT / "ARCHITECTURE.md").read_text()))
    unlisted = sorted(_modules() - covered)
    assert (unlisted, missing) == ([], []), (
        f"ARCHITECTURE.md's package map does not mention: {', '.join(unlisted) or '-'}; "
        f"it names what is not under src/nrg: {', '.join(missing) or '-'}")


def test_the_check_reads_the_map_format_and_can_fail():
    """The parser sees a package's files, a glob and a shared row; a stale or missing name is found."""
    text = (f"{MAP_HEADING} (`src/nrg`)\n\n| module | owns |\n|---|---|\n"
            "| `errors.py` | rules |\n| `meters/` | `Measurement` (`measurement.py`), `nope.py` |\n"
            "| `progress.py`, `commands/*.py` | `nrg <command>` |\n| `gone.py` | |\n\n## next\n| `book/paths.py` | x |\n")
    covered, missing = _listed(_map_rows(text))
    assert {"errors.py", "meters/__init__.py", "meters/measurement.py", "progress.py", "commands/sweep.py"} <= covered
    assert "book/paths.py" not in covered and "commands/__init__.py" in covered
    assert missing == ["meters/nope.py", "gone.py"]
