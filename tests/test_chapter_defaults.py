"""Chapter 4's shared settings agree with its notebook's parameters cell.

Every chapter's ``Params`` dataclass is compared with its parameters cell in
tests/test_params_dataclass.py. Chapter 4 also has a dataclass that holds its
settings for ``nrg sweep`` (:class:`nrg.tickets.options.FinetuneOptions`, whose
defaults a sweep config gets for the keys it leaves out): a reader who runs the
notebook, ``nrg book`` or ``nrg sweep`` with the chapter's config must get the
same defaults, so that dataclass has the cell's values as its defaults, and the
configs ``Params`` builds carry the cell's values.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from nrg.book import build as book
from nrg.book.chapters import driver

ROOT = Path(__file__).resolve().parents[1]


def plain(value: Any) -> Any:
    """Tuples as lists and mappings as dicts, recursively: how a notebook cell writes them."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


def declared(chapter: str) -> dict[str, Any]:
    return book.declared_parameters(book.notebook_path(ROOT, chapter))


@pytest.fixture(autouse=True)
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NRG_RUNS_DIR", str(tmp_path / "runs"))


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
    """The sweep configs ``Params`` builds carry the cell's values (not another default)."""
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
