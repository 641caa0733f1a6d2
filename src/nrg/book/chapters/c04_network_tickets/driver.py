"""Driver of chapter 4: fault tickets -- fine-tuning and inference of every quantization x pruning.

Two tasks on network fault tickets, as in the Energy-Aware LLMs paper: root
cause (a classifier, all-MiniLM-L6-v2 by default) and response (a generator,
SmolLM2-135M-Instruct). Each task has its own quantization x pruning grid
(``quant`` / ``prune`` and ``response_quant`` / ``response_prune``), because on
a CPU one response cell costs as much as several root-cause cells.

The chapter is a sweep: :func:`check` turns the parameters into one sweep
config per task (``workload: finetune``, :mod:`nrg.tickets.workload`) and
:func:`measure` runs them with :func:`nrg.sweep.run.run_sweep` -- each cell in
its own process, resumable, failures as rows -- so ``nrg sweep`` reproduces the
chapter without Jupyter (``notebooks/params/sweeps/04_network_tickets_*.yaml``
are these configs for the default parameters). The defaults of the ticket and
training parameters are those of :data:`nrg.tickets.options.DEFAULTS`.

Parameters are checked here before any work; the tickets are the synthetic
ones of :mod:`nrg.tickets.generator` unless ``tickets_path`` names a CSV/JSONL file of
your own (its columns are named by ``text_column``, ``label_column``,
``response_column``). The analysis (tables, ANOVA, ranking, Pareto front) is
in :mod:`nrg.book.chapters.c04_network_tickets.analysis`.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.book import carbon, common, sweeps
from nrg.errors import ParameterError
from nrg.tickets.options import DEFAULT_MODELS, DEFAULTS, TASKS, train_settings

if TYPE_CHECKING:
    import pandas as pd

CHAPTER = "04_network_tickets"
METRICS: dict[str, tuple[str, ...]] = {"root_cause": ("macro_f1", "accuracy"), "response": ("rouge_l", "bleu")}


def _strings(name: str, value: Any) -> list[str]:
    values = common.as_list(name, list(value) if isinstance(value, tuple) else value)
    return [str(v) for v in values]


def _tasks_mapping(name: str, value: Any, valid_values: Mapping[str, tuple[str, ...]] | None = None
                   ) -> dict[str, Any]:
    mapping = common.as_mapping(name, value)
    common.check_choices(f"{name} keys", list(mapping), TASKS)
    for task, item in mapping.items():
        if valid_values is not None:
            common.check_choices(f"{name}[{task}]", [item], valid_values[task])
    return mapping


def _grids(quant: Any, prune: Any, response_quant: Any, response_prune: Any
           ) -> dict[str, tuple[list[str], list[str]]]:
    """Each task's quantization and pruning lists (the response task's default to the root cause's)."""
    root = (_strings("quant", quant), _strings("prune", prune))
    response = (_strings("response_quant", response_quant) if response_quant else root[0],
                _strings("response_prune", response_prune) if response_prune else root[1])
    return {"root_cause": root, "response": response}


def _finetune_section(n_tickets: Any, noise: Any, tickets_path: Any, text_column: str, label_column: str,
                      response_column: str | None, train_repeats: Any, classifier: Any, generator: Any,
                      n_generate: Any, output_tokens: Any, generate_batch_size: Any) -> dict[str, Any]:
    """The ``finetune:`` section of the chapter's sweep configs (papermill strings parsed)."""
    batch = None if generate_batch_size is None else common.as_int("generate_batch_size", generate_batch_size)
    return {"n_tickets": common.as_int("n_tickets", n_tickets, minimum=2), "noise": common.as_fraction("noise", noise),
            "tickets_path": None if tickets_path in (None, "") else str(tickets_path),
            "text_column": text_column, "label_column": label_column, "response_column": response_column or None,
            "train_repeats": common.as_int("train_repeats", train_repeats),
            "classifier": train_settings("classifier", common.as_mapping("classifier", classifier),
                                         DEFAULTS.classifier).to_dict(),
            "generator": train_settings("generator", common.as_mapping("generator", generator),
                                        DEFAULTS.generator).to_dict(),
            "n_generate": common.as_int("n_generate", n_generate),
            "output_tokens": common.as_int("output_tokens", output_tokens), "generate_batch_size": batch}


