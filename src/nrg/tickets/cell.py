"""One cell of the ticket study: compress a copy of the model, fine-tune it, evaluate it.

Why failures are rows, not exceptions: a sweep over quantization x pruning
meets combinations the device or the libraries cannot run (LoRA cannot wrap
torch's dynamic int8 layers; bitsandbytes may be missing). Each phase that
cannot run gets a row with ``status`` "unsupported" or "failed" and the
reason in ``error``; the other cells go on.

Replication: a cell is fine-tuned ``train_repeats`` times (seeds ``seed``,
``seed + 1``, ...) and every tuned model is evaluated in ``repeats`` separate
inference windows. The ``repeat`` column is unique per phase within a cell;
``train_repeat`` says which tuned model a row belongs to and ``window`` which
inference window. Quality is a property of a tuned model, so only
``train_repeats`` gives quality a replicate; inference windows replicate the
energy measurement.
"""
from __future__ import annotations

import copy
import dataclasses
import traceback
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from nrg.meters.protocols import Monitor
    from nrg.tickets.finetune import PhaseResult, TrainSettings
    from nrg.tickets.study import StudyConfig, TaskData

KIND = {"root_cause": "classifier", "response": "generator"}
FLOAT_QUANTS = ("none", "fp32")   # quantizations whose LoRA-tuned model equals the float-tuned one
QUALITY_COLUMNS = ("accuracy", "macro_f1", "rouge_l", "bleu")
FloatCache = MutableMapping[tuple[str, int], Any]   # (prune, train_repeat) -> merged float model


def _factors(task: str, model: Any, config: StudyConfig, quant: str, settings: Any) -> dict[str, Any]:
    name = config.model_names.get(task, type(model).__name__)
    layers = config.model_layers.get(task)
    return {"model": f"{name} ({layers} layers)" if layers else name, "layers": layers, "task": task,
            "n_params": sum(p.numel() for p in model.parameters()), "dtype": "float32",
            "batch_size": settings.batch_size, "input_tokens": settings.max_len,
            "output_tokens": config.max_new_tokens if task == "response" else 0,
            "device": config.device, "w": config.w, "quant_requested": quant}


def _status_row(phase: str, status: str, error: str, train_repeat: int = 0) -> dict[str, Any]:
    return {"phase": phase, "status": status, "error": error, "train_repeat": train_repeat,
            "window": 0, "repeat": train_repeat}


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _peak_memory(device: str) -> int:
    from nrg.sweep.generation import peak_memory_bytes

    return peak_memory_bytes(device)


def task_settings(task: str, config: StudyConfig, train_repeat: int = 0) -> TrainSettings:
    """The task's training settings; each train repeat shifts the seed by its index."""
    settings = config.classifier if task == "root_cause" else config.generator
    return dataclasses.replace(settings, seed=settings.seed + train_repeat)


def _finetune(task: str, model: Any, tokenizer: Any, data: TaskData, settings: TrainSettings,
              monitor: Monitor) -> PhaseResult:
    from nrg.tickets import finetune

    if task == "root_cause":
        return finetune.finetune_classifier(model, tokenizer, data.train_texts, data.train_targets,
                                            settings, monitor)
    return finetune.finetune_generator(model, tokenizer, data.train_texts, data.train_targets,
                                       settings, monitor)


def _evaluate(task: str, model: Any, tokenizer: Any, data: TaskData, config: StudyConfig,
              settings: TrainSettings, monitor: Monitor) -> PhaseResult:
    from nrg.tickets import finetune

    if task == "root_cause":
        return finetune.evaluate_classifier(model, tokenizer, data.eval_texts, data.eval_targets,
                                            settings, monitor)
    batch = config.generate_batch_size or settings.batch_size
    return finetune.evaluate_generator(model, tokenizer, data.eval_texts, data.eval_targets,
                                       config.max_new_tokens, batch, monitor)


