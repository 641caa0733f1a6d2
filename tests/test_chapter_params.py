"""papermill -p with a name the chapter does not take fails, naming it and the valid ones."""
from __future__ import annotations

from pathlib import Path

import pytest

from nrg.book import build as book
from nrg.book.chapters import DRIVERS, driver, parameter_names, reject_unknown_injected
from nrg.book.chapters.c01_model_comparison import driver as model_comparison
from nrg.errors import ParameterError

ROOT = Path(__file__).resolve().parents[1]

INJECTED = '# Parameters\nmodels = ["gpt2"]\noutput_token = 8\n'


def test_a_misspelt_injected_name_fails_listing_the_valid_names() -> None:
    history = ["", "models = ['smollm2-135m']\nrepeats = 3", INJECTED, "%matplotlib inline"]
    with pytest.raises(ParameterError, match=r"\['output_token'\].*valid parameters are: .*'task_lengths'"):
        reject_unknown_injected(model_comparison, history)


def test_known_injected_names_pass() -> None:
    reject_unknown_injected(model_comparison, ["", '# Parameters\nmodels = ["gpt2"]\nrepeats = 2\n'])


def test_interactive_sessions_without_an_injected_cell_are_not_checked() -> None:
    reject_unknown_injected(model_comparison, ["", "df = 1", "output_token = 8"])


def test_outside_ipython_nothing_is_checked() -> None:
    reject_unknown_injected(model_comparison)  # no IPython shell in pytest: no history


@pytest.mark.parametrize("chapter", sorted(DRIVERS))
def test_notebook_parameters_are_exactly_the_driver_parameters(chapter: str) -> None:
    """`nrg book` checks names against the parameters cell, the notebook against the chapter's
    ``Params`` (or ``check``): both must mean the same set, or one path would accept a name the other refuses."""
    declared = set(book.declared_parameters(book.notebook_path(ROOT, chapter)))
    assert declared == parameter_names(driver(chapter))