def sweep_config(task: str, quant: list[str], prune: list[str], repeats: Any, section: Mapping[str, Any],
                 model: str, layers: int | None, device: str, seed: int, idle_s: float, isolate: bool
                 ) -> dict[str, Any]:
    """One task's sweep config: its model, its quant x prune grid, the shared ``finetune:`` section."""
    return {"name": f"{CHAPTER}-{task}", "chapter": CHAPTER, "workload": "finetune",
            "models": [{"name": model, "weights": "real", "layers": layers}], "tasks": [task],
            "dtypes": ["float32"], "device": device, "axes": {"prune": list(prune), "quant": list(quant)},
            "repeats": repeats, "idle_s": idle_s, "isolate": isolate, "seed": seed, "finetune": dict(section)}


def check(n_tickets: int = DEFAULTS.n_tickets, seed: int = 0, noise: float = DEFAULTS.noise,
          tickets_path: str | None = DEFAULTS.tickets_path, text_column: str = DEFAULTS.text_column,
          label_column: str = DEFAULTS.label_column, response_column: str | None = DEFAULTS.response_column,
          tasks: Any = TASKS, quant: Any = ("none", "int8-dynamic", "nf4"),
          prune: Any = ("none", "unstructured:0.3", "structured:0.25", "2:4"),
          response_quant: Any = ("none", "int8-dynamic"), response_prune: Any = ("none", "2:4"),
          w: Any = 0.5, repeats: Any = 3, response_repeats: Any = 2,
          train_repeats: int = DEFAULTS.train_repeats, classifier: Any = None, generator: Any = None,
          n_generate: int = DEFAULTS.n_generate, output_tokens: int = DEFAULTS.output_tokens,
          generate_batch_size: int | None = DEFAULTS.generate_batch_size, models: Any = None,
          model_layers: Any = None, metrics: Any = None, device: str = "cpu", threads: int | None = None,
          idle_s: float = 0.0, isolate: bool = True, run_dir: str | None = None,
          reference_dir: str | None = None, alpha: float = 0.05, region: str = carbon.DEFAULT_REGION,
          price_per_kwh: float | None = None, pue: float = carbon.DEFAULT_PUE,
          **unknown: Any) -> dict[str, Any]:
    """Checked, normalised parameters and the sweep config of each task; no work, no file.

    ``classifier`` / ``generator`` = None means the training settings of
    :data:`nrg.tickets.options.DEFAULTS`; a mapping replaces some of them.
    ``repeats`` (root cause) and ``response_repeats`` are inference windows per
    tuned model: an integer, or ``{min, max, ci_rel}`` (adaptive on energy).
    """
    if unknown:
        raise ParameterError(f"unknown parameter(s) {sorted(unknown)}")
    impact = carbon.check_params(region, price_per_kwh, pue)   # region, price_per_kwh, pue
    task_list = _strings("tasks", tasks)
    common.check_choices("tasks", task_list, TASKS)
    device = common.as_device("device", device)   # exists here: cuda:7 fails now, not after files
    isolate = common.as_bool("isolate", isolate)
    idle_s = common.as_number("idle_s", idle_s)
    grids = _grids(quant, prune, response_quant, response_prune)
    section = _finetune_section(n_tickets, noise, tickets_path, text_column, label_column, response_column,
                                train_repeats, classifier, generator, n_generate, output_tokens,
                                generate_batch_size)
    names = {**DEFAULT_MODELS, **{k: str(v) for k, v in _tasks_mapping("models", models).items()}}
    layers = {t: common.as_int(f"model_layers[{t}]", v) for t, v in _tasks_mapping("model_layers", model_layers).items()}
    windows = {"root_cause": sweeps.repeat_policy(repeats),
               "response": sweeps.repeat_policy(repeats if response_repeats is None else response_repeats)}
    seed = common.as_int("seed", seed, minimum=0)
    configs = {task: sweep_config(task, grids[task][0], grids[task][1], windows[task], section, names[task],
                                  layers.get(task), device, seed, float(idle_s), isolate) for task in task_list}
    sweeps.check_configs(list(configs.values()))   # options, tickets file, models, axes
    from nrg.sweep.config import parse_config

    options = parse_config(next(iter(configs.values()))).settings.options
    return {"configs": configs, "tasks": task_list, "seed": seed, "options": options,
            "tickets_path": options["tickets_path"], "w": common.as_fraction("w", w),
            "metrics": {**{t: METRICS[t][0] for t in TASKS}, **_tasks_mapping("metrics", metrics, METRICS)},
            "threads": None if threads is None else common.as_int("threads", threads),
            "alpha": common.as_fraction("alpha", alpha, 1e-6, 0.5), "device": device,
            "run_dir": common.run_dir(CHAPTER, run_dir),
            "reference": common.reference_runs(common.reference_root(reference_dir), CHAPTER),
            **impact}