def _lora(model: Any, task: str, settings: TrainSettings) -> Any:
    """LoRA adapters, initialised from the repeat's seed (so a cell's numbers reproduce)."""
    import torch

    from nrg.tickets.finetune import attach_lora

    torch.manual_seed(settings.seed)
    return attach_lora(model, KIND[task], settings)


def reapply_mask(merged: Any, pruned: Any) -> Any:
    """Zero in ``merged`` every weight that pruning zeroed in ``pruned``.

    Why: merging a LoRA update (dense, low rank) into pruned weights fills the
    zeros back in; a "2:4" or "unstructured" model must keep its pattern.
    """
    import torch

    from nrg.compress.layers import linear_layers

    with torch.no_grad():
        for name, module in linear_layers(pruned):
            target = merged.get_submodule(name)
            if target.weight.shape == module.weight.shape:
                target.weight.mul_((module.weight != 0).to(target.weight.dtype))
    return merged


def _merged_float(model: Any, pruned: Any, prune_value: str) -> Any:
    """A merged copy of a float LoRA model, with the pruning pattern kept."""
    merged = copy.deepcopy(model).merge_and_unload()
    return merged if prune_value == "none" else reapply_mask(merged, pruned)


def _tuned_after_quantization(task: str, pruned: Any, quant: str, prune_value: str, tokenizer: Any,
                              data: TaskData, settings: TrainSettings, monitor: Monitor,
                              cached: Any = None) -> Any:
    """LoRA in float on the pruned model, merged (pattern kept), then quantized (post-training).

    ``cached`` is the same float-tuned model from this cell's ``none`` sibling, when
    there is one: training it again would give the same weights (same seed, same data).
    """
    from nrg.compress import quantize

    if cached is None:
        model = _lora(copy.deepcopy(pruned), task, settings)
        _finetune(task, model, tokenizer, data, settings, monitor)  # not recorded: not this cell's method
        cached = _merged_float(model, pruned, prune_value)
    model, _ = quantize(copy.deepcopy(cached), quant, sparse_kernels=False)
    return model


def measure_cell(task: str, base: Any, tokenizer: Any, data: TaskData, quant: str, prune_value: str,
                 config: StudyConfig, monitor: Monitor, cache: FloatCache | None = None) -> pd.DataFrame:
    """Rows for the ``finetune`` and ``inference`` phases of one (task, quant, prune) cell.

    ``cache`` carries float-tuned models between the cells of one run (see
    :func:`_tuned_after_quantization`); ``None`` disables it.
    """
    import pandas as pd

    from nrg.compress import prune, quantize

    factors = {**_factors(task, base, config, quant, task_settings(task, config)), "prune": prune_value}
    pruned, columns = prune(copy.deepcopy(base), prune_value, sparse_kernels=False)
    _, quant_columns = quantize(copy.deepcopy(pruned), quant, sparse_kernels=False)
    columns.update(quant_columns)
    if quant_columns["quant_status"] != "ok":
        reason = quant_columns["quant_reason"]
        rows = [_status_row(p, "unsupported", reason) for p in config.phases]
        return pd.DataFrame([{**factors, **columns, **r} for r in rows])
    rows = []
    for k in range(config.train_repeats):
        rows += _one_model(task, pruned, tokenizer, data, quant, prune_value, config, monitor, k,
                           cache, columns)
    return with_precision(pd.DataFrame([{**factors, **columns, **r} for r in rows]))


def with_precision(frame: pd.DataFrame) -> pd.DataFrame:
    """``repeats_n`` and the relative 95% CI half-width of ``energy_j`` per phase of the cell."""
    from nrg.stats import t_halfwidth

    frame["repeats_n"], frame["ci_rel_halfwidth"] = 0, float("nan")
    for phase, part in frame[frame["status"] == "ok"].groupby("phase"):
        energy = part["energy_j"].astype(float)
        frame.loc[frame["phase"] == phase, "repeats_n"] = len(energy)
        if len(energy) > 1 and energy.mean() > 0:
            halfwidth = float(t_halfwidth(energy.std(), len(energy)))
            frame.loc[frame["phase"] == phase, "ci_rel_halfwidth"] = halfwidth / energy.mean()
    return frame


