"""The measured path of a cell: inputs, warm-up, adaptive repeats, quality, rows.

Phases per repeat, all from ONE ``generate`` call of exactly ``output_tokens``
tokens (min = max new tokens): a streamer hook (:class:`FirstTokenSplit`) cuts
the ``generate`` window at the moment the first new token exists on the host
(after the device sync) with one reading of every meter, so ``prefill`` is
begin .. first token (TTFT) and ``decode`` is first token .. end. Both parts
come from the same run and the same readings: prefill + decode = generate
exactly, and neither can be negative (``phase_method = "one-pass-hook"``).
The hook also stamps every new token, which gives the inter-token latency
percentiles ``itl_p50_s``, ``itl_p90_s``, ``itl_p99_s`` (as ML.ENERGY and
vLLM's serving benchmarks report). Encoder-decoder models and batches work
alike: the first token is the batch's first decoder step. The former method
(prefill as a separate 1-token ``generate``, decode = generate - prefill from
two runs, which goes negative on a busy machine) survives only in
``benchmarks/bench_phases.py``, which compares the two. Token counts: prefill
counts the prompt tokens it processes, decode and generate the tokens they produce.

Each repeat is checked for interference (:mod:`nrg.sweep.interference`): a
flagged repeat keeps its rows, marked, and up to a cap is redone.

Apart from :mod:`nrg.sweep.schedule.cell` (process entry, failure handling) so the
benchmark can drive :func:`measure_repeat` -- exactly what the runner times --
on a model it loaded once.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from nrg.errors import ParameterError
from nrg.sweep.config import NO_TASK, Cell
from nrg.sweep.schedule.context import SweepContext, identity
from nrg.workloads.cells import (
    apply_transforms,
    enter_environments,
    observe,
    open_monitor,
    peak_memory_bytes_safe,
    per_token_sample,
    phase_row,
    reset_peak_memory,
)
from nrg.workloads.generation_check import check as check  # the workload's check hook (registry)
from nrg.workloads.phases import PHASE_METHOD, OnePass, itl_percentiles, measure_repeat

if TYPE_CHECKING:
    import torch

    from nrg.meters import Measurement
    from nrg.meters.protocols import Monitor
    from nrg.models import LoadedModel
    from nrg.tasks import Task


@dataclass
class GenerationInputs:
    """A loaded model and fixed inputs of exactly ``batch_size x input_tokens`` tokens."""

    loaded: LoadedModel
    inputs: dict[str, Any]
    output_tokens: int

    def generate(self, streamer: Any = None) -> torch.Tensor:
        """Exactly ``output_tokens`` new tokens; ``streamer`` sees every new token (a hook)."""
        extra = {} if streamer is None else {"streamer": streamer}
        return self.loaded.generate(self.inputs, self.output_tokens, **extra)


def task_input_ids(loaded: LoadedModel, task: Task, batch_size: int, input_tokens: int, seed: int) -> torch.Tensor:
    """Real text for real-weight models: one task item per row, fitted to exactly ``input_tokens``."""
    import torch

    items = task.items(None, seed=seed)
    rows = [task.prompt_ids(items[b % len(items)], loaded.tokenizer, input_tokens)
            for b in range(batch_size)]
    return torch.tensor(rows, dtype=torch.long)


def make_inputs(loaded: LoadedModel, cell: Cell, task: Task | None) -> GenerationInputs:
    """The cell's inputs: task prompts when the model has a tokenizer, else seeded random tokens."""
    import torch

    seed = cell.settings.seed
    if task is not None and loaded.tokenizer is not None:
        ids = task_input_ids(loaded, task, cell.batch_size, cell.input_tokens, seed).to(loaded.device)
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    else:
        inputs = loaded.synthetic_inputs(cell.batch_size, cell.input_tokens, seed=seed)
    return GenerationInputs(loaded, inputs, cell.output_tokens)