# ------------------------------------------------------------------ the tickets


def tickets(params: Mapping[str, Any]) -> list[Any]:
    """The tickets the chapter trains on: the user's, or the synthetic ones of the parameters."""
    from nrg.tickets.data import load_tickets
    from nrg.tickets.options import FinetuneOptions

    return load_tickets(FinetuneOptions.from_dict(params["options"]), params["seed"])


def tickets_source(params: Mapping[str, Any]) -> str:
    """Where the tickets come from, in a sentence."""
    options = params["options"]
    if options["tickets_path"]:
        return f"Tickets from `{options['tickets_path']}`."
    return f"{options['n_tickets']} synthetic tickets, seed {params['seed']}, noise {options['noise']}."


def sample_tickets(params: Mapping[str, Any], n: int = 3) -> pd.DataFrame:
    """One ticket of each of the first ``n`` root causes: text, label and reference response."""
    from nrg.tickets.generator import to_frame

    frame = to_frame(tickets(params))
    picked = frame.drop_duplicates("label").head(n)
    return picked[["ticket_id", "label", "text", "response"]].reset_index(drop=True)


def class_counts(params: Mapping[str, Any]) -> pd.DataFrame:
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
        """A timer started now."""
        return cls(time.perf_counter(), _cpu_s())

    def elapsed(self) -> dict[str, float]:
        """Seconds since :meth:`start`: ``wall_s`` and ``cpu_s``."""
        return {"wall_s": time.perf_counter() - self.wall_start, "cpu_s": _cpu_s() - self.cpu_start}


def _cpu_s() -> float:
    import psutil

    times = psutil.Process().cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def running_time(timer: Timer, df: Any, params: Mapping[str, Any]) -> str:
    """The chapter's wall and CPU time and number of cells, in a sentence."""
    spent = timer.elapsed()
    return (f"This chapter ran in {spent['wall_s']:.0f} s of wall time and used {spent['cpu_s']:.0f} s of CPU "
            f"time (this process and its children), {df['cell_id'].nunique()} cells; cells already stored in "
            f"`{Path(params['run_dir']).name}/` are reused, not re-measured.")


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """``threads`` torch CPU threads here and in cell processes (``OMP_NUM_THREADS``); None: as is."""
    if threads is None:
        yield
        return
    import torch

    before, env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env


def measure(params: Mapping[str, Any], progress: bool = True) -> pd.DataFrame:
    """Fine-tune and evaluate every cell of every task (stored cells are reused); their rows.

    ``model`` is labelled with what differs from the published model (:mod:`nrg.book.labels`:
    layers, quantization, pruning) and ``params`` gives its parameter count; the
    published name stays in ``model_name``.
    """
    from nrg.book.labels import with_model_labels

    with torch_threads(params["threads"]):
        return with_model_labels(sweeps.measure(list(params["configs"].values()), Path(params["run_dir"]),
                                                progress=progress))


def load_reference(params: Mapping[str, Any]) -> dict[str, Any]:
    """Committed GPU runs of this chapter by GPU name (empty when there are none)."""
    from nrg.book.sweeps import load_reference as load

    return load(params["reference"])
