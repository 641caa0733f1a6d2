"""Workloads behind one protocol: the runner reaches them only through the registry; one repeat-stop rule.

The fine-tuning sweep in randomized blocks is in ``tests/test_tickets_workload.py``.
"""
from __future__ import annotations

import ast
import inspect
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from nrg.sweep.repeats import RepeatPolicy
from nrg.workloads import registry
from nrg.workloads.protocol import Worker

SRC = Path(__file__).resolve().parents[1] / "src" / "nrg"
RUNNER = SRC / "sweep"
#: what the runner may import from the workloads' side: the contract, the registry, the shared cell tools
ALLOWED = ("nrg.workloads.protocol", "nrg.workloads.registry", "nrg.workloads.cells")


def _workload_modules() -> set[str]:
    """Every module a registered workload lives in, and its package when that is not nrg.workloads."""
    names = set()
    for w in registry.WORKLOADS.values():
        names.add(w.module)
        package = w.module.rpartition(".")[0]
        if package != "nrg.workloads":
            names.add(package)
    return names | {"nrg.workloads.phases"}


def _imports(source: str, module: str) -> list[str]:
    """Every module ``source`` imports, at any depth, TYPE_CHECKING included; relative ones resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: -node.level]
                base = ".".join([*parts, base] if base else parts)
            found += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return found


def _forbidden(source: str, module: str) -> list[str]:
    workloads = _workload_modules()
    bad = []
    for name in _imports(source, module):
        if name.startswith(ALLOWED) or name == "nrg.workloads":
            continue
        if any(name == w or name.startswith(w + ".") for w in workloads):
            bad.append(name)
    return bad


def test_the_scan_sees_a_workload_import_in_every_form() -> None:
    for source in ("from nrg.workloads.generation import prepare_cell",
                   "import nrg.tickets.workload",
                   "from nrg.workloads import generation",
                   "from ..serving.workload import ServingWorker",
                   "def f():\n    from nrg.tickets import workload\n",
                   "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from nrg.serving.options import X\n"):
        assert _forbidden(source, "nrg.sweep.run"), source
    assert _forbidden("from nrg.workloads import registry\nfrom nrg.workloads.protocol import Worker",
                      "nrg.sweep.run") == []


def test_no_runner_module_imports_a_workload() -> None:
    modules = sorted(RUNNER.rglob("*.py"))
    assert len(modules) > 20   # the scan reads the runner, not an empty folder
    bad = {}
    for path in modules:
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        found = _forbidden(path.read_text(), module)
        if found:
            bad[path.name] = found
    assert bad == {}, f"runner modules importing a workload (go through nrg.workloads.registry): {bad}"


def test_every_registered_workload_has_a_worker_of_the_protocol() -> None:
    import importlib

    for w in registry.WORKLOADS.values():
        cls = getattr(importlib.import_module(w.module), w.worker)
        for name in ("prepare", "repeat", "finish", "close"):
            mine = inspect.signature(getattr(cls, name))
            theirs = inspect.signature(getattr(Worker, name))
            assert list(mine.parameters) == list(theirs.parameters), (w.name, name)
        assert list(inspect.signature(cls).parameters)[:3] == ["cell", "context", "monitor_options"]
    assert [registry.interleaves(n) for n in ("generation", "finetune", "serving")] == [True, True, False]


# ------------------------------------------------------------------ one repeat-stop rule


@pytest.mark.parametrize(("samples", "attempts", "done"), [
    ([1.0, 1.0], 2, True),                           # min reached, interval 0
    ([1.0], 1, False),                               # below min
    ([1.0, 2.0, 0.5], 3, False),                     # interval wide, below max
    ([math.nan] * 4, 4, False),                      # no finite sample yet, below the cap
    ([math.nan] * 5, 5, True),                       # the cap holds without any sample
    ([1.0, math.nan], 2, False),                     # a NaN sample does not count towards min
])
def test_the_rule_judges_finite_samples_and_caps_attempts(samples: list[float], attempts: int,
                                                          done: bool) -> None:
    assert RepeatPolicy(min_n=2, max_n=5, ci_rel=0.05).done(samples, attempts) is done


def _measurement(per_token: float) -> Any:
    """No energy and no time when ``per_token`` is NaN (a meter that failed): the sample is NaN."""
    return SimpleNamespace(domains={"cpu": None}, total_j=lambda: per_token, elapsed_s=per_token)


def _finetune_windows(per_token: float, policy: RepeatPolicy) -> int:
    from nrg.tickets.workload import _Job

    cell = SimpleNamespace(settings=SimpleNamespace(warmup=0, repeats=policy))
    job = _Job(cell, None, None, None, None, None)  # type: ignore[arg-type]
    job.evaluate = lambda model, settings, monitor: SimpleNamespace(  # type: ignore[method-assign]
        measurement=_measurement(per_token), tokens=1)
    job.row = lambda result, k, window=0: {"window": window}  # type: ignore[method-assign]
    return len(job.inference_rows(None, None, 0, None))  # type: ignore[arg-type]


def _serving_blocks(per_token: float, policy: RepeatPolicy) -> int:
    from nrg.serving.workload import Levels

    job = SimpleNamespace(cell=SimpleNamespace(settings=SimpleNamespace(repeats=policy, seed=0)),
                          level=lambda c, block, order, *rest: [{"energy_per_token_j": per_token}] * 2)
    levels = Levels([1, 4])
    while levels.block(job, None, None, {}):  # type: ignore[arg-type]
        pass
    assert len(levels.samples[1]) == len(levels.samples[4]) == levels.blocks
    return levels.blocks


@pytest.mark.parametrize("count", [_finetune_windows, _serving_blocks])
def test_fine_tuning_and_serving_stop_by_the_same_capped_rule(count: Any) -> None:
    policy = RepeatPolicy(min_n=2, max_n=5, ci_rel=0.05)
    assert count(1.0, policy) == 2              # steady samples: the minimum
    assert count(math.nan, policy) == 5         # no finite sample ever: the cap, never an endless loop
    assert count(math.nan, RepeatPolicy(min_n=3, max_n=3, ci_rel=None)) == 3


def test_a_cell_run_asks_its_workload_how_many_repeats() -> None:
    from nrg.sweep.config import parse_config
    from nrg.sweep.schedule.blocks import CellRun

    finetune = {"name": "t", "workload": "finetune", "models": [{"name": "minilm-l6", "layers": 1}],
                "tasks": ["root_cause"], "repeats": {"min": 2, "max": 6}, "idle_s": 0,
                "finetune": {"n_tickets": 24, "train_repeats": 3}}
    run = CellRun(parse_config(finetune).cells()[0])
    assert (run.policy.min_n, run.policy.max_n, run.policy.ci_rel) == (3, 3, None)
    run.attempts = 3
    assert run.stopped
    generation = {"name": "g", "models": [{"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}],
                  "repeats": {"min": 2, "max": 6}, "idle_s": 0}
    cell = parse_config(generation).cells()[0]
    assert CellRun(cell).policy == cell.settings.repeats
