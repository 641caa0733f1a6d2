"""A chapter's ``Params`` dataclass is the one source of its parameters, parsed and checked once.

For every chapter whose driver has a ``Params``:

* its fields are exactly the notebook's parameters cell, each declared default
  is the cell's value, and the cell's values build the same ``Params`` as the
  defaults (so ``nrg book run``, papermill and a hand-edited notebook agree);
* every key of every profile under ``notebooks/params`` is a field;
* papermill's strings (``-p models '[gpt2]'``) are parsed into the fields' types;
* a bad value raises :class:`~nrg.errors.ParameterError` naming the parameter and
  the valid choices.

And chapter 1's ``models`` on the ``nrg book run`` path: parsed once per process
into :class:`~nrg.models.ModelSpec` (the sweep configs hold those specs as they
are) and checked against the machine once per run (in the ``nrg book run``
process; the kernel trusts it and the runner does not check again).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from nrg.book import build as book
from nrg.book.chapters import DRIVERS, driver
from nrg.book.params import CHECKED_ENV, ChapterParams, checked_env
from nrg.errors import ParameterError
from nrg.models.spec import ModelSpec
from nrg.sweep.repeats import RepeatPolicy

ROOT = Path(__file__).resolve().parents[1]
TYPED = sorted(DRIVERS)
C1 = "01_model_comparison"
C3 = "03_dvfs"
#: Typed chapters whose ``Params`` starts a process where an engine is installed (chapter 6 asks its version).
STARTS_PROCESS = {"06_serving"}


@pytest.fixture(autouse=True)
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NRG_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv(CHECKED_ENV, raising=False)
    return tmp_path / "runs"


def plain(value: Any) -> Any:
    """Tuples as lists and mappings as dicts, recursively: how a notebook cell writes them."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, RepeatPolicy):   # a fixed count is written as the count
        fixed = value.ci_rel is None and value.min_n == value.max_n
        return value.min_n if fixed else {"min": value.min_n, "max": value.max_n, "ci_rel": value.ci_rel}
    return value


def same(given: Any, default: Any) -> bool:
    """The cell's value is the declared default (settings such as chapter 4's ``classifier`` as a mapping)."""
    if dataclasses.is_dataclass(default) and not isinstance(default, RepeatPolicy) and isinstance(given, Mapping):
        return type(default)(**given) == default
    return bool(plain(given) == plain(default))


def cell(chapter: str) -> dict[str, Any]:
    return book.declared_parameters(book.notebook_path(ROOT, chapter))


def declared_defaults(params_class: type) -> dict[str, Any]:
    return {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
            for f in dataclasses.fields(params_class) if f.init}


@pytest.mark.parametrize("chapter", sorted(DRIVERS))
def test_every_chapter_has_a_params_dataclass_and_no_check(chapter: str) -> None:
    params = driver(chapter).Params
    assert dataclasses.is_dataclass(params) and issubclass(params, ChapterParams)
    assert params.__dataclass_params__.frozen and not hasattr(driver(chapter), "check")  # type: ignore[attr-defined]


def marked(chapters: list[str]) -> list[Any]:
    """``chapters`` as parameters, those whose ``Params`` may start a process marked ``process``."""
    return [pytest.param(c, marks=pytest.mark.process) if c in STARTS_PROCESS else c for c in chapters]


@pytest.mark.parametrize("chapter", marked(TYPED))
def test_params_fields_and_defaults_are_the_parameters_cell(chapter: str) -> None:
    params_class = driver(chapter).Params
    values = cell(chapter)
    assert set(params_class.names()) == set(values)
    defaults = declared_defaults(params_class)
    assert {n: (values[n], d) for n, d in defaults.items() if not same(values[n], d)} == {}
    assert params_class(**values) == params_class()


@pytest.mark.parametrize("profile", book.profiles(ROOT))
@pytest.mark.parametrize("chapter", TYPED)
def test_every_profile_key_is_a_params_field(chapter: str, profile: str) -> None:
    given = book.load_profile(ROOT, profile).get(chapter, {})
    assert not set(given) - set(driver(chapter).Params.names()), (profile, set(given))


