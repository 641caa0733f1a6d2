"""Driver of chapter 4: fault tickets -- fine-tuning and inference of every quantization x pruning.

Two tasks on network fault tickets, as in the Energy-Aware LLMs paper: root
cause (a classifier, all-MiniLM-L6-v2 by default) and response (a generator,
SmolLM2-135M-Instruct). Each task has its own quantization x pruning grid
(``quant`` / ``prune`` and ``response_quant`` / ``response_prune``), because on
a CPU one response cell costs as much as several root-cause cells.

Parameters are checked here before any work; the tickets are the synthetic
ones of :mod:`nrg.tickets.generator` unless ``tickets_path`` names a CSV/JSONL file of
your own (its columns are named by ``text_column``, ``label_column``,
``response_column``). The analysis (tables, ANOVA, ranking, Pareto front) is
in :mod:`nrg.chapters.tickets_analysis`.
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from nrg.chapters import common
from nrg.errors import ParameterError

CHAPTER = "04_network_tickets"
TASKS: tuple[str, ...] = ("root_cause", "response")
METRICS: dict[str, tuple[str, ...]] = {"root_cause": ("macro_f1", "accuracy"), "response": ("rouge_l", "bleu")}
DEFAULT_CLASSIFIER = {"epochs": 2, "batch_size": 16, "max_len": 128, "learning_rate": 5e-3}
DEFAULT_GENERATOR = {"batch_size": 2, "max_len": 192, "max_steps": 6, "learning_rate": 1e-3}


def _strings(name: str, value: Any) -> list[str]:
    values = common.as_list(name, list(value) if isinstance(value, tuple) else value)
    return [str(v) for v in values]


def _settings(name: str, value: Any, defaults: Mapping[str, Any]) -> Any:
    """A :class:`nrg.tickets.finetune.TrainSettings` from a mapping; unknown keys list the valid ones."""
    from nrg.tickets.finetune import TrainSettings

    given = common.as_mapping(name, value)
    valid = [f.name for f in fields(TrainSettings)]
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ParameterError(f"{name} has unknown key(s) {unknown}; valid keys: {valid}")
    try:
        return TrainSettings(**{**defaults, **given})
    except ParameterError as exc:
        raise ParameterError(f"{name}: {exc}") from None


def _tasks_mapping(name: str, value: Any, valid_values: Mapping[str, tuple[str, ...]] | None = None
                   ) -> dict[str, Any]:
    mapping = common.as_mapping(name, value)
    common.check_choices(f"{name} keys", list(mapping), TASKS)
    for task, item in mapping.items():
        if valid_values is not None:
            common.check_choices(f"{name}[{task}]", [item], valid_values[task])
    return mapping


def _user_tickets(tickets_path: Any, text_column: str, label_column: str, response_column: str | None,
                  tasks: list[str]) -> list[Any] | None:
    """Tickets from the user's file, checked now (a missing column fails before any work)."""
    if tickets_path in (None, ""):
        return None
    if "response" in tasks and not response_column:
        raise ParameterError("tasks includes 'response' but response_column is None; name the column "
                             "with the reference responses, or set tasks=['root_cause']")
    from nrg.tickets.loader import load_tickets

    return load_tickets(tickets_path, text_column=text_column, label_column=label_column,
                        response_column=response_column or None)


def _grids(quant: Any, prune: Any, response_quant: Any, response_prune: Any) -> dict[str, tuple[list[str], ...]]:
    """Each task's quantization and pruning lists (the response task's default to the root cause's)."""
    root = (_strings("quant", quant), _strings("prune", prune))
    response = (_strings("response_quant", response_quant) if response_quant else root[0],
                _strings("response_prune", response_prune) if response_prune else root[1])
    return {"root_cause": root, "response": response}


