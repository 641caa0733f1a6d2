"""The book's shared modules and ``nrg reference`` name no chapter: a chapter's code lives in its folder.

A shared module that branches on a chapter ("if chapter == '03_dvfs'", a
table keyed by stems, a ``_tickets`` helper, an import of a chapter's module)
is where a new chapter would have to be added by hand, and where the chapters
drifted apart before. The modules directly in ``src/nrg/book/`` (not under
``chapters/``) and in ``src/nrg/reference/`` reach a chapter only through
``nrg.book.chapters.part(chapter, name)``.

What counts as naming a chapter, read from the code (docstrings and comments
are prose: an example there names nothing the code depends on):

- a string constant equal to a chapter's notebook stem (``"summary"``), or
  containing a numbered stem (``"03_dvfs"``) or a chapter folder (``"c03_dvfs"``);
- an import of a chapter's folder (``nrg.book.chapters.c03_dvfs...``);
- a function, class or module-level name containing a chapter's topic: its
  numbered stem without the number (``dvfs``, ``batch_size``, ``serving`` ...),
  plus ``tickets`` (chapter 4's code has always called itself so). Only
  *defined* names count: reading ``cell.batch_size`` or importing ``nrg.dvfs``
  (the clock-control package, not chapter 3) names no chapter. The summary
  page's topic ("summary") is too common a word for a name check: only its
  stem as a string counts.

The chapters are those :mod:`nrg.book.chapters` discovers, so a new chapter is
covered without editing this file. No exceptions are allowed.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from nrg.book.chapters import DRIVERS

SRC = Path(__file__).resolve().parents[1] / "src" / "nrg"
SHARED = sorted([*(SRC / "book").glob("*.py"), *(SRC / "reference").glob("*.py")])
#: Topic words beyond the stems: chapter 4 (``04_network_tickets``) is "tickets" in its own code.
EXTRA_TOPICS = ("tickets",)


def _topics(stems: list[str]) -> tuple[str, ...]:
    """``03_dvfs`` -> ``dvfs``: the numbered chapters' topic words, and :data:`EXTRA_TOPICS`."""
    return tuple(sorted({re.sub(r"^\d+_", "", s) for s in stems if s[:1].isdigit()} | set(EXTRA_TOPICS)))


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring constants of a module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def _defined(tree: ast.Module) -> list[tuple[ast.AST, str]]:
    """(node, name) of every function and class, and of every name assigned at module level."""
    names: list[tuple[ast.AST, str]] = [(n, n.name) for n in ast.walk(tree)
                                        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    for stmt in tree.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] \
            if isinstance(stmt, ast.AnnAssign) else []
        names += [(t, t.id) for target in targets for t in ast.walk(target) if isinstance(t, ast.Name)]
    return names


def chapter_names(source: str, chapters: dict[str, str]) -> list[str]:
    """Where ``source`` names one of ``chapters`` (stem -> folder) in its code: "line N: what"."""
    tree = ast.parse(source)
    stems, folders = list(chapters), list(chapters.values())
    numbered = [s for s in stems if s[:1].isdigit()] + [f for s, f in chapters.items() if f != s]
    topics = _topics(stems)
    prose = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            hit = node.value if node.value in stems else next((n for n in numbered if n in node.value), None)
            if hit:
                out.append(f"line {node.lineno}: the string {node.value!r} names chapter {hit!r}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [f"{node.module}.{a.name}" for a in node.names]
            for module in modules:
                parts = module.split(".")
                if parts[:3] == ["nrg", "book", "chapters"] and len(parts) > 3 and parts[3] in folders:
                    out.append(f"line {node.lineno}: imports {module}, a chapter's module")
    for node, name in _defined(tree):
        topic = next((t for t in topics if t in name.lower()), None)
        if topic:
            out.append(f"line {getattr(node, 'lineno', '?')}: defines {name!r}, named after chapter topic {topic!r}")
    return out


@pytest.mark.parametrize("path", SHARED, ids=lambda p: str(p.relative_to(SRC)))
def test_a_shared_module_names_no_chapter(path):
    assert chapter_names(path.read_text(), DRIVERS) == [], (
        f"{path.relative_to(SRC)} names a chapter: move that code into the chapter's folder "
        "(src/nrg/book/chapters/c<stem>/) behind nrg.book.chapters.part(chapter, name)")


def test_the_check_finds_each_way_of_naming_a_chapter():
    """The check can fail: each form it looks for, in code, is reported; the same words in prose are not."""
    chapters = {"03_dvfs": "c03_dvfs", "04_network_tickets": "c04_network_tickets", "summary": "summary"}
    named = chapter_names('''
"""Module prose may say 03_dvfs, c03_dvfs, summary and tickets."""
from nrg.book.chapters.c03_dvfs import analysis
from nrg.book.chapters import c04_network_tickets
from nrg.dvfs import gpu                       # the clock-control package: no chapter
TABLES = {"03_dvfs": 1}
PATH = "nrg.book.chapters.c04_network_tickets.claims"
READS = {"summary"}
WORDS = "summary.json"                         # a common word inside a string: no chapter
def _tickets(rows):
    """Prose about 04_network_tickets."""
    return rows.batch_size, gpu.dvfs_thing     # reading attributes defines nothing
class DvfsTable: ...
GPU_DVFS_CLOCKS = (1, 2)
''', chapters)
    assert len(named) == 8, named
    for expected in ("imports nrg.book.chapters.c03_dvfs.analysis", "imports nrg.book.chapters.c04_network_tickets",
                     "'03_dvfs' names chapter", "'nrg.book.chapters.c04_network_tickets.claims' names", "'summary' names chapter",
                     "defines '_tickets'", "defines 'DvfsTable'", "defines 'GPU_DVFS_CLOCKS'"):
        assert any(expected in n for n in named), (expected, named)


def test_every_discovered_chapter_is_covered():
    """The check's chapters are the discovered ones (a new chapter's stem is checked without editing this file)."""
    assert {"03_dvfs", "05_batch_size", "summary"} <= set(DRIVERS)
    assert {"dvfs", "batch_size", "serving", "tickets", "model_comparison"} <= set(_topics(list(DRIVERS)))