def test_papermill_strings_are_parsed_into_the_fields_types() -> None:
    params = driver(C1).Params(models='["gpt2", {name: gpt2, weights: random, tiny: true}]', weights="random",
                               tasks="[qa]", task_lengths="{qa: [16, 2]}", repeats="2", isolate="false",
                               batch_size="1", warmup="0", idle_s="0.5", layers="2")
    assert params.models == (ModelSpec("gpt2", "random", layers=2), ModelSpec("gpt2", "random", layers=2, tiny=True))
    assert params.tasks == ("qa",) and params.task_lengths == {"qa": (16, 2)}
    assert params.repeats == RepeatPolicy(min_n=2, max_n=2, ci_rel=None)
    assert (params.isolate, params.batch_size, params.warmup, params.idle_s) == (False, 1, 0, 0.5)
    assert [c.models for c in (item.config for item in params.checked)] == [params.models]


#: Chapter 3's cases start from a cheap model on the CPU, so only the value under test is wrong.
C3_BASE = {"models": "[{name: gpt2, weights: random, tiny: true}]", "device": "cpu"}


@pytest.mark.parametrize("chapter, given, names", [
    (C1, {"dtype": "float64"}, ("dtype", "'bfloat16'")),
    (C1, {"tasks": "[poetry]"}, ("tasks", "'summarization'")),
    (C1, {"executor": "slurm"}, ("executor", "'ray'")),
    (C1, {"weights": "realz"}, ("weights", "'random'")),
    (C1, {"models": "[{name: gpt2, colour: red}]"}, ("models[].key", "'tiny'")),
    (C3, {**C3_BASE, "dtype": "float64"}, ("dtype", "'auto'", "'bfloat16'")),
    (C3, {**C3_BASE, "device": "tpu"}, ("device", "'cuda:N'")),
    (C3, {**C3_BASE, "executor": "slurm"}, ("executor", "'ray'")),
    (C3, {**C3_BASE, "allow_hardware_settings": "yes"}, ("allow_hardware_settings", "True, False")),
    (C3, {**C3_BASE, "gpu_clocks_mhz": "fast"}, ("gpu_clocks_mhz", "'auto' or a list")),
    (C3, {**C3_BASE, "cpu_max_freqs_khz": "[0]"}, ("cpu_max_freqs_khz", "None, 'auto' or a list")),
])
def test_a_bad_value_names_the_parameter_and_the_choices(chapter: str, given: dict[str, Any],
                                                         names: tuple[str, ...]) -> None:
    assert chapter in TYPED
    with pytest.raises(ParameterError) as info:
        driver(chapter).Params(**given)
    assert all(n in str(info.value) for n in names), str(info.value)


def test_a_config_entry_is_a_partial_model_spec() -> None:
    """A sweep config holds the chapter's specs as they are; a spec that sets dtype or device is refused."""
    from nrg.sweep.config import parse_config

    spec = ModelSpec("gpt2", "random", layers=1, tiny=True)
    cfg = parse_config({"models": [spec, "gpt2"], "dtypes": ["float16"]})
    assert cfg.models[0] is spec and cfg.models[1] == ModelSpec("gpt2")
    cell = cfg.cells()[0]
    assert cell.model is spec and cell.model.for_cell(cell.dtype, "cpu").dtype == "float16"
    assert type(cell).from_dict(cell.to_dict()) == cell
    with pytest.raises(ParameterError, match="dtype, device or head"):
        parse_config({"models": [ModelSpec("gpt2", dtype="float16")]})