def _study_options(n_tickets: Any, seed: Any, noise: Any, w: Any, train_repeats: Any, classifier: Any,
                   generator: Any, n_generate: Any, max_new_tokens: Any, generate_batch_size: Any,
                   models: Any, model_layers: Any, device: str) -> dict[str, Any]:
    """What both tasks' :class:`nrg.tickets.study.StudyConfig` share, checked."""
    names = {"root_cause": "minilm-l6", "response": "smollm2-135m",
             **{k: str(v) for k, v in _tasks_mapping("models", models).items()}}
    layers = {t: common.as_int(f"model_layers[{t}]", v)
              for t, v in _tasks_mapping("model_layers", model_layers).items()}
    batch = None if generate_batch_size is None else common.as_int("generate_batch_size", generate_batch_size)
    return dict(n_tickets=common.as_int("n_tickets", n_tickets, minimum=2), seed=common.as_int("seed", seed, 0),
                noise=common.as_fraction("noise", noise), w=common.as_fraction("w", w),
                train_repeats=common.as_int("train_repeats", train_repeats),
                classifier=_settings("classifier", classifier, DEFAULT_CLASSIFIER),
                generator=_settings("generator", generator, DEFAULT_GENERATOR),
                n_generate=common.as_int("n_generate", n_generate),
                max_new_tokens=common.as_int("max_new_tokens", max_new_tokens), generate_batch_size=batch,
                device=device, chapter=CHAPTER, model_names=names, model_layers=layers)


def check(n_tickets: int = 120, seed: int = 0, noise: float = 0.1, tickets_path: str | None = None,
          text_column: str = "text", label_column: str = "label", response_column: str | None = "response",
          tasks: Any = TASKS, quant: Any = ("none", "int8-dynamic", "nf4"),
          prune: Any = ("none", "unstructured:0.3", "structured:0.25", "2:4"),
          response_quant: Any = ("none", "int8-dynamic"), response_prune: Any = ("none", "2:4"),
          w: Any = 0.5, repeats: int = 3, response_repeats: int | None = 2, train_repeats: int = 1,
          classifier: Any = None, generator: Any = None, n_generate: int = 4, max_new_tokens: int = 24,
          generate_batch_size: int | None = 4, models: Any = None, model_layers: Any = None,
          metrics: Any = None, device: str = "cpu", threads: int | None = None, idle_s: float = 0.0,
          run_dir: str | None = None, reference_dir: str | None = None, alpha: float = 0.05,
          **unknown: Any) -> dict[str, Any]:
    """Checked, normalised parameters and the study configuration of each task; no work, no file."""
    if unknown:
        raise ParameterError(f"unknown parameter(s) {sorted(unknown)}")
    task_list = _strings("tasks", tasks)
    common.check_choices("tasks", task_list, TASKS)
    device = common.as_device("device", device)   # exists here: cuda:7 fails now, not after files
    grids = _grids(quant, prune, response_quant, response_prune)
    options = _study_options(n_tickets, seed, noise, w, train_repeats, classifier, generator, n_generate,
                             max_new_tokens, generate_batch_size, models, model_layers, device)
    chosen = {**{t: METRICS[t][0] for t in TASKS}, **_tasks_mapping("metrics", metrics, METRICS)}
    windows = {"root_cause": common.as_int("repeats", repeats),
               "response": common.as_int("response_repeats", repeats if response_repeats is None
                                         else response_repeats)}
    if threads is not None:
        threads = common.as_int("threads", threads)
    idle_s = common.as_number("idle_s", idle_s)
    tickets = _user_tickets(tickets_path, text_column, label_column, response_column, task_list)
    from nrg.tickets.study import StudyConfig

    studies = {task: StudyConfig(quant=tuple(grids[task][0]), prune=tuple(grids[task][1]), tasks=(task,),
                                 repeats=windows[task], **options) for task in task_list}
    return {"studies": studies, "tasks": task_list, "tickets": tickets,
            "tickets_path": str(Path(tickets_path).resolve()) if tickets else None,
            "w": options["w"], "metrics": chosen, "threads": threads, "idle_s": float(idle_s),
            "alpha": common.as_fraction("alpha", alpha, 1e-6, 0.5), "device": device,
            "run_dir": common.run_dir(CHAPTER, run_dir),
            "reference": common.reference_runs(common.reference_root(reference_dir), CHAPTER)}


