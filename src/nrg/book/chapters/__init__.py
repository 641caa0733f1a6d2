"""Chapter drivers: what each notebook's parameters mean, checked before any work.

A notebook's ``parameters`` cell declares plain values; papermill's ``-p`` passes
lists and mappings as strings, so every driver reads them through
:func:`nrg.book.common.as_list` / ``as_mapping``.  Every chapter's driver has
a frozen ``Params`` dataclass (:mod:`nrg.book.params`), which the notebook builds
first: the one source of its defaults and types. :func:`validate` is what
``nrg book`` calls before executing a chapter, so a bad value fails before any
measurement and nothing is written.

Chapters are discovered, not listed: every folder on this package's
``__path__`` that holds a ``driver.py`` is one, named ``c`` + the notebook's
stem (``c03_dvfs`` for ``notebooks/03_dvfs.ipynb``) or the stem itself for an
unnumbered page (``summary``). ``NRG_CHAPTERS_PATH`` (folders separated by
``os.pathsep``) adds folders to ``__path__`` when this package is imported, so
a chapter can live outside the source tree (tests/test_new_chapter.py builds
one from a temporary folder). A chapter's optional parts are modules of its
folder that the shared book modules look up by name (:func:`part`):
``found`` (its "What this chapter found" box), ``claims`` (the papers' claims
it checks), ``reference`` (its GPU reference section and what ``nrg
reference`` measures for it).
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nrg.book.params import ChapterParams
from nrg.errors import ParameterError, choice_error
from nrg.progress import use_text_bars

use_text_bars()  # the notebooks import this package: bars as text, not widgets

#: Folders (``os.pathsep``-separated) holding more chapter folders, added to ``__path__`` on import.
PATH_ENV = "NRG_CHAPTERS_PATH"
#: The folders ``NRG_CHAPTERS_PATH`` named, each holding chapter folders: on ``__path__`` after the package's own.
ADDED_FOLDERS: tuple[Path, ...] = tuple(Path(folder).resolve() for folder in os.environ.get(PATH_ENV, "").split(os.pathsep)
                                        if folder)
__path__.extend(str(folder) for folder in ADDED_FOLDERS if str(folder) not in __path__)


def stem(folder: str) -> str:
    """The notebook stem of a chapter folder: ``c03_dvfs`` -> ``03_dvfs``; ``summary`` stays."""
    return folder[1:] if folder[:1] == "c" and folder[1:2].isdigit() else folder


def _discover() -> dict[str, str]:
    """Notebook stem -> chapter folder, for every folder on ``__path__`` holding a ``driver.py``."""
    found: dict[str, str] = {}
    for entry in __path__:
        for folder in sorted(Path(entry).iterdir()) if Path(entry).is_dir() else ():
            if (folder / "driver.py").is_file() and folder.name.isidentifier():
                found.setdefault(stem(folder.name), folder.name)
    return dict(sorted(found.items()))


#: Notebook stem -> its folder under nrg.book.chapters, whose ``driver`` module checks the parameters and
#: measures: the folders present when this package was imported.
DRIVERS: dict[str, str] = _discover()


def _install_display() -> None:
    """In a notebook kernel: tables and figures shown readably, with links to their data.

    The chapters import this package first thing, so every cell that ends in
    a DataFrame or a figure gets :mod:`nrg.book.display`'s treatment
    without changing the cell. Outside a kernel (the CLI, tests) nothing happens.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and hasattr(shell, "kernel"):
        from nrg.book.display import install

        install(shell)


_install_display()


def driver(chapter: str) -> types.ModuleType:
    """The driver module of ``chapter``."""
    if chapter not in DRIVERS:
        raise choice_error("chapter", chapter, sorted(DRIVERS))
    return importlib.import_module(f"nrg.book.chapters.{DRIVERS[chapter]}.driver")


def has_part(chapter: str, name: str) -> bool:
    """Whether ``chapter``'s folder holds a module ``name`` (``found``, ``claims``, ``reference`` ...)."""
    return chapter in DRIVERS and importlib.util.find_spec(f"nrg.book.chapters.{DRIVERS[chapter]}.{name}") is not None


def with_part(name: str) -> list[str]:
    """The chapters (stems, in book order) whose folder holds a module ``name``."""
    return [chapter for chapter in DRIVERS if has_part(chapter, name)]


def part(chapter: str, name: str) -> types.ModuleType:
    """The module ``name`` of ``chapter``'s folder; a chapter without one is refused, naming those with one."""
    if not has_part(chapter, name):
        raise choice_error("chapter", chapter, with_part(name))
    return importlib.import_module(f"nrg.book.chapters.{DRIVERS[chapter]}.{name}")


def reads_every_chapter(chapter: str) -> bool:
    """Whether ``chapter``'s page is built from every chapter's stored rows (its package's ``READS_EVERY_CHAPTER``).

    Such a page's kept execution is stale when any chapter's rows change
    (:func:`nrg.book.build.execution_key`).
    """
    if chapter not in DRIVERS:
        return False
    package = importlib.import_module(f"nrg.book.chapters.{DRIVERS[chapter]}")
    return bool(getattr(package, "READS_EVERY_CHAPTER", False))


def parameter_names(chapter_driver: types.ModuleType) -> set[str]:
    """The parameters a chapter takes: its ``Params`` fields."""
    return set(chapter_driver.Params.names())


def validate(chapter: str, params: Mapping[str, Any]) -> ChapterParams:
    """The chapter's checked parameters; raise :class:`nrg.errors.ParameterError` if any value is bad."""
    chapter_driver = driver(chapter)
    unknown = sorted(set(params) - parameter_names(chapter_driver))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown}; valid parameters are: "
                             f"{sorted(parameter_names(chapter_driver))}")
    checked: ChapterParams = chapter_driver.Params(**params)
    return checked


def reject_unknown_injected(chapter_driver: types.ModuleType, history: Sequence[str] | None = None) -> None:
    """Fail on a ``papermill -p NAME`` whose NAME the chapter does not take.

    papermill only warns about such a name and the run would silently use the
    default instead (a typo like ``-p output_token 8`` would measure the wrong
    thing). papermill injects its values as a cell starting ``# Parameters``;
    the names assigned there are compared with the chapter's parameters
    (:func:`parameter_names`). ``history`` defaults to IPython's input history (``In``);
    interactive edits without an injected cell are never affected.
    """
    if history is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return
        shell = get_ipython()
        history = shell.user_ns.get("In", []) if shell is not None else []
    injected = next((src for src in reversed(list(history))
                     if src.lstrip().startswith("# Parameters")), None)
    if injected is None:
        return
    names = {target.id for node in ast.walk(ast.parse(injected)) if isinstance(node, ast.Assign)
             for target in node.targets if isinstance(target, ast.Name)}
    valid = parameter_names(chapter_driver)
    unknown = sorted(names - valid)
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown} given with papermill -p; "
                             f"valid parameters are: {sorted(valid)}")
