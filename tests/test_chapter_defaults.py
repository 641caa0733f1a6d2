"""One source per chapter default: the notebook's parameters cell, the driver's ``check`` and config dataclasses agree.

A reader who runs a notebook, ``nrg book`` (which calls ``check`` with the
profile's values over the notebook's) and ``nrg sweep`` with a chapter's config
must get the same defaults. For every chapter:

* the parameters cell names exactly ``check``'s parameters;
* each value in the cell equals ``check``'s default; where ``check``'s default is
  ``None`` standing for a value the driver fills in, the cell's value must be
  that value: ``check(name=cell value)`` returns what ``check()`` returns;
* a dataclass that holds the chapter's settings (chapter 4's
  :class:`nrg.tickets.options.FinetuneOptions`, whose defaults a sweep config
  gets for the keys it leaves out) has the cell's values as its defaults.
"""
from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from nrg.book import build as book
from nrg.book.chapters import DRIVERS, driver

ROOT = Path(__file__).resolve().parents[1]


def plain(value: Any) -> Any:
    """Tuples as lists and mappings as dicts, recursively: how a notebook cell writes them."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


def defaults(chapter: str) -> dict[str, Any]:
    return {name: p.default for name, p in inspect.signature(driver(chapter).check).parameters.items()
            if p.kind is not inspect.Parameter.VAR_KEYWORD}


def typed(chapter: str) -> bool:
    """Chapters whose parameters are a ``Params`` dataclass (tests/test_params_dataclass.py covers them)."""
    return hasattr(driver(chapter), "Params")


def declared(chapter: str) -> dict[str, Any]:
    return book.declared_parameters(book.notebook_path(ROOT, chapter))


@pytest.fixture(autouse=True)
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NRG_RUNS_DIR", str(tmp_path / "runs"))


#: Chapter 6's driver asks the engine's own Python for its version: a process.
@pytest.mark.parametrize("chapter", [pytest.param(c, marks=pytest.mark.process) if c == "06_serving" else c
                                     for c in sorted(DRIVERS)])
def test_notebook_defaults_are_the_drivers(chapter: str) -> None:
    if typed(chapter):
        pytest.skip("its Params dataclass is compared with the cell in tests/test_params_dataclass.py")
    cell, signature = declared(chapter), defaults(chapter)
    assert set(cell) == set(signature)
    literal = {name: (plain(cell[name]), plain(default)) for name, default in signature.items()
               if default is not None}
    assert {n: c for n, (c, d) in literal.items() if c != d} == {}, "the cell disagrees with check()"
    filled = [name for name, default in signature.items() if default is None and cell[name] is not None]
    if filled:
        baseline = driver(chapter).check()
        for name in filled:   # None stands for exactly the cell's value
            assert driver(chapter).check(**{name: cell[name]}) == baseline, name


def test_chapter_4_options_defaults_are_the_notebooks() -> None:
    from nrg.tickets.finetune import TrainSettings
    from nrg.tickets.options import DEFAULTS

    cell = declared("04_network_tickets")
    shared = [f.name for f in dataclasses.fields(DEFAULTS) if f.name in cell]
    assert set(shared) >= {"n_tickets", "noise", "tickets_path", "train_repeats", "n_generate", "output_tokens",
                           "generate_batch_size", "classifier", "generator"}
    for name in shared:
        value = getattr(DEFAULTS, name)
        if isinstance(value, TrainSettings):
            assert TrainSettings(**cell[name]) == value, name
        else:
            assert cell[name] == value, name


def test_chapter_4_sweep_configs_get_the_notebooks_values() -> None:
    """The sweep configs ``check()`` builds carry the cell's values (not another default)."""
    from nrg.sweep.config import parse_config

    cell = declared("04_network_tickets")
    params = driver("04_network_tickets").Params()
    for task, config in params["configs"].items():
        options = parse_config(config).settings.options
        assert options["n_tickets"] == cell["n_tickets"] and options["noise"] == cell["noise"]
        kind = "classifier" if task == "root_cause" else "generator"
        assert {k: options[kind][k] for k in cell[kind]} == cell[kind]
        assert parse_config(config).settings.repeats.min_n == cell["repeats" if task == "root_cause"
                                                                   else "response_repeats"]
    assert params["options"]["output_tokens"] == cell["output_tokens"]
