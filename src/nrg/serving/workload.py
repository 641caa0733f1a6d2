"""``workload: serving`` of :mod:`nrg.sweep`: a real engine under load, energy per token with quality.

One cell is (model, dtype, task, output length) and measures every
concurrency level of ``serving.concurrency`` on **one** engine: starting an
engine costs a minute or more, so the levels are the cell's inner factor,
run in randomized blocks as the rest of the book runs its cells (each block
is one pass over the levels still repeating, in an order drawn from the seed;
rows carry ``block`` and ``run_order``; the sweep's ``repeats`` policy decides
when a level stops, on the steady-state energy per token). Per level and
block, two rows:

* ``phase = steady``: the steady-state window (saturated concurrency, before the
  drain; :mod:`nrg.serving.trace`), ML.ENERGY's figure;
* ``phase = run``: the whole trace, ramp and drain included.

``energy_per_request_j`` is *allocated*: the window's energy per token times the
mean output tokens of a request (requests overlap, so no request has its own
energy). Latencies are the clients' (TTFT from the send, ITL between streamed
tokens); ``batch_mean`` and ``kv_cache_usage_mean`` are the engine's gauges.
Quality scores every response of the level against the task's references.
"""
from __future__ import annotations

import math
import random
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError
from nrg.serving.options import UNUSED_KEYS, ServingOptions, engine_python, parse_options

if TYPE_CHECKING:
    import pandas as pd
    from transformers import PreTrainedTokenizerBase

    from nrg.meters import EnergyMonitor
    from nrg.serving.client import Client
    from nrg.serving.engine import Engine, EngineSpec
    from nrg.serving.prom import Sampler
    from nrg.serving.trace import Trace
    from nrg.sweep.config import Cell, SweepConfig
    from nrg.sweep.repeats import RepeatPolicy
    from nrg.sweep.schedule.context import SweepContext

__all__ = ["INTERLEAVE", "UNUSED_KEYS", "ServingWorker", "check", "factors", "parse_options", "precision",
           "repeat_policy"]

PATH = "/v1/completions"
ATTACHED_CPU = ("the engine runs outside nrg (serving.base_url): the CPU estimate covers nrg's client and "
                "DRAM only, not the engine's processes")


def _joined(warning: Any, note: str) -> str:
    return note if warning is None or (isinstance(warning, float) and math.isnan(warning)) else f"{warning}; {note}"


def check(cfg: SweepConfig) -> None:
    """The engine (its Python, or the server at ``base_url``) and the models, before any work."""
    from nrg.tasks import get_task

    options = ServingOptions.from_dict(cfg.settings.options)
    for t in cfg.tasks:
        get_task(t.name, t.dataset)            # an unknown task or dataset fails here
    if options.base_url is not None:
        served = _served_models(options.base_url)
        for entry in cfg.models:
            if entry.name not in served:
                raise ParameterError(f"models: {entry.name!r} is not served at serving.base_url="
                                     f"{options.base_url!r}; it serves: {', '.join(served) or 'nothing'}")
        return
    python = engine_python(options)
    from nrg.serving.engine import EngineError, engine_version

    try:
        engine_version(str(python))
    except (EngineError, OSError) as exc:
        raise ParameterError(f"serving.engine_python={str(python)!r} cannot run the engine: {exc}") from None
    for entry in cfg.models:
        model_source(entry.name, resolve=False)


def _served_models(base_url: str) -> list[str]:
    from nrg.serving.client import Client

    try:
        return Client(base_url).models(timeout_s=10.0)
    except (OSError, ValueError) as exc:
        raise ParameterError(f"serving.base_url={base_url!r} does not answer as an OpenAI-compatible "
                             f"server (GET /v1/models: {exc}); give http://host:port of a running one") from None


def model_source(name: str, resolve: bool = True) -> str:
    """What the engine loads for model ``name``: an embedded model's converted folder, a folder, a hub id."""
    from nrg.models import known_models

    known = known_models()
    if name in known:
        info = known[name]
        if not info.package:
            raise ParameterError(f"models: {name!r} has no real weights here (an engine serves real weights); "
                                 "choose an embedded model such as smollm2-135m, a folder or a hub id")
        if not resolve:
            return name
        from nrg.models.real import embedded_folder

        return str(embedded_folder(info)[0])
    folder = Path(name).expanduser()
    return str(folder.resolve()) if folder.is_dir() else name


