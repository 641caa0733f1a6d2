"""One cell of the ticket study: compress a copy of the model, fine-tune it, evaluate it.

Why failures are rows, not exceptions: a sweep over quantization x pruning
meets combinations the device or the libraries cannot run (LoRA cannot wrap
torch's dynamic int8 layers; bitsandbytes may be missing). Each phase that
cannot run gets a row with ``status`` "unsupported" or "failed" and the
reason in ``error``; the other cells go on.
"""
from __future__ import annotations

import copy
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from nrg.ticket_study import StudyConfig, TaskData

KIND = {"root_cause": "classifier", "response": "generator"}


def _factors(task: str, model: Any, config: StudyConfig, quant: str, settings: Any) -> dict[str, Any]:
    return {"model": config.model_names.get(task, type(model).__name__), "task": task,
            "n_params": sum(p.numel() for p in model.parameters()), "dtype": "float32",
            "batch_size": settings.batch_size, "input_tokens": settings.max_len,
            "output_tokens": config.max_new_tokens if task == "response" else 0,
            "device": config.device, "w": config.w, "quant_requested": quant}


def _status_row(phase: str, status: str, error: str) -> dict[str, Any]:
    return {"phase": phase, "status": status, "error": error}


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _peak_memory(device: str) -> int:
    from nrg.cell import peak_memory_bytes

    return peak_memory_bytes(device)


def _finetune(task: str, model: Any, tokenizer: Any, data: TaskData, config: StudyConfig,
              monitor: Any) -> Any:
    from nrg import finetune

    if task == "root_cause":
        return finetune.finetune_classifier(model, tokenizer, data.train_texts, data.train_targets,
                                            config.classifier, monitor)
    return finetune.finetune_generator(model, tokenizer, data.train_texts, data.train_targets,
                                       config.generator, monitor)


def _evaluate(task: str, model: Any, tokenizer: Any, data: TaskData, config: StudyConfig,
              monitor: Any) -> Any:
    from nrg import finetune

    if task == "root_cause":
        return finetune.evaluate_classifier(model, tokenizer, data.eval_texts, data.eval_targets,
                                            config.classifier, monitor)
    return finetune.evaluate_generator(model, tokenizer, data.eval_texts, data.eval_targets,
                                       config.max_new_tokens, config.generator.batch_size, monitor)


def _tuned_after_quantization(task: str, pruned: Any, quant: str, tokenizer: Any, data: TaskData,
                              config: StudyConfig, monitor: Any) -> tuple[Any, dict[str, Any]]:
    """LoRA in float on the pruned model, merged, then quantized (post-training quantization)."""
    from nrg.compress import quantize
    from nrg.finetune import attach_lora

    settings = config.classifier if task == "root_cause" else config.generator
    model = attach_lora(pruned, KIND[task], settings)
    _finetune(task, model, tokenizer, data, config, monitor)  # not recorded: not this cell's method
    merged = model.merge_and_unload()
    return quantize(merged, quant, sparse_kernels=False)


def measure_cell(task: str, base: Any, tokenizer: Any, data: TaskData, quant: str, prune_value: str,
                 config: StudyConfig, monitor: Any) -> pd.DataFrame:
    """Rows for the ``finetune`` and ``inference`` phases of one (task, quant, prune) cell."""
    import pandas as pd

    from nrg.compress import prune, quantize
    from nrg.compress.pruning import to_semi_structured
    from nrg.finetune import attach_lora

    settings = config.classifier if task == "root_cause" else config.generator
    factors = _factors(task, base, config, quant, settings)
    pruned, columns = prune(copy.deepcopy(base), prune_value, sparse_kernels=False)
    model, quant_columns = quantize(copy.deepcopy(pruned), quant, sparse_kernels=False)
    columns.update(quant_columns)
    rows: list[dict[str, Any]] = []
    if quant_columns["quant_status"] != "ok":
        reason = quant_columns["quant_reason"]
        rows = [_status_row(p, "unsupported", reason) for p in config.phases]
        return pd.DataFrame([{**factors, **columns, **r} for r in rows])
    try:
        model = attach_lora(model, KIND[task], settings)
        columns["finetune_path"] = "lora-on-compressed"
    except (ValueError, TypeError, NotImplementedError, RuntimeError) as exc:
        reason = f"LoRA cannot wrap {quant} layers: {_short(exc)}"
        if "finetune" in config.phases:
            rows.append(_status_row("finetune", "unsupported", reason))
        columns["finetune_path"] = "lora-float-then-quantize"
        try:
            model, _ = _tuned_after_quantization(task, pruned, quant, tokenizer, data, config, monitor)
        except Exception as exc2:  # noqa: BLE001 - recorded as the inference row's error
            rows.append(_status_row("inference", "failed", _short(exc2)))
            return pd.DataFrame([{**factors, **columns, **r} for r in rows])
        return _infer(task, model, tokenizer, data, config, monitor, factors, columns, rows)
    try:
        result = _finetune(task, model, tokenizer, data, config, monitor)
        if "finetune" in config.phases:
            rows.append({**_status_row("finetune", "ok", ""), **result.row(),
                         "peak_mem_bytes": _peak_memory(config.device)})
    except Exception as exc:  # noqa: BLE001 - a failed phase is a row, the sweep goes on
        rows += [_status_row(p, "failed", _short(exc)) for p in config.phases]
        traceback.print_exc()
        return pd.DataFrame([{**factors, **columns, **r} for r in rows])
    if prune_value == "2:4":
        columns["kernel"], note = to_semi_structured(model)
        columns["prune_note"] = note
    return _infer(task, model, tokenizer, data, config, monitor, factors, columns, rows)


def _infer(task: str, model: Any, tokenizer: Any, data: TaskData, config: StudyConfig, monitor: Any,
           factors: dict[str, Any], columns: dict[str, Any], rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    if "inference" in config.phases:
        try:
            result = _evaluate(task, model, tokenizer, data, config, monitor)
            rows.append({**_status_row("inference", "ok", ""), **result.row(),
                         "peak_mem_bytes": _peak_memory(config.device)})
        except Exception as exc:  # noqa: BLE001
            rows.append(_status_row("inference", "failed", _short(exc)))
            traceback.print_exc()
    # the finetune row carries the quality reached by that fine-tuning (measured at inference)
    quality = {k: v for r in rows if r["phase"] == "inference" for k, v in r.items()
               if k in ("accuracy", "macro_f1", "rouge_l", "bleu")}
    for row in rows:
        if row["phase"] == "finetune" and row["status"] == "ok":
            row.update(quality)
    return pd.DataFrame([{**factors, **columns, **r} for r in rows])
