"""Fine-tuning + inference on fault tickets: the ``finetune`` workload of the sweep runner (chapter 4).

The runner does for these cells what it does for every cell -- checks before
any work, one worker per cell (:class:`FinetuneWorker`, the
:class:`~nrg.workloads.protocol.Worker` contract), randomized blocks,
``cell_timeout_s``, failure rows, ``retry_failed``, resume, provenance, the
idle baseline -- and one cell (a model, a task ``root_cause`` or
``response``, and a value of each axis) is:

1. ``prepare``: load the task's model (``root_cause``: a sequence classifier with one
   label per root cause; ``response``: a causal LM) and prune it through the
   ``prune`` axis (float weights; sparse kernels wait until after training);
2. each runner ``repeat`` is train repeat k (seed + k; ``train_repeats`` of
   them, interleaved with other cells' in blocked order): quantize a copy through the ``quant`` axis
   and fine-tune LoRA adapters on the compressed, frozen base (QLoRA-style for
   8/4-bit) in one ``finetune`` window. Where LoRA cannot wrap the compressed
   layers (torch's dynamic int8) the finetune row is ``unsupported`` with the
   reason, and inference runs the float-tuned model (trained, or read from the
   run's cache: :mod:`nrg.tickets.float_tuned`, where the sibling cell
   without quantization put it if it ran first -- blocked order decides),
   merged and quantized afterwards (``finetune_path``, ``float_tuned_from``);
3. ``inference``: predict the held-out tickets (accuracy, macro-F1) or write
   their responses (ROUGE-L, BLEU) -- ``warmup`` unmeasured passes, then
   windows until the sweep's ``repeats`` policy is met (adaptive on energy per
   token, :mod:`nrg.sweep.repeats`). On CUDA a 2:4 model runs semi-structured
   sparse kernels (``kernel`` column).

A quantization the device cannot run makes the whole cell ``unsupported``;
any other exception fails it -- both recorded by the runner's failure row.
``repeat`` is unique per phase within a cell, ``train_repeat`` says which
tuned model a row belongs to and ``window`` which of its inference windows.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError, check_choice
from nrg.tickets.data import TaskData, dataset_name, task_data
from nrg.tickets.float_tuned import FloatCache, cache_key, merged_float
from nrg.tickets.options import KIND, TASKS, UNUSED_KEYS, FinetuneOptions, parse_options, task_options

if TYPE_CHECKING:
    import pandas as pd
    from peft import PeftModel

    from nrg.meters.protocols import Monitor
    from nrg.models import ModelSpec
    from nrg.sweep.config import Cell, SweepConfig
    from nrg.sweep.repeats import RepeatPolicy
    from nrg.sweep.schedule.context import SweepContext
    from nrg.tickets.finetune import PhaseResult, TrainSettings

__all__ = ["TASKS", "UNUSED_KEYS", "FinetuneWorker", "check", "factors", "parse_options", "precision",
           "repeat_policy", "task_options"]

FLOAT_QUANTS = ("none", "fp32")   # quantizations whose LoRA-tuned model is the float-tuned one
QUALITY_COLUMNS = ("accuracy", "macro_f1", "rouge_l", "bleu")
LORA_ERRORS = (ValueError, TypeError, NotImplementedError, RuntimeError)   # what peft raises


def model_spec(entry: ModelSpec, task: str, dtype: str, device: str, num_labels: int | None) -> ModelSpec:
    """The model of a cell: a classifier head for the root cause, a causal LM for the response."""
    from dataclasses import replace

    overrides = dict(entry.overrides)
    if task == "root_cause" and num_labels:
        overrides["num_labels"] = num_labels
    head = "sequence-classification" if task == "root_cause" else "causal-lm"
    return replace(entry.for_cell(dtype, device), overrides=tuple(overrides.items()), head=head)


def check(cfg: SweepConfig) -> None:
    """Tasks, tickets and models of a finetune sweep, before any work or file write."""
    from nrg.models import build, check_device_support, plan

    options = FinetuneOptions.from_dict(cfg.settings.options)
    for t in cfg.tasks:
        check_choice("tasks", t.name, TASKS)
        if t.dataset is not None:
            raise ParameterError(f"tasks[{t.name}].dataset is not used by workload finetune; "
                                 "give finetune.tickets_path")
    for t in cfg.tasks:
        data = task_data(options, t.name, cfg.settings.seed)   # a missing column fails here
        for entry in cfg.models:
            for dtype in cfg.dtypes:
                spec = model_spec(entry, t.name, dtype, cfg.settings.device, len(data.labels) or None)
                check_device_support(spec)
                planned = plan(spec)
                if planned.weights != "real":
                    raise ParameterError(
                        f"models: {entry.name!r} has no real weights here (weights={entry.weights!r}); "
                        "fine-tuning needs real weights and their tokenizer")
                if t.name == "response" and planned.config.model_type in build.ENCODER_ONLY_TYPES:
                    raise ParameterError(f"models: {entry.name!r} is encoder-only and cannot write "
                                         "responses; choose a causal LM for task 'response'")
                build.check_fits(spec, planned.n_params)


def factors(cell: Cell) -> dict[str, Any]:
    """The cell's training batch and sequence length, generated tokens and data, as factor columns."""
    if cell.task.name not in TASKS:
        return {}
    options = FinetuneOptions.from_dict(cell.settings.options)
    train = options.train(cell.task.name)
    return {"batch_size": train.batch_size, "input_tokens": train.max_len,
            "output_tokens": options.output_tokens if cell.task.name == "response" else None,
            "dataset": dataset_name(options, cell.settings.seed)}