def factors(cell: Cell) -> dict[str, Any]:
    """The engine sets the batch; prompts keep their own lengths: no batch size or input length factor."""
    return {"batch_size": None, "input_tokens": None}


def engine_spec(cell: Cell, options: ServingOptions) -> EngineSpec:
    """How to start the cell's engine: its Python, the model folder, dtype, context, device."""
    from nrg.serving.engine import EngineSpec

    env = {"VLLM_CPU_KVCACHE_SPACE": f"{options.kv_cache_space_gib:g}"}
    device = cell.settings.device
    if device.startswith("cuda"):
        env = {"CUDA_VISIBLE_DEVICES": _visible(device)}
    return EngineSpec(python=str(engine_python(options)), model_dir=model_source(cell.model.name),
                      served_name=cell.model.name, dtype=cell.dtype, max_model_len=options.max_model_len,
                      extra_args=options.engine_args, env=env)


def _visible(device: str) -> str:
    """The engine's CUDA_VISIBLE_DEVICES: nrg's device ``cuda:N`` as this process numbers it."""
    import os

    index = int(device.partition(":")[2] or 0)
    mine = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return mine[index] if index < len(mine) else str(index)


INTERLEAVE = False   # a cell holds an engine; its concurrency levels are the blocks inside it


def repeat_policy(cell: Cell) -> RepeatPolicy:
    """A runner repeat is one block over the levels still repeating: at most ``repeats.max`` blocks.

    Each level stops by the sweep's rule on its own samples; a block with no
    level left measures nothing.
    """
    from nrg.sweep.repeats import RepeatPolicy

    n = cell.settings.repeats.max_n
    return RepeatPolicy(min_n=n, max_n=n, ci_rel=None)


def precision(cell: Cell, frame: pd.DataFrame) -> None:
    """``repeats_n``, ``ci_rel_halfwidth`` and the rule's ``ci_rel_target`` per level (steady energy per token).

    Each level stops by the sweep's rule (:class:`Levels`), so its target is the
    sweep's: a level that stopped at ``max_n`` still wider than it missed it.
    """
    from nrg.sweep.repeats import ci_rel_halfwidth

    frame["repeats_n"], frame["ci_rel_halfwidth"] = 0, math.nan
    frame["ci_rel_target"] = cell.settings.repeats.ci_target
    if "concurrency" not in frame:
        return
    for level, part in frame[(frame["phase"] == "steady") & (frame["status"] == "ok")].groupby("concurrency"):
        mask = frame["concurrency"] == level
        frame.loc[mask, "repeats_n"] = len(part)
        frame.loc[mask, "ci_rel_halfwidth"] = ci_rel_halfwidth(part["energy_per_token_j"].tolist())