def _one_model(task: str, pruned: Any, tokenizer: Any, data: TaskData, quant: str, prune_value: str,
               config: StudyConfig, monitor: Monitor, k: int, cache: FloatCache | None,
               columns: dict[str, Any]) -> list[dict[str, Any]]:
    """Tune one model (train repeat ``k``) and evaluate it; its rows."""
    from nrg.compress import quantize

    settings = task_settings(task, config, k)
    model, _ = quantize(copy.deepcopy(pruned), quant, sparse_kernels=False)
    rows: list[dict[str, Any]] = []
    try:
        model = _lora(model, task, settings)
        columns["finetune_path"] = "lora-on-compressed"
    except (ValueError, TypeError, NotImplementedError, RuntimeError) as exc:
        reason = f"LoRA cannot wrap {quant} layers: {_short(exc)}"
        if "finetune" in config.phases:
            rows.append(_status_row("finetune", "unsupported", reason, k))
        columns["finetune_path"] = "lora-float-then-quantize"
        if prune_value == "2:4":
            columns["kernel"], columns["prune_note"] = "dense", f"{quant} kernels are dense: they run the zeros"
        cached = cache.get((prune_value, k)) if cache is not None else None
        try:
            model = _tuned_after_quantization(task, pruned, quant, prune_value, tokenizer, data, settings,
                                              monitor, cached)
        except Exception as exc2:  # noqa: BLE001 - recorded as the inference row's error
            return rows + [_status_row("inference", "failed", _short(exc2), k)]
        return _infer(task, model, tokenizer, data, config, settings, monitor, rows, k, columns)
    try:
        result = _finetune(task, model, tokenizer, data, settings, monitor)
        if "finetune" in config.phases:
            rows.append({**_status_row("finetune", "ok", "", k), **result.row(),
                         "peak_mem_bytes": _peak_memory(config.device)})
    except Exception as exc:  # noqa: BLE001 - a failed phase is a row, the sweep goes on
        traceback.print_exc()
        return rows + [_status_row(p, "failed", _short(exc), k) for p in config.phases]
    if cache is not None and quant in FLOAT_QUANTS:
        cache[(prune_value, k)] = _merged_float(model, pruned, prune_value)
    if prune_value == "2:4":
        from nrg.compress.pruning import to_semi_structured

        columns["kernel"], columns["prune_note"] = to_semi_structured(model)
    return _infer(task, model, tokenizer, data, config, settings, monitor, rows, k, columns)


def _infer(task: str, model: Any, tokenizer: Any, data: TaskData, config: StudyConfig,
           settings: TrainSettings, monitor: Monitor, rows: list[dict[str, Any]], k: int,
           columns: dict[str, Any]) -> list[dict[str, Any]]:
    """``repeats`` inference windows of one tuned model; quality copied onto its finetune row."""
    if "inference" in config.phases:
        for window in range(config.repeats):
            repeat = k * config.repeats + window
            try:
                result = _evaluate(task, model, tokenizer, data, config, settings, monitor)
            except Exception as exc:  # noqa: BLE001
                traceback.print_exc()
                rows.append({**_status_row("inference", "failed", _short(exc), k),
                             "window": window, "repeat": repeat})
                break
            rows.append({**_status_row("inference", "ok", "", k), **result.row(), "window": window,
                         "repeat": repeat, "peak_mem_bytes": _peak_memory(config.device)})
    # the finetune row carries the quality reached by that fine-tuning (measured at inference)
    quality = {key: v for r in rows if r["phase"] == "inference" and r["status"] == "ok"
               for key, v in r.items() if key in QUALITY_COLUMNS}
    for row in rows:
        if row["phase"] == "finetune" and row["status"] == "ok":
            row.update(quality)
    # columns such as ``kernel`` and ``finetune_path`` can differ between tuned models
    return [{**{key: columns[key] for key in ("kernel", "prune_note", "finetune_path") if key in columns},
             **r} for r in rows]