def run_quality(inputs: GenerationInputs, task: Task, cell: Cell, monitor: Monitor) -> tuple[Measurement, dict[str, float], int]:
    """Generate for ``quality_items`` task items with their own prompts and score them."""
    import torch

    loaded = inputs.loaded
    if loaded.tokenizer is None:
        raise ParameterError(f"model {loaded.name!r} has no tokenizer, so task {task.name!r} cannot be scored")
    items = task.items(None, seed=cell.settings.seed)[: cell.settings.quality_items]
    limit = max(loaded.max_context_tokens - cell.output_tokens, 1)
    predictions: list[str] = []
    produced = 0
    monitor.begin_window("quality")
    for item in items:
        ids = loaded.tokenizer(task.render(item, loaded.tokenizer), return_tensors="pt")["input_ids"]
        if ids.shape[1] > limit:  # too long for the context: the task shortens its passage
            ids = torch.tensor([task.prompt_ids(item, loaded.tokenizer, limit)], dtype=torch.long)
        ids = ids.to(loaded.device)
        with torch.inference_mode():
            out = loaded.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                        max_new_tokens=cell.output_tokens, do_sample=False,
                                        pad_token_id=loaded.pad_token_id())
        new = out[0] if loaded.is_encoder_decoder else out[0, ids.shape[1]:]
        produced += int(new.numel())
        predictions.append(cast(str, loaded.tokenizer.decode(new, skip_special_tokens=True)))   # one sequence: one str
    m = monitor.end_window("quality")
    return m, {k: float(v) for k, v in task.score(predictions, items).items()}, produced


def repeat_rows(one: OnePass, repeat: int, cell: Cell, bounds: Mapping[str, float],
                interference: bool = False) -> list[dict[str, Any]]:
    """The prefill, decode (when more than one token) and generate rows of one repeat."""
    b, n = cell.batch_size, cell.output_tokens
    rows = [phase_row(one.prefill, "prefill", repeat, b * cell.input_tokens, bounds["prefill"])]
    if n > 1:
        rows.append(phase_row(one.decode, "decode", repeat, b * (n - 1), bounds["decode"]))
    rows.append(phase_row(one.generate, "generate", repeat, b * n, bounds["generate"]))
    shared = {"ttft_s": one.prefill.elapsed_s,
              "tpot_s": one.decode.elapsed_s / (n - 1) if n > 1 else math.nan,
              **itl_percentiles(one.token_times_s),
              "phase_method": PHASE_METHOD, "interference": interference}
    for row in rows:
        row.update(shared)
    return rows


def roofline_for(loaded: LoadedModel, cell: Cell, context: SweepContext) -> tuple[dict[str, float], dict[str, Any]]:
    """Bounds per phase and the columns saying where the peaks came from."""
    from nrg.sweep import roofline

    nan = {"prefill": math.nan, "decode": math.nan, "generate": math.nan}
    if not cell.settings.roofline:
        return nan, {}
    if cell.settings.device != "cpu":
        from nrg.sweep.schedule.devices import cuda_peaks

        peaks = cuda_peaks(cell)  # summed over a sharded model's GPUs
    elif context.mem_bandwidth_bytes_per_s:
        from nrg.meters.hardware import cpu_cores

        peaks = roofline.cpu_peaks(context.mem_bandwidth_bytes_per_s, cell.dtype, cpu_cores())
    else:
        peaks = None
    if peaks is None:
        return nan, {"roofline_source": "unknown hardware: no peaks"}
    shape = roofline.model_shape(loaded.model, loaded.is_encoder_decoder)
    bounds = roofline.bounds_s(shape, peaks, cell.batch_size, cell.input_tokens, cell.output_tokens)
    return bounds, peaks.to_record()


def load_model(cell: Cell) -> LoadedModel:
    """The cell's model as its spec says (weights, dtype, device, depth)."""
    from nrg.models import load

    return load(cell.model.for_cell(cell.dtype, cell.settings.device, cell.settings.devices))


