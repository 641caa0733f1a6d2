"""The measuring and analysing layers import nothing from the book, the commands or ``nrg reference``.

Why: the book (``nrg.book``), the command line (``nrg.commands``) and the reference run
(``nrg.reference``) sit on top of the meters, models, runner and statistics. An import the
other way (``nrg.stats`` reaching into the book's labels, as it once did) makes a lower
layer depend on page wording and drags the book into every sweep worker. The scan reads
every import at any depth -- the lazy ones inside functions too -- so moving an import into
a function does not hide it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "nrg"
LOWER = ("meters", "models", "tasks", "stats", "dvfs", "compress", "sweep", "workloads", "tickets", "serving")
UPPER = ("nrg.book", "nrg.commands", "nrg.reference")
#: (package, module it may import, why)
EXCEPTIONS = {("serving", "nrg.book.paths"): "the engine's model folders live under the book's root (find_root)"}


def _imported(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _upward(package: str, source: str) -> list[str]:
    allowed = {module for (pkg, module) in EXCEPTIONS if pkg == package}
    return sorted(name for name in _imported(source)
                  if name.startswith(UPPER) and not any(name == a or name.startswith(a + ".") for a in allowed)
                  and not any(a.startswith(name + ".") for a in allowed))


@pytest.mark.parametrize("package", LOWER)
def test_a_lower_layer_does_not_import_the_book_commands_or_reference(package: str) -> None:
    bad = {str(path.relative_to(SRC)): found for path in sorted((SRC / package).rglob("*.py"))
           if (found := _upward(package, path.read_text()))}
    assert bad == {}, f"{package}/ imports from a layer above it: {bad}"


def test_the_scan_sees_lazy_and_dotted_imports_and_honours_only_named_exceptions() -> None:
    lazy = "def f():\n    from nrg.book.labels import estimated\n    import nrg.commands.cli\n"
    assert _upward("stats", lazy) == ["nrg.book.labels", "nrg.book.labels.estimated", "nrg.commands.cli"]
    assert _upward("serving", "from nrg.book.paths import find_root\n") == []
    assert _upward("serving", "from nrg.book import paths\n") == []
    assert _upward("serving", "from nrg.book.labels import estimated\n") == ["nrg.book.labels",
                                                                              "nrg.book.labels.estimated"]
    assert _upward("stats", "from nrg.book.paths import find_root\n") == ["nrg.book.paths",
                                                                          "nrg.book.paths.find_root"]