# ------------------------------------------------------------------ chapter 1's models: parsed and checked once
TINY_RUN = {"models": [{"name": "gpt2", "weights": "random", "tiny": True}], "tasks": ["qa"],
            "task_lengths": {"qa": [8, 2]}, "repeats": 1, "warmup": 0, "idle_s": 0, "quality_items": 0,
            "isolate": False}


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Counting wrappers around the parse of ``models`` and the checks against the machine."""
    import importlib

    from nrg.book import sweeps
    from nrg.sweep import check

    load = importlib.import_module("nrg.models.load")   # the module (``nrg.models.load`` is also a function)

    seen = {"models parsed": 0, "entries parsed": 0, "configs checked": 0, "device checked": 0}

    def counting(module: Any, name: str, key: str, when: Any = lambda *a: True) -> None:
        real = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen[key] += bool(when(*args))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    counting(sweeps, "parse_models", "models parsed")
    real_parse = ModelSpec.parse.__func__                  # type: ignore[attr-defined]

    def parse(cls: type[ModelSpec], value: Any, *args: Any) -> ModelSpec:
        seen["entries parsed"] += not isinstance(value, ModelSpec)
        return real_parse(cls, value, *args)                 # type: ignore[no-any-return]

    monkeypatch.setattr(ModelSpec, "parse", classmethod(parse))
    counting(check, "check", "configs checked")
    counting(load, "check_device_available", "device checked")
    yield seen


@pytest.mark.slow   # measures one tiny cell in this process
def test_chapter_1_models_are_parsed_once_per_process_and_checked_once_per_run(counts: dict[str, int]) -> None:
    chapter = driver(C1)
    checked = book.check_parameters(ROOT, C1, TINY_RUN)           # `nrg book run`, before papermill
    assert counts == {"models parsed": 1, "entries parsed": 1, "configs checked": 1, "device checked": 1}
    with checked_env(checked):                                       # the kernel execute_chapter starts
        params = chapter.Params(**{**cell(C1), **TINY_RUN})          # the notebook's first cell
        assert counts == {"models parsed": 2, "entries parsed": 2, "configs checked": 1, "device checked": 1}
        rows = chapter.measure(params, progress=False)
    # measuring checks nothing again; loading the model guards its device itself (once per load: a
    # cell may load on another machine), which is the one further device check
    assert counts == {"models parsed": 2, "entries parsed": 2, "configs checked": 1, "device checked": 2}
    assert set(rows["model_name"]) == {"gpt2"} and (rows["status"] == "ok").all()


def test_without_nrg_book_run_the_notebook_checks_its_params_itself(counts: dict[str, int]) -> None:
    params = driver(C1).Params(**{**cell(C1), **TINY_RUN})
    assert counts == {"models parsed": 1, "entries parsed": 1, "configs checked": 1, "device checked": 1}
    with checked_env(params):   # other values than the kernel's: not trusted
        driver(C1).Params(**{**cell(C1), **TINY_RUN, "warmup": 1})
    assert counts["configs checked"] == 2


def test_chapter_3_is_checked_once_per_run_with_device_and_dtype_auto(counts: dict[str, int]) -> None:
    """``device`` and ``dtype`` left at ``auto`` resolve the same in both processes: the kernel trusts the check."""
    tiny = {"models": [{"name": "gpt2", "weights": "random", "tiny": True}], "input_tokens": 8, "output_tokens": 2}
    checked = book.check_parameters(ROOT, C3, tiny)                  # `nrg book run`, before papermill
    assert counts["configs checked"] == 1 and checked["device"] != "auto" and checked["dtype"] != "auto"
    with checked_env(checked):                                       # the kernel execute_chapter starts
        params = driver(C3).Params(**{**cell(C3), **tiny})          # the notebook's first cell
    assert counts["configs checked"] == 1 and params == checked
    assert [item.config.settings.device for item in params.checked] == [params.device]


def test_measuring_hands_the_runner_the_checked_cells(counts: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast loop's half of the count: the runner gets the cells checked with the Params, checks nothing."""
    import pandas as pd

    from nrg.book import sweeps
    from nrg.sweep import run
    from nrg.sweep.runfolder import store

    params = driver(C1).Params(**{**cell(C1), **TINY_RUN, "tasks": ["qa", "summarization"],
                                  "task_lengths": {"qa": [8, 2], "summarization": [8, 3]}})
    handed: list[tuple[Any, Any]] = []
    monkeypatch.setattr(run, "run_sweep", lambda config, out, progress=True, checked_cells=None:
                        handed.append((config, checked_cells)))
    monkeypatch.setattr(store, "load", lambda folder, cell_ids: pd.DataFrame({"cell_id": list(cell_ids)}))
    assert params.run_dir is not None
    rows = sweeps.measure_checked(params.checked, params.run_dir, progress=False)
    assert [(config, cells) for config, cells in handed] == [(i.config, i.cells) for i in params.checked]
    assert list(rows["cell_id"]) == [c.cell_id for i in params.checked for c in i.cells]
    assert counts["configs checked"] == 2 and counts["models parsed"] == 1   # both in building the Params