class ServingWorker:
    """The serving workload's :class:`~nrg.workloads.protocol.Worker`: one engine, its levels in blocks.

    ``prepare`` starts the engine (or attaches to ``base_url``), opens the
    meters and the ``/metrics`` sampler and warms up; each repeat is one block
    over the levels still repeating, in a seeded order; ``close`` stops the
    engine on every path (:mod:`nrg.serving.engine`).
    """

    def __init__(self, cell: Cell, context: SweepContext,
                 monitor_options: Mapping[str, Any] | None = None) -> None:
        self.cell, self.context, self.monitor_options = cell, context, monitor_options
        self.footprint: dict[str, float] = {}
        self._stack: ExitStack | None = None
        self._job: _Job | None = None
        self._monitor: EnergyMonitor | None = None
        self._sampler: Sampler | None = None
        self._engine: Engine | None = None
        self._version: tuple[str, str | None] = ("openai-compatible", None)
        self._levels: Levels | None = None

    def prepare(self, next_repeat: int = 0, retries: int = 0, done: int = 0) -> None:
        """Start (or attach to) the engine, open the meters and the sampler, warm up."""
        from nrg.serving import engine as engines
        from nrg.serving.client import Client
        from nrg.serving.meter import open_monitor
        from nrg.serving.prom import Sampler

        cell, options = self.cell, ServingOptions.from_dict(self.cell.settings.options)
        run_dir = Path(self.context.run_dir) if self.context.run_dir else Path.cwd()
        self._stack = stack = ExitStack()
        if options.base_url is None:
            spec = engine_spec(cell, options)
            self._version = engines.engine_version(spec.python)
            self._engine = stack.enter_context(engines.running(spec, run_dir / "logs" / f"{cell.cell_id}.engine.log",
                                                               options.start_timeout_s))
            client = Client(self._engine.base_url)
        else:
            client, self._version = Client(options.base_url), _server_version(options.base_url)
        self._job = _Job(cell, options, client, self._engine, _prompts(cell, self._engine))
        self._monitor = stack.enter_context(open_monitor(cell, self.monitor_options,
                                                         self._engine.pid if self._engine else None))
        self._sampler = stack.enter_context(Sampler(client, options.metrics_interval_s))
        self._job.warm_up()
        self._levels = Levels(options.concurrency)

    def repeat(self, block: int, run_order: int | None) -> tuple[list[dict[str, Any]], float | None]:
        """One block over the levels still repeating (none left: no rows); no cell-wide sample."""
        assert self._job is not None and self._monitor is not None and self._sampler is not None, "prepare() first"
        assert self._levels is not None
        rows = self._levels.block(self._job, self._monitor, self._sampler, self.context.idle_power_w)
        if self._engine is None and not self.cell.settings.device.startswith("cuda"):
            for row in rows:
                row["energy_warning"] = _joined(row.get("energy_warning"), ATTACHED_CPU)
        return rows, None

    def finish(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The engine's name, version, arguments and start-up time, with the cell's identity."""
        from nrg.sweep.schedule.context import identity

        engine, (name, version) = self._engine, self._version
        startup_s = (engine.ready_s - engine.started_s) if engine is not None and engine.ready_s else math.nan
        options = ServingOptions.from_dict(self.cell.settings.options)
        return {**identity(self.cell, self.context), "engine": name, "engine_version": version,
                "engine_args": " ".join(engine.spec.args()) if engine else f"attached to {options.base_url}",
                "engine_startup_s": startup_s, "load_time_s": startup_s}, []

    def close(self) -> None:
        """Stop the sampler, the meters and the engine (every exit path comes here)."""
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()


class Levels:
    """Per level, the samples so far; a block visits the levels still repeating in a seeded order."""

    def __init__(self, concurrency: tuple[int, ...] | list[int]) -> None:
        self.samples: dict[int, list[float]] = {c: [] for c in concurrency}
        self.blocks = 0
        self.rows = 0

    def block(self, job: _Job, monitor: EnergyMonitor, sampler: Sampler, idle_power_w: Mapping[str, float]
              ) -> list[dict[str, Any]]:
        """The rows of one block; each level stops by the sweep's one rule on its steady energy per token."""
        policy, block = job.cell.settings.repeats, self.blocks
        todo = [c for c, got in self.samples.items() if not policy.done(got, len(got))]
        random.Random(job.cell.settings.seed * 7919 + block).shuffle(todo)
        rows: list[dict[str, Any]] = []
        for c in todo:
            level_rows = job.level(c, block, self.rows // 2, monitor, sampler, idle_power_w)
            self.rows += len(level_rows)
            rows.extend(level_rows)
            self.samples[c].append(level_rows[0]["energy_per_token_j"])
        if todo:
            self.blocks += 1
        return rows


def _server_version(base_url: str) -> tuple[str, str | None]:
    """An attached server's engine and version (vLLM answers ``/version``)."""
    import json

    from nrg.serving.client import Client

    try:
        status, body = Client(base_url).get("/version")
        if status == 200:
            return "vllm", str(json.loads(body).get("version"))
    except (OSError, ValueError):
        pass
    return "openai-compatible", None


def _prompts(cell: Cell, engine: Engine | None) -> list[tuple[str, Any]]:
    """(prompt text, item) of the task's items, rendered with the model's chat template when it has one."""
    from nrg.tasks import get_task

    task = get_task(cell.task.name, cell.task.dataset)
    items = task.items(None, seed=cell.settings.seed)
    tokenizer = _tokenizer(engine.spec.model_dir if engine else cell.model.name)
    return [(task.render(item, tokenizer) if tokenizer is not None else item.prompt, item) for item in items]


def _tokenizer(source: str) -> PreTrainedTokenizerBase | None:
    """The model's tokenizer when it is on this machine (for the chat template), else None."""
    if not Path(source).is_dir():
        return None
    from nrg.models.real import load_tokenizer

    return load_tokenizer(source)


class _Job:
    """One cell's levels on one engine: warm-up, blocks, and the rows of each level."""

    def __init__(self, cell: Cell, options: ServingOptions, client: Client, engine: Engine | None,
                 prompts: list[tuple[str, Any]]) -> None:
        self.cell, self.options, self.client, self.engine, self.prompts = cell, options, client, engine, prompts
        self.body: dict[str, Any] = {"model": cell.model.name, "max_tokens": cell.output_tokens,
                                     "temperature": 0.0, "stream_options": {"include_usage": True}}
        if options.fixed_length:   # vLLM's extensions: every response has exactly output_tokens tokens
            self.body.update({"ignore_eos": True, "min_tokens": cell.output_tokens})

    def trace(self, concurrency: int, seed: int) -> Trace:
        """The level's trace: prompts in the task's seeded order, cycled."""
        from nrg.serving import trace

        texts = [p for p, _ in self.prompts]
        return trace.build(texts, self.options.requests(concurrency), self.body, concurrency,
                           self.options.arrival, self.options.rate_rps, seed)

    def warm_up(self) -> None:
        """Unmeasured requests at the highest level (compiles, caches) before the first window."""
        from nrg.serving import trace

        if self.options.warmup_requests:
            top = max(self.options.concurrency)
            texts = [p for p, _ in self.prompts]
            trace.run(self.client, trace.build(texts, self.options.warmup_requests, self.body, top), path=PATH)
            self.alive("during the warm-up")

    def alive(self, doing: str) -> None:
        """Raise (the cell's failure row, with the log's tail) when the engine has died.

        An attached server (``base_url``) has no process here: it must still answer ``/health``.
        """
        if self.engine is not None:
            self.engine.check_alive(doing)
            return
        from nrg.serving.engine import EngineError

        try:
            healthy = self.client.get("/health", timeout_s=10.0)[0] == 200
        except OSError as exc:
            raise EngineError(f"the server at {self.client.base_url} stopped answering {doing}: {exc}") from None
        if not healthy:
            raise EngineError(f"the server at {self.client.base_url} is not healthy {doing}")

    def level(self, concurrency: int, block: int, run_order: int, monitor: EnergyMonitor, sampler: Sampler,
              idle_power_w: Mapping[str, float]) -> list[dict[str, Any]]:
        """One level once: the trace under a ``run`` and a ``steady`` window; its two rows."""
        from nrg.serving import trace
        from nrg.serving.rows import level_rows

        steady: list[Any] = []
        hooks = trace.Hooks(saturated=lambda: monitor.begin_window("steady"),
                            draining=lambda: steady.append(monitor.end_window("steady")))
        monitor.begin_window("run")
        ran = trace.run(self.client, self.trace(concurrency, self.cell.settings.seed + block), hooks, PATH)
        whole = monitor.end_window("run")
        self.alive(f"while serving concurrency {concurrency}")
        if not any(r.ok for r in ran.results):
            errors = {r.error for r in ran.results}
            raise RuntimeError(f"every request at concurrency {concurrency} failed: {sorted(map(str, errors))[:3]}")
        ids = {"block": block, "run_order": run_order, "repeat": run_order, "concurrency": concurrency,
               "arrival_rate_rps": self.options.rate_rps}
        return level_rows(ran, steady[0].with_idle(idle_power_w), whole.with_idle(idle_power_w), ids,
                          sampler, self.prompts, self.cell)