# ------------------------------------------------------------------ the tickets


def tickets(params: Mapping[str, Any]) -> list[Any]:
    """The tickets the study trains on: the user's, or the synthetic ones of the parameters."""
    if params["tickets"] is not None:
        return list(params["tickets"])
    from nrg.tickets.generator import generate_tickets

    study = next(iter(params["studies"].values()))
    return generate_tickets(study.n_tickets, study.seed, noise=study.noise)


def sample_tickets(params: Mapping[str, Any], n: int = 3) -> Any:
    """One ticket of each of the first ``n`` root causes: text, label and reference response."""
    from nrg.tickets.generator import to_frame

    frame = to_frame(tickets(params))
    picked = frame.drop_duplicates("label").head(n)
    return picked[["ticket_id", "label", "text", "response"]].reset_index(drop=True)


def class_counts(params: Mapping[str, Any]) -> Any:
    """Tickets per root cause, and how many carry each kind of noise (synthetic tickets only)."""
    import pandas as pd

    from nrg.tickets.generator import to_frame

    frame = to_frame(tickets(params))
    counts = frame.groupby("label").size().rename("tickets").to_frame()
    if "noise" in frame.columns:
        noisy = frame["noise"].astype(str).str.len() > 0
        counts["with noise"] = frame[noisy].groupby("label").size()
    return counts.fillna(0).astype(int).reset_index() if len(counts) else pd.DataFrame()


# ------------------------------------------------------------------ measuring


@dataclass
class Timer:
    """Wall and CPU time of this chapter (this process and its children)."""

    wall_start: float
    cpu_start: float

    @classmethod
    def start(cls) -> Timer:
        return cls(time.perf_counter(), _cpu_s())

    def elapsed(self) -> dict[str, float]:
        return {"wall_s": time.perf_counter() - self.wall_start, "cpu_s": _cpu_s() - self.cpu_start}


def _cpu_s() -> float:
    import psutil

    times = psutil.Process().cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def measure(params: Mapping[str, Any], progress: bool = True) -> Any:
    """Fine-tune and evaluate every cell of every task (stored cells are reused); their rows."""
    import pandas as pd

    from nrg.dvfs.recovery import recover_leftovers

    recover_leftovers()  # a clock a killed run left locked must not skew this chapter's energy
    if params["threads"]:
        import torch

        torch.set_num_threads(params["threads"])
    data = tickets(params) if params["tickets"] is not None else None
    frames = []
    with quiet_loading():
        for task, study in params["studies"].items():
            frames.append(_run_task(params, study, data, progress))
    return pd.concat(frames, ignore_index=True, sort=False)


@contextmanager
def quiet_loading() -> Iterator[None]:
    """No load reports, progress bars or backend notices from transformers/bitsandbytes in the page."""
    import logging

    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bnb = logging.getLogger("bitsandbytes")
    level = bnb.level
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    bnb.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
        bnb.setLevel(level)


def _run_task(params: Mapping[str, Any], study: Any, data: list[Any] | None, progress: bool) -> Any:
    from nrg.tickets.study import run_ticket_study

    options = {f.name: getattr(study, f.name) for f in fields(study)
               if f.name not in ("n_tickets", "seed", "quant", "prune", "phases", "w", "tasks")}
    return run_ticket_study(params["run_dir"], n_tickets=study.n_tickets, seed=study.seed,
                            quant=study.quant, prune=study.prune, phases=study.phases, w=study.w,
                            tasks=study.tasks, tickets=data, idle_s=params["idle_s"],
                            progress=progress, **options)


def load_reference(params: Mapping[str, Any]) -> dict[str, Any]:
    """Committed GPU runs of this chapter by GPU name (empty when there are none)."""
    from nrg.chapters.sweeps import load_reference as load

    return load(params["reference"])