def _axis(cell: Cell, name: str) -> str:
    return str(dict(cell.axes).get(name, "none"))


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def repeat_policy(cell: Cell) -> RepeatPolicy:
    """One runner repeat per tuned model: exactly ``train_repeats`` (inference windows follow the sweep's policy)."""
    from nrg.sweep.repeats import RepeatPolicy

    n = FinetuneOptions.from_dict(cell.settings.options).train_repeats
    return RepeatPolicy(min_n=n, max_n=n, ci_rel=None)


def precision(cell: Cell, frame: pd.DataFrame) -> None:
    """``repeats_n`` and ``ci_rel_halfwidth`` per phase, over its ok rows' energy."""
    from nrg.sweep.repeats import ci_rel_halfwidth

    frame["repeats_n"], frame["ci_rel_halfwidth"] = 0, math.nan
    if "phase" not in frame:
        return
    for phase, part in frame[frame["status"] == "ok"].groupby("phase"):
        frame.loc[frame["phase"] == phase, "repeats_n"] = len(part)
        frame.loc[frame["phase"] == phase, "ci_rel_halfwidth"] = ci_rel_halfwidth(part["energy_j"].tolist())


@dataclass
class FinetuneWorker:
    """The finetune workload's :class:`~nrg.workloads.protocol.Worker`: one repeat is one tuned model.

    ``prepare`` loads and prunes the base model once and opens the meters;
    repeat ``k`` (the runner's k-th) quantizes a copy, fine-tunes it (seed +
    k) and runs its inference windows, so tuned models of different cells can
    be interleaved in randomized blocks like generation repeats.
    """

    cell: Cell
    context: SweepContext
    monitor_options: Mapping[str, Any] | None = None
    footprint: dict[str, float] = field(default_factory=dict)
    _job: _Job | None = None
    _base: Any = None
    _columns: dict[str, Any] = field(default_factory=dict)
    _stack: ExitStack | None = None
    _monitor: Monitor | None = None
    _observers: list[Any] = field(default_factory=list)

    def prepare(self, next_repeat: int = 0, retries: int = 0, done: int = 0) -> None:
        """Load the task's model and prune it; open the meters and enter the axes' environments.

        ``done`` tuned models were measured before (kept repeats): the next is
        model ``done`` and its rows continue the per-phase ``repeat`` numbers.
        """
        from nrg.compress.quantization import support
        from nrg.models import load
        from nrg.tickets.finetune import quiet
        from nrg.workloads.cells import apply_transforms, enter_environments, open_monitor, reset_peak_memory

        cell = self.cell
        options = FinetuneOptions.from_dict(cell.settings.options)
        data = task_data(options, cell.task.name, cell.settings.seed)
        quant, device = _axis(cell, "quant"), cell.settings.device
        reason = support(quant, "cuda" if device.startswith("cuda") else "cpu")
        if reason:
            raise NotImplementedError(f"quant={quant!r}: {reason}")
        with quiet():
            base = load(model_spec(cell.model, cell.task.name, cell.dtype, device, len(data.labels) or None))
            pruned, self._columns = apply_transforms(base, cell, only=("prune",),
                                                     options={"prune": {"sparse_kernels": False}})
        reset_peak_memory(device)
        self._base, self.footprint = base, {"used_bytes": float(base.n_params * base.spec.dtype_bytes)}
        self._job = _Job(cell, self.context, options, data, pruned, FloatCache.for_run(self.context.run_dir))
        if done:
            self._job.repeats = {"finetune": int(done), "inference": int(next_repeat)}
        self._job.next_model = int(done)
        self._stack = ExitStack()
        self._monitor = self._stack.enter_context(open_monitor(cell, self.monitor_options))
        self._observers = enter_environments(self._stack, cell)

    def repeat(self, block: int, run_order: int | None) -> tuple[list[dict[str, Any]], float | None]:
        """Tune the next model and run its inference windows; the rows and their mean energy per token."""
        from nrg.tickets.finetune import quiet

        assert self._job is not None and self._monitor is not None, "prepare() first"
        k = self._job.next_model
        with quiet():
            rows = self._job.tuned_model_rows(self._monitor, k)
        self._job.next_model += 1
        samples = [r["energy_per_token_j"] for r in rows if r["phase"] == "inference" and r["status"] == "ok"]
        finite = [float(x) for x in samples if math.isfinite(float(x))]
        # blocked order: where the tuned model fell in the sweep (run whole, rows stay as they were)
        order = {} if run_order is None else {"block": block, "run_order": run_order}
        return [{**row, **order} for row in rows], (sum(finite) / len(finite) if finite else None)

    def finish(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The columns every row carries: identity, the model, the prune columns, what the axes held, memory."""
        from nrg.sweep.schedule.context import identity
        from nrg.workloads.cells import observe, peak_memory_bytes_safe

        base = self._base
        common = {**identity(self.cell, self.context), "weights": base.weights, "n_params": base.n_params,
                  "load_time_s": base.load_time_s, **self._columns, **observe(self._observers),
                  "peak_mem_bytes": peak_memory_bytes_safe(self.cell.settings.device)}
        return common, []

    def close(self) -> None:
        """Close the meters, leave the environments and drop the models."""
        if self._stack is not None:
            self._stack.close()
        self._stack, self._monitor, self._job, self._base = None, None, None, None


@dataclass
class _Job:
    """One cell's fine-tunings and inference windows, on its pruned model."""

    cell: Cell
    context: SweepContext
    options: FinetuneOptions
    data: TaskData
    pruned: Any                      # the LoadedModel after the prune axis (float weights)
    cache: FloatCache
    repeats: dict[str, int] = field(default_factory=dict)   # next ``repeat`` per phase
    next_model: int = 0                                      # the next tuned model's ``train_repeat``

    @property
    def task(self) -> str:
        return self.cell.task.name

    def settings(self, k: int) -> TrainSettings:
        """The task's training settings for train repeat ``k`` (seed + k)."""
        return dataclasses.replace(self.options.train(self.task), seed=self.cell.settings.seed + k)

    def quantized(self, module: Any) -> tuple[Any, dict[str, Any]]:
        """A copy of ``module`` through the ``quant`` axis (sparse kernels deferred); its columns."""
        from nrg.workloads.cells import apply_transforms

        loaded = dataclasses.replace(self.pruned, model=copy.deepcopy(module))
        loaded, columns = apply_transforms(loaded, self.cell, only=("quant",),
                                           options={"quant": {"sparse_kernels": False}})
        return loaded.model, columns

    def tuned_model_rows(self, monitor: Monitor, k: int) -> list[dict[str, Any]]:
        """Fine-tune model ``k`` (or say why LoRA cannot) and evaluate it; its rows."""
        settings = self.settings(k)
        model, columns = self.quantized(self.pruned.model)
        rows: list[dict[str, Any]] = []
        try:
            model = _lora(model, self.task, settings)
        except LORA_ERRORS as exc:
            reason = f"LoRA cannot wrap {_axis(self.cell, 'quant')} layers: {_short(exc)}"
            rows.append({**self._next("finetune", k), "status": "unsupported", "error": reason})
            model, columns = self.float_then_quantize(monitor, k, settings)
        else:
            rows.append(self.row(_finetune(self.task, model, self.pruned.tokenizer, self.data, settings,
                                           monitor), k))
            columns["finetune_path"] = "lora-on-compressed"
            if _axis(self.cell, "quant") in FLOAT_QUANTS:
                self.cache.save(cache_key(self.cell, k), model, self._meta(k))
            if _axis(self.cell, "prune") == "2:4":
                from nrg.compress.pruning import to_semi_structured

                columns["kernel"], columns["prune_note"] = to_semi_structured(model)
        inference = self.inference_rows(model, monitor, k, settings)
        quality = {key: inference[0][key] for key in QUALITY_COLUMNS if inference and key in inference[0]}
        for row in rows:   # the finetune row carries the quality its tuning reached
            if row["status"] == "ok":
                row.update(quality)
        return [{**columns, **row} for row in rows + inference]

    def float_then_quantize(self, monitor: Monitor, k: int, settings: TrainSettings) -> tuple[Any, dict[str, Any]]:
        """LoRA in float on the pruned model (cached or trained), merged, then quantized."""
        key = cache_key(self.cell, k)
        float_model = _lora(copy.deepcopy(self.pruned.model), self.task, settings)
        source = "cache" if self.cache.load(key, float_model) else "trained"
        if source == "trained":   # measured in a window, not recorded: not this cell's method
            _finetune(self.task, float_model, self.pruned.tokenizer, self.data, settings, monitor)
            self.cache.save(key, float_model, self._meta(k))
        prune = _axis(self.cell, "prune")
        model, columns = self.quantized(merged_float(float_model, self.pruned.model, prune))
        columns.update({"finetune_path": "lora-float-then-quantize", "float_tuned_from": source})
        if prune == "2:4":
            columns["kernel"] = "dense"
            columns["prune_note"] = f"{_axis(self.cell, 'quant')} kernels are dense: they run the zeros"
        return model, columns

    def inference_rows(self, model: Any, monitor: Monitor, k: int, settings: TrainSettings) -> list[dict[str, Any]]:
        """Warm-up, then inference windows until the sweep's repeat policy is met (its one rule, capped)."""
        from nrg.workloads.cells import per_token_sample

        for _ in range(self.cell.settings.warmup):
            self.evaluate(model, settings, monitor)
        rows: list[dict[str, Any]] = []
        samples: list[float] = []
        while not self.cell.settings.repeats.done(samples, len(rows)):
            result = self.evaluate(model, settings, monitor)
            rows.append(self.row(result, k, window=len(rows)))
            samples.append(per_token_sample(result.measurement, max(result.tokens, 1)))
        return rows

    def evaluate(self, model: Any, settings: TrainSettings, monitor: Monitor) -> PhaseResult:
        """One inference window over the held-out tickets."""
        from nrg.tickets import finetune

        tokenizer, data = self.pruned.tokenizer, self.data
        if self.task == "root_cause":
            return finetune.evaluate_classifier(model, tokenizer, data.eval_texts, data.eval_targets,
                                                settings, monitor)
        batch = self.options.generate_batch_size or settings.batch_size
        return finetune.evaluate_generator(model, tokenizer, data.eval_texts, data.eval_targets,
                                           self.options.output_tokens, batch, monitor)

    def row(self, result: PhaseResult, k: int, window: int = 0) -> dict[str, Any]:
        """A measured phase as a row: energy with the sweep's idle baseline, tokens, quality."""
        from nrg.workloads.cells import phase_row

        measured = result.measurement.with_idle(self.context.idle_power_w)
        ids = self._next(result.phase, k, window)
        return {**phase_row(measured, result.phase, ids["repeat"], result.tokens, math.nan), **ids,
                "status": "ok", "error": None, **result.metrics, **result.extra,
                "interference": self.cell.settings.interference.flags(result.measurement)}   # as sweeps flag

    def _next(self, phase: str, k: int, window: int = 0) -> dict[str, Any]:
        repeat = self.repeats.get(phase, 0)
        self.repeats[phase] = repeat + 1
        return {"phase": phase, "repeat": repeat, "train_repeat": k, "window": window}

    def _meta(self, k: int) -> dict[str, Any]:
        return {"model": self.cell.model.entry_dict(), "task": self.task, "prune": _axis(self.cell, "prune"),
                "train_repeat": k, "settings": dataclasses.asdict(self.settings(k)), "cell_id": self.cell.cell_id}


def _lora(model: Any, task: str, settings: TrainSettings) -> PeftModel:
    """LoRA adapters, initialised from the repeat's seed (so a cell's numbers reproduce)."""
    import torch

    from nrg.tickets.finetune import attach_lora

    torch.manual_seed(settings.seed)
    return attach_lora(model, KIND[task], settings)


def _finetune(task: str, model: Any, tokenizer: Any, data: TaskData, settings: TrainSettings,
              monitor: Monitor) -> PhaseResult:
    from nrg.tickets import finetune

    train = finetune.finetune_classifier if task == "root_cause" else finetune.finetune_generator
    return train(model, tokenizer, data.train_texts, data.train_targets, settings, monitor)
