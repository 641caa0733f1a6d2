"""Driver of chapter 1: models x tasks -- energy, latency, throughput, power, memory, quality.

The paper's tasks differ above all in their shapes: question answering reads a
long context and writes a short answer, summarisation reads a long document
and writes a medium summary, generation reads a short prompt and writes a lot.
Each task therefore runs at its own (input, output) lengths (``task_lengths``),
with the task's real text for real-weight models (scored for quality) and
synthetic token ids of the same lengths for random-weight models.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.book import carbon, common, sweeps
from nrg.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd

CHAPTER = "01_model_comparison"
TASKS: tuple[str, ...] = ("generation", "qa", "summarization")
DEFAULT_TASK_LENGTHS: dict[str, list[int]] = {
    "generation": [64, 16], "qa": [128, 4], "summarization": [192, 16]}
MEASURES: tuple[str, ...] = ("energy_per_token_j", "ttft_s", "tpot_s", "tokens_per_s",
                             "avg_power_w", "peak_mem_bytes")


def _task_lengths(value: Any, tasks: list[str]) -> dict[str, tuple[int, int]]:
    lengths = common.as_mapping("task_lengths", DEFAULT_TASK_LENGTHS if value is None else value)
    missing = [t for t in tasks if t not in lengths]
    if missing:
        raise ParameterError(f"task_lengths has no entry for task(s) {missing}; give "
                             "{task: [input_tokens, output_tokens]} for every task")
    out = {}
    for task in tasks:
        pair = common.as_list(f"task_lengths[{task}]", lengths[task])
        if len(pair) != 2:
            raise ParameterError(f"task_lengths[{task}]={pair!r} is not valid; give [input_tokens, output_tokens]")
        out[task] = (common.as_int(f"task_lengths[{task}] input", pair[0]),
                     common.as_int(f"task_lengths[{task}] output", pair[1]))
    return out


def check(models: Any = ("smollm2-135m", "gpt2", {"name": "t5-3b", "layers": 2}), weights: str = "auto", layers: int | None = None,
          tasks: Any = TASKS, task_lengths: Any = None, batch_size: int = 1,
          dtype: str = "float32", device: str = "cpu", repeats: Any = None, warmup: int = 1,
          idle_s: float = 2.0, quality_items: int = 3, isolate: bool = True,
          executor: str = "local", ray_address: str | None = None,
          run_dir: str | None = None, reference_dir: str | None = None, alpha: float = 0.05,
          region: str = carbon.DEFAULT_REGION, price_per_kwh: float | None = None,
          pue: float = carbon.DEFAULT_PUE, **unknown: Any) -> dict[str, Any]:
    """Checked parameters plus the sweep configs they mean; raises before any work."""
    if unknown:
        raise ParameterError(f"unknown parameter(s) {sorted(unknown)}")
    impact = carbon.check_params(region, price_per_kwh, pue)   # region, price_per_kwh, pue
    task_list = [str(t) for t in common.as_list("tasks", list(tasks) if isinstance(tasks, tuple) else tasks)]
    common.check_choices("tasks", task_list, TASKS)
    lengths = _task_lengths(task_lengths, task_list)
    entries = sweeps.model_entries(list(models) if isinstance(models, tuple) else models, weights, layers)
    alpha = common.as_fraction("alpha", alpha, 1e-6, 0.5)
    configs = [{
        "name": f"{CHAPTER}-{task}", "chapter": CHAPTER, "models": entries,
        "tasks": [task], "batch_sizes": [common.as_int("batch_size", batch_size)],
        "input_tokens": [lengths[task][0]], "output_tokens": [lengths[task][1]],
        "dtypes": [dtype], "device": common.as_device("device", device),
        "repeats": sweeps.repeat_policy(repeats or {"min": 3, "max": 5, "ci_rel": 0.05}),
        "warmup": common.as_int("warmup", warmup, minimum=0), "idle_s": common.as_number("idle_s", idle_s),
        "isolate": common.as_bool("isolate", isolate),
        "executor": executor, "ray_address": ray_address,
        "quality": {"items": common.as_int("quality_items", quality_items, minimum=0)},
    } for task in task_list]
    sweeps.check_configs(configs)
    return {"configs": configs, "run_dir": common.run_dir(CHAPTER, run_dir),
            "reference": common.reference_runs(common.reference_root(reference_dir), CHAPTER),
            "alpha": alpha, "tasks": task_list, **impact}


def measure(params: dict[str, Any], progress: bool = True) -> pd.DataFrame:
    """Run (or reuse) every cell of the chapter; the rows of exactly these cells.

    ``model`` is labelled with what differs from the published model (:mod:`nrg.book.labels`);
    the published name stays in ``model_name``.
    """
    from nrg.book.labels import with_model_labels

    return with_model_labels(sweeps.measure(params["configs"], Path(params["run_dir"]), progress=progress))


def generate_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Successful rows of the full generation phase: one per repeat per cell."""
    return df[(df["phase"] == "generate") & (df["status"] == "ok")].copy()


def quality_table(df: pd.DataFrame) -> pd.DataFrame:
    """Task scores of real-weight models (the ``inference`` rows), one row per model x task."""
    import pandas as pd

    rows = df[(df["phase"] == "inference") & (df["status"] == "ok")]
    metrics = [c for c in ("exact_match", "f1", "rouge_1", "rouge_2", "rouge_l") if c in rows.columns]
    if rows.empty or not metrics:
        return pd.DataFrame(columns=["model", "task", "dataset", "items", *metrics])
    out = rows[["model", "task", "dataset", "tokens", *metrics]].rename(columns={"tokens": "generated_tokens"})
    return out.reset_index(drop=True)


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """Cells that failed, with their error: shown, never dropped silently."""
    cols = [c for c in ("model", "task", "input_tokens", "output_tokens", "status", "error") if c in df.columns]
    return df[df["status"] != "ok"][cols].drop_duplicates().reset_index(drop=True)