@dataclass
class PreparedCell:
    """A cell ready to measure: model loaded and transformed, inputs built, meters open, warmed up.

    Why a long-lived object: a blocked run order (:mod:`nrg.sweep.schedule.blocks`)
    asks for one repeat at a time, between which other cells run; loading and
    warm-up happen once, here, never inside a window. The axes' environments
    (a locked clock, a power limit) are entered once and left at :meth:`close`.
    """

    cell: Cell
    context: SweepContext
    loaded: LoadedModel
    task: Any | None
    inputs: GenerationInputs
    bounds: Mapping[str, float]
    columns: dict[str, Any]
    stack: ExitStack
    monitor: Monitor
    observers: list[Callable[[], dict[str, Any]]]
    repeats_done: int = 0
    retries: int = 0

    def measure(self, block: int | None = None, run_order: int | None = None
                ) -> tuple[list[dict[str, Any]], float | None]:
        """One repeat (redone while flagged for interference, up to the cell's cap); rows and sample."""
        cell, policy = self.cell, self.cell.settings.interference
        tokens = cell.batch_size * cell.output_tokens
        rows: list[dict[str, Any]] = []
        observers = self.observers
        while True:
            one = measure_repeat(self.inputs, self.monitor).with_idle(self.context.idle_power_w)
            flagged = policy.flags(one.generate)
            rows.extend(repeat_rows(one, self.repeats_done, cell, self.bounds, flagged))
            self.repeats_done += 1
            if flagged and self.retries < policy.max_retries:
                self.retries += 1          # kept and marked, left out of the samples, redone
                continue
            break
        observed = observe(observers)
        order = {"block": block, "run_order": run_order}
        return [{**row, **observed, **order} for row in rows], per_token_sample(one.generate, tokens)

    def finish(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Quality (real weights with a task) and the columns every row of the cell carries."""
        cell, task = self.cell, self.task
        extra: list[dict[str, Any]] = []
        quality_cols: dict[str, float] = {}
        if task is not None and not isinstance(task, _LabelOnly) and cell.settings.quality_items > 0:
            m, quality_cols, produced = run_quality(self.inputs, task, cell, self.monitor)
            observed = observe(self.observers)
            extra.append({**phase_row(m.with_idle(self.context.idle_power_w), "inference", 0, produced, math.nan),
                          "interference": cell.settings.interference.flags(m), **observed})
        common = {
            **identity(cell, self.context), "weights": self.loaded.weights, "n_params": self.loaded.n_params,
            "dataset": None if task is None else task.dataset, "ci_rel_target": cell.settings.repeats.ci_target,
            "interference_retries": self.retries, "peak_mem_bytes": peak_memory_bytes_safe(cell.settings.device),
            "load_time_s": self.loaded.load_time_s, **self.columns, **quality_cols,
        }
        return common, extra

    def close(self) -> None:
        """Close the meters (and release the model with this object)."""
        self.stack.close()


def prepare_cell(cell: Cell, context: SweepContext,
                 monitor_options: Mapping[str, Any] | None = None) -> PreparedCell:
    """Load, transform, build inputs, open the meters and warm up (under the cell's settings)."""
    loaded = load_model(cell)
    loaded, transform_cols = apply_transforms(loaded, cell)
    task: Task | _LabelOnly | None = _task_for(cell)
    if loaded.weights != "real" or loaded.tokenizer is None:
        task = None if task is None else _LabelOnly(task.dataset)  # systems run: synthetic ids
    inputs = make_inputs(loaded, cell, task if not isinstance(task, _LabelOnly) else None)
    bounds, roof_cols = roofline_for(loaded, cell, context)
    reset_peak_memory(cell.settings.device)
    stack = ExitStack()
    try:
        monitor = stack.enter_context(open_monitor(cell, monitor_options))
        observers = enter_environments(stack, cell)   # held for the cell's life, left at close()
        for _ in range(cell.settings.warmup):
            inputs.generate()
    except BaseException:
        stack.close()
        raise
    return PreparedCell(cell, context, loaded, task, inputs, bounds, {**roof_cols, **transform_cols},
                        stack, monitor, observers)


@dataclass
class GenerationWorker:
    """The generation workload's :class:`~nrg.workloads.protocol.Worker`: a :class:`PreparedCell` on request."""

    cell: Cell
    context: SweepContext
    monitor_options: Mapping[str, Any] | None = None
    prepared: PreparedCell | None = None
    footprint: dict[str, float] = field(default_factory=dict)

    def prepare(self, next_repeat: int = 0, retries: int = 0, done: int = 0) -> None:
        """Load, transform and warm up (:func:`prepare_cell`); rows continue after ``next_repeat``."""
        prepared = prepare_cell(self.cell, self.context, self.monitor_options)
        prepared.repeats_done, prepared.retries = int(next_repeat), int(retries)
        self.prepared = prepared
        self.footprint = {"used_bytes": float(prepared.loaded.n_params * prepared.loaded.spec.dtype_bytes)}

    def repeat(self, block: int, run_order: int | None) -> tuple[list[dict[str, Any]], float | None]:
        """One measured repeat (redone while flagged, up to the cap)."""
        assert self.prepared is not None, "prepare() first"
        return self.prepared.measure(block, run_order)

    def finish(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Common columns and quality rows."""
        assert self.prepared is not None, "prepare() first"
        return self.prepared.finish()

    def close(self) -> None:
        """Release the model and the meters."""
        if self.prepared is not None:
            self.prepared.close()
            self.prepared = None


def _task_for(cell: Cell) -> Task | None:
    """The cell's task object (None for systems runs without a task)."""
    if cell.task.name == NO_TASK:
        return None
    from nrg.tasks import get_task

    return get_task(cell.task.name, cell.task.dataset)


@dataclass(frozen=True)
class _LabelOnly:
    """A task that only labels rows: random weights have no tokenizer to render prompts with."""

    dataset: str

