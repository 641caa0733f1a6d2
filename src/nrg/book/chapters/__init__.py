"""Chapter drivers: what each notebook's parameters mean, checked before any work.

A notebook's ``parameters`` cell declares plain values; papermill's ``-p`` passes
lists and mappings as strings, so every driver reads them through
:func:`nrg.book.common.as_list` / ``as_mapping``.  A typed chapter's driver has
a frozen ``Params`` dataclass (:mod:`nrg.book.params`), which the notebook builds
first; the others still have ``check(**params)``. :func:`validate` is what
``nrg book`` calls before executing a chapter, so a bad value fails before any
measurement and nothing is written.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import types
from collections.abc import Mapping, Sequence
from typing import Any

from nrg.errors import ParameterError, choice_error
from nrg.progress import use_text_bars

use_text_bars()  # the notebooks import this package: bars as text, not widgets

# notebook stem -> its folder under nrg.book.chapters (``c`` + the stem for a numbered chapter),
# whose ``driver`` module checks the parameters and measures.
DRIVERS: dict[str, str] = {
    stem: (f"c{stem}" if stem[0].isdigit() else stem)
    for stem in ("00_how_energy_is_measured", "01_model_comparison", "02_sequence_length", "03_dvfs",
                 "04_network_tickets", "05_batch_size", "06_serving", "summary")
}


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


def parameter_names(chapter_driver: types.ModuleType) -> set[str]:
    """The parameters a chapter takes: its ``Params`` fields (or, not yet typed, ``check``'s arguments)."""
    if hasattr(chapter_driver, "Params"):
        return set(chapter_driver.Params.names())
    return {name for name, p in inspect.signature(chapter_driver.check).parameters.items()
            if p.kind is not inspect.Parameter.VAR_KEYWORD}


def validate(chapter: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The chapter's checked parameters; raise :class:`nrg.errors.ParameterError` if any value is bad."""
    chapter_driver = driver(chapter)
    if hasattr(chapter_driver, "Params"):
        unknown = sorted(set(params) - parameter_names(chapter_driver))
        if unknown:
            raise ParameterError(f"unknown parameter(s) {unknown}; valid parameters are: "
                                 f"{sorted(parameter_names(chapter_driver))}")
        return chapter_driver.Params(**params)  # type: ignore[no-any-return]
    return chapter_driver.check(**dict(params))  # type: ignore[no-any-return]


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
