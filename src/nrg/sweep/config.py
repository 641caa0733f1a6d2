"""A sweep config, read from YAML or a dict, checked, and expanded into cells.

Keys (all but ``models`` optional)::

    name: ch1-model-comparison   # run name; the run_id is "<name>-<UTC time>"
    chapter: "01"                # copied into every row
    models: [smollm2-135m, {name: gpt2, weights: random, layers: 2}]
                                 # a name, or {name, weights: auto|real|random, layers,
                                 # tiny: bool, overrides: {config field: value}} (nrg.models.ModelSpec)
    tasks: [generation, qa]      # or {name, dataset: FILE.jsonl}; [none] (default) for
                                 # pure systems runs on synthetic token ids
    batch_sizes: [1]             # each of the list keys also accepts a scalar
    input_tokens: [128]          # prompt length, exact
    output_tokens: [32]          # generated tokens, exact (min_new_tokens == max_new_tokens)
    dtypes: [float32]            # float32 | float16 | bfloat16
    device: cpu                  # cpu | cuda | cuda:N | auto (the model sharded over several
                                 # GPUs with accelerate's device map; metered on each)
    devices: null                # with device auto: the CUDA indices to shard over, e.g. [0, 1];
                                 # null = every GPU the cell can see
    axes: {gpu_clock_mhz: [1980, 1410]}  # extra registered axes (nrg.sweep.axes); an axis
                                 # name may also be given as a top-level key
    repeats: {min: 3, max: 10, ci_rel: 0.05}  # adaptive; an integer = fixed count
    warmup: 1                    # unmeasured full generations before the repeats
    idle_s: 2                    # idle baseline, measured once per sweep; 0 skips it
    meters: null                 # energy sources in order (EnergyMonitor.auto); null = default chain
    isolate: true                # each cell in its own process; false = in this process
    order: blocked               # blocked (default): one repeat of every unfinished cell per block,
                                 # in a seeded random order per block, workers keeping models loaded
                                 # (rows carry block, run_order; the ANOVA takes the block as a
                                 # factor; local executor, not serving; a sweep whose cells
                                 # set a clock / power limit runs whole cells); sequential: each
                                 # cell whole, one after another (one process per cell); not part
                                 # of the cell id
    quality: {items: 8}          # score real-weight models on N task items; 0 = off
    seed: 0                      # synthetic inputs and task item sampling
    roofline: true               # measure bandwidth / peak compute, add roofline columns
    cell_timeout_s: null         # isolated cells running longer are stopped (SIGTERM, then
                                 # SIGKILL after a grace period) and recorded failed
    workload: generation         # what a cell measures (nrg.workloads.registry): generation, finetune, serving
                                 # (LoRA fine-tuning + inference on fault tickets, tasks root_cause and
                                 # response: chapter 4, nrg.tickets.workload)
    finetune: {n_tickets: 120}   # the finetune workload's settings (workload: finetune only): n_tickets,
                                 # noise, eval_fraction, tickets_path, text_column, label_column,
                                 # response_column, classifier and generator ({epochs, batch_size,
                                 # max_len, learning_rate, max_steps, lora_r, lora_alpha}),
                                 # train_repeats, n_generate, output_tokens, generate_batch_size;
                                 # defaults: chapter 4's (nrg.tickets.options.FinetuneOptions)
    serving: {concurrency: [1, 8]}  # the serving workload's settings (workload: serving only): engine,
                                 # engine_python or base_url, concurrency, arrival (closed / poisson),
                                 # rate_rps, requests_per_client, min_requests, warmup_requests,
                                 # fixed_length, max_model_len, kv_cache_space_gib, start_timeout_s,
                                 # metrics_interval_s, engine_args; defaults: chapter 6's
                                 # (nrg.serving.options.ServingOptions)
    allow_hardware_settings: false  # true lets axes change GPU clocks / power limit / cpufreq
                                 # (restored after each cell); off, such values are refused
    allow_download: false        # weights: real may fetch from the hub; false = only weights
                                 # already on this machine (checked before any work)
    executor: local              # local (cells one after another here) | ray (one Ray task per
                                 # cell, on a Ray cluster; the ray extra: pip install -c constraints.txt -e '.[ray]')
    ray_address: null            # executor ray: the cluster (auto, HOST:PORT); null = a Ray
                                 # instance started on this machine for the sweep
    devices: null                # device auto: the CUDA indices a sharded model spreads over
    interference: {max_other_cpu_frac: 0.25, max_retries: 2, foreign_gpu_processes: true}
                                 # flag a repeat when other processes used more than this share
                                 # of the CPUs (or held the GPU); redo up to max_retries flagged
                                 # repeats per cell (nrg.sweep.interference)

A cell's id hashes everything that changes its numbers -- the factors, the
lengths, the device, the repeat policy, warm-up, idle seconds, meters, quality
items, seed -- and nothing else (not the name, chapter, output folder,
isolation, consent or executor), so the same cell measured by two sweeps has the same id.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nrg.errors import ParameterError, check_bool, check_choice, check_device, check_int, check_number
from nrg.models.spec import DTYPES, ModelSpec
from nrg.sweep.interference import InterferencePolicy
from nrg.sweep.repeats import RepeatPolicy
from nrg.workloads import registry as workloads

EXECUTORS: tuple[str, ...] = ("local", "ray")
ORDERS: tuple[str, ...] = ("blocked", "sequential")
NO_TASK = "none"
LIST_KEYS = ("models", "tasks", "batch_sizes", "input_tokens", "output_tokens", "dtypes")
KEYS: tuple[str, ...] = (
    "name", "chapter", *LIST_KEYS, "device", "axes", "repeats", "warmup", "idle_s",
    "meters", "isolate", "order", "quality", "seed", "roofline", "cell_timeout_s", "workload", "finetune", "serving",
    "allow_hardware_settings", "allow_download", "devices",
    "executor", "ray_address", "interference",
)


@dataclass(frozen=True)
class TaskEntry:
    """A task by name (``none`` for systems runs) and an optional dataset file."""

    name: str = NO_TASK
    dataset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML, JSON and the cell id hash."""
        return {"name": self.name, "dataset": self.dataset}


@dataclass(frozen=True)
class Settings:
    """How every cell of a sweep is measured (part of each cell's id)."""

    device: str = "cpu"
    repeats: RepeatPolicy = field(default_factory=RepeatPolicy)
    warmup: int = 1
    idle_s: float = 2.0
    meters: tuple[str, ...] | None = None
    quality_items: int = 8
    seed: int = 0
    roofline: bool = True
    workload: str = workloads.GENERATION
    options: Mapping[str, Any] = field(default_factory=dict)   # the workload's own section
    devices: tuple[int, ...] | None = None   # device "auto": CUDA indices to shard over
    interference: InterferencePolicy = field(default_factory=InterferencePolicy)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML, JSON and the cell id hash (``devices`` only when set: old ids stay)."""
        out: dict[str, Any] = {
            "device": self.device, "repeats": self.repeats.to_dict(), "warmup": self.warmup,
            "idle_s": self.idle_s, "meters": list(self.meters) if self.meters else None,
            "quality_items": self.quality_items, "seed": self.seed, "roofline": self.roofline,
            "interference": self.interference.to_dict(),
        }
        if self.workload != workloads.GENERATION:  # generation cell ids stay as they were
            out.update({"workload": self.workload, "options": dict(self.options)})
        if self.devices is not None:
            out["devices"] = list(self.devices)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Settings:
        """Inverse of :meth:`to_dict` (every key required: it reads back what a cell wrote)."""
        return cls(
            device=d["device"], repeats=RepeatPolicy.parse(d["repeats"]), warmup=d["warmup"],
            idle_s=d["idle_s"], meters=tuple(d["meters"]) if d["meters"] else None,
            quality_items=d["quality_items"], seed=d["seed"], roofline=d["roofline"],
            workload=d.get("workload", workloads.GENERATION), options=d.get("options", {}),
            devices=tuple(d["devices"]) if d.get("devices") is not None else None,
            interference=InterferencePolicy.parse(d.get("interference")),
        )


@dataclass(frozen=True)
class Cell:
    """One point of the grid plus the settings it is measured with."""

    model: ModelSpec   # as the config names it: dtype and device are the cell's own fields
    task: TaskEntry
    batch_size: int
    input_tokens: int
    output_tokens: int
    dtype: str
    axes: tuple[tuple[str, Any], ...]
    settings: Settings

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; the spec an isolated cell process (or another machine) receives."""
        return {
            "model": self.model.entry_dict(), "task": self.task.to_dict(),
            "batch_size": self.batch_size, "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens, "dtype": self.dtype,
            "axes": [[k, v] for k, v in self.axes], "settings": self.settings.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cell:
        """Inverse of ``to_dict``: how a cell subprocess gets its cell from the parent."""
        return cls(
            model=ModelSpec.parse(d["model"]), task=TaskEntry(**d["task"]),
            batch_size=d["batch_size"], input_tokens=d["input_tokens"],
            output_tokens=d["output_tokens"], dtype=d["dtype"],
            axes=tuple((k, v) for k, v in d["axes"]), settings=Settings.from_dict(d["settings"]),
        )

    @property
    def cell_id(self) -> str:
        """Stable hash of everything that affects this cell's numbers."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def factors(self) -> dict[str, Any]:
        """The factor columns every row of this cell carries."""
        out: dict[str, Any] = {
            "model": self.model.name, "weights": self.model.weights, "layers": self.model.layers,
            "tiny": self.model.tiny,
            "dtype": self.dtype, "task": self.task.name, "dataset": self.task.dataset,
            "batch_size": self.batch_size, "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens, "device": self.settings.device,
        }
        if self.settings.devices is not None:
            out["devices"] = ",".join(str(i) for i in self.settings.devices)
        out.update(dict(self.axes))
        out.update(workloads.factors(self))
        return out


@dataclass(frozen=True)
class SweepConfig:
    """A checked sweep config; :meth:`cells` expands the grid."""

    models: tuple[ModelSpec, ...]   # partial specs: the grid gives dtype and device
    name: str = "sweep"
    chapter: str = ""
    tasks: tuple[TaskEntry, ...] = (TaskEntry(),)
    batch_sizes: tuple[int, ...] = (1,)
    input_tokens: tuple[int, ...] = (128,)
    output_tokens: tuple[int, ...] = (32,)
    dtypes: tuple[str, ...] = ("float32",)
    axes: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    settings: Settings = field(default_factory=Settings)
    isolate: bool = True
    order: str = "blocked"
    cell_timeout_s: float | None = None
    allow_hardware_settings: bool = False   # consent to change clocks etc.; not in the cell id
    allow_download: bool = False   # weights: real may fetch from the hub
    executor: str = "local"
    ray_address: str | None = None

    def cells(self) -> list[Cell]:
        """The grid in a fixed order: models outermost, extra axes innermost."""
        axis_names = [name for name, _ in self.axes]
        axis_values = [values for _, values in self.axes]
        grid = itertools.product(
            self.models, self.tasks, self.batch_sizes, self.input_tokens,
            self.output_tokens, self.dtypes, *axis_values,
        )
        return [
            Cell(m, t, b, i, o, d, tuple(zip(axis_names, rest, strict=True)), workloads.task_settings(self.settings, t))
            for m, t, b, i, o, d, *rest in grid
        ]

    def to_dict(self) -> dict[str, Any]:
        """A config mapping that :func:`parse_config` reads back to an equal object."""
        s = self.settings.to_dict()
        out = {
            "name": self.name, "chapter": self.chapter,
            "models": [{**m.entry_dict(), "overrides": dict(m.overrides)} for m in self.models],
            "tasks": [t.to_dict() for t in self.tasks],
            "batch_sizes": list(self.batch_sizes), "input_tokens": list(self.input_tokens),
            "output_tokens": list(self.output_tokens), "dtypes": list(self.dtypes),
            "device": s["device"], "axes": {k: list(v) for k, v in self.axes},
            "repeats": s["repeats"], "warmup": s["warmup"], "idle_s": s["idle_s"],
            "meters": s["meters"], "isolate": self.isolate, "order": self.order,
            "quality": {"items": s["quality_items"]}, "seed": s["seed"],
            "roofline": s["roofline"], "cell_timeout_s": self.cell_timeout_s,
            "workload": self.settings.workload,
            **({self.settings.workload: dict(self.settings.options)} if self.settings.options else {}),
            "allow_hardware_settings": self.allow_hardware_settings,
            "allow_download": self.allow_download,
            "devices": s.get("devices"), "executor": self.executor, "ray_address": self.ray_address,
            "interference": s["interference"],
        }
        return {k: v for k, v in out.items() if k not in workloads.unused_keys(self.settings.workload)}


# ---------------------------------------------------------------- parsing


def _as_list(key: str, value: Any) -> list[Any]:
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ParameterError(f"{key}=[] is not valid; give at least one value")
    return _unique(key, items)


def _unique(key: str, items: list[Any]) -> list[Any]:
    """Refuse a value listed twice: ``input_tokens: [8, 8]`` would measure one cell twice as two."""
    seen: set[str] = set()
    for item in items:
        text = json.dumps(item, sort_keys=True, default=repr)
        if text in seen:
            raise ParameterError(f"{key} lists {_short(repr(item))} twice; give each value once "
                                 "(use repeats for more measurements)")
        seen.add(text)
    return items


def _ints(key: str, value: Any, minimum: int = 1) -> tuple[int, ...]:
    return tuple(check_int(key, v, minimum) for v in _as_list(key, value))


def _distinct(key: str, entries: tuple[Any, ...]) -> tuple[Any, ...]:
    """Entries written differently but equal once parsed (``gpt2`` and ``{name: gpt2}``) are one."""
    for i, entry in enumerate(entries):
        if entry in entries[:i]:
            raise ParameterError(f"{key} lists {_short(repr(entry))} twice; give each entry once")
    return entries


def _task(value: Any) -> TaskEntry:
    if value is None:
        return TaskEntry()
    if isinstance(value, str):
        return TaskEntry(value)
    if isinstance(value, Mapping):
        for key in value:
            check_choice("tasks[].key", key, ("name", "dataset"))
        dataset = value.get("dataset")
        return TaskEntry(str(value.get("name", NO_TASK)), None if dataset is None else str(dataset))
    raise ParameterError(f"tasks entry {value!r} is not valid; give a name or {{name, dataset}}")


def _axes(raw: Mapping[str, Any], extra: Mapping[str, Any]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if not isinstance(raw, Mapping):
        raise ParameterError(f"axes={raw!r} is not valid; give a mapping axis name -> values")
    merged = {**dict(raw), **dict(extra)}
    return tuple((str(k), tuple(_as_list(f"axes.{k}", v))) for k, v in merged.items())


def _split_keys(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Known keys, and top-level keys that name a registered axis; else an error."""
    from nrg.sweep import axes as axes_registry

    known = {k: v for k, v in raw.items() if k in KEYS}
    unknown = [k for k in raw if k not in KEYS]
    if not unknown:
        return known, {}
    registered = axes_registry.registered()
    bad = [k for k in unknown if k not in registered]
    if bad:
        raise ParameterError(
            f"config key {bad[0]!r} is not valid; valid keys: {', '.join(KEYS)}"
            + (f"; registered axes: {', '.join(sorted(registered))}" if registered else "")
        )
    return known, {k: raw[k] for k in unknown}


def _devices(raw: Mapping[str, Any]) -> tuple[str, tuple[int, ...] | None]:
    """``device`` and, for a model sharded over GPUs (``device: auto``), its ``devices``."""
    devices = raw.get("devices")
    device = check_device("device", raw.get("device", "cpu" if devices is None else "auto"), allow_auto=True)
    if devices is None:
        return device, None
    if device != "auto":
        raise ParameterError(f"devices={devices!r} is only valid with device='auto' (a sharded model); "
                             f"device={device!r} names one device")
    indices = _ints("devices", devices, minimum=0)
    if len(set(indices)) != len(indices):
        raise ParameterError(f"devices={list(indices)!r} is not valid; an index is repeated")
    return device, tuple(indices)


def _settings(raw: Mapping[str, Any]) -> Settings:
    device, devices = _devices(raw)
    warmup = check_int("warmup", raw.get("warmup", 1), minimum=0)
    idle_s = check_number("idle_s", raw.get("idle_s", 2.0), minimum=0.0)
    quality = raw.get("quality") or {}
    if isinstance(quality, int) and not isinstance(quality, bool):
        quality = {"items": quality}
    if not isinstance(quality, Mapping):
        raise ParameterError(f"quality={quality!r} is not valid; give {{items: N}}")
    for key in quality:
        check_choice("quality.key", key, ("items",))
    items = check_int("quality.items", quality.get("items", 8), minimum=0)
    meters = raw.get("meters")
    if meters is not None:
        meters = tuple(str(m) for m in _as_list("meters", meters))
    seed = check_int("seed", raw.get("seed", 0), minimum=0)
    roofline = check_bool("roofline", raw.get("roofline", True))
    workload, options = workloads.parse(raw)
    return Settings(device, RepeatPolicy.parse(raw.get("repeats")), warmup, idle_s,
                    meters, items, seed, roofline and workload == workloads.GENERATION, workload, options,
                    devices, InterferencePolicy.parse(raw.get("interference")))


def _config_file(config: str | Path) -> Path | None:
    """The file ``config`` names, or None when it is YAML text.

    A :class:`~pathlib.Path`, or a string that exists on disk, is a file; a
    string of several lines, or one that starts with ``{`` or holds ``": "``,
    is YAML text; any other string is a file name. So ``conf.txt`` is read as
    a file (not parsed as the YAML scalar "conf.txt"), and a directory or a
    missing file is refused by name.
    """
    text = str(config)
    if not isinstance(config, Path) and not _exists(text) \
            and ("\n" in text or text.lstrip().startswith("{") or ": " in text):
        return None
    path = Path(text).expanduser()
    if path.is_dir():
        raise ParameterError(f"config={text!r} is not valid; it is a directory, give a YAML file")
    if not path.is_file():
        raise ParameterError(f"config={text!r} is not valid; no such file")
    return path


def _exists(text: str) -> bool:
    try:
        return len(text) < 4096 and Path(text).expanduser().exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def load_mapping(config: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """The raw mapping from a dict, a YAML file path, or YAML text (read by :func:`nrg.sweep.yaml_input.load`).

    A file over :data:`nrg.sweep.yaml_input.MAX_BYTES` is refused before it is read.
    """
    if isinstance(config, Mapping):
        return dict(config)
    from nrg.sweep import yaml_input

    path = _config_file(config)
    name = f"config={_short(str(config))!r}" if path is not None else "config"
    try:
        if path is not None:
            yaml_input.check_size(name, path.stat().st_size)
        text = path.read_text(encoding="utf-8") if path is not None else str(config)
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{name} is not valid; cannot read it as UTF-8 text ({exc})") from None
    data = yaml_input.load(text, name)
    if not isinstance(data, Mapping):
        raise ParameterError(f"{name} is not valid; expected a mapping of keys, got {type(data).__name__}")
    return dict(data)


def check_timeout_isolated(timeout_s: float | None, isolate: bool, how: str) -> None:
    """``cell_timeout_s`` needs isolated cells: one running in this process cannot be stopped.

    Ignoring it silently let an ``--inline`` sweep run past the promised budget.
    """
    if timeout_s is not None and not isolate:
        raise ParameterError(f"cell_timeout_s={timeout_s:g} is not valid with {how}: a cell that runs in "
                             "this process cannot be stopped at its timeout; drop cell_timeout_s or run "
                             "cells isolated (the default)")


def _short(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters for a message (YAML text may be long)."""
    return text if len(text) <= limit else text[:limit] + "..."


def parse_config(config: SweepConfig | Mapping[str, Any] | str | Path) -> SweepConfig:
    """Check keys, types and ranges (no model loading); raise ParameterError on the first problem."""
    if isinstance(config, SweepConfig):
        return config
    raw, extra_axes = _split_keys(load_mapping(config))
    if "models" not in raw:
        raise ParameterError("models is missing; give at least one model name")
    dtypes = tuple(str(d) for d in _as_list("dtypes", raw.get("dtypes", ["float32"])))
    for d in dtypes:
        check_choice("dtypes", d, DTYPES)
    isolate = check_bool("isolate", raw.get("isolate", True))
    order = raw.get("order", "blocked")
    check_choice("order", order, ORDERS)
    timeout = raw.get("cell_timeout_s")
    if timeout is not None:
        timeout = check_number("cell_timeout_s", timeout, 0.0, inclusive=False)
    allow_download = check_bool("allow_download", raw.get("allow_download", False))
    consent = check_bool("allow_hardware_settings", raw.get("allow_hardware_settings", False))
    executor = raw.get("executor", "local")
    check_choice("executor", executor, EXECUTORS)
    address = raw.get("ray_address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ParameterError(f"ray_address={address!r} is not valid; give 'auto', HOST:PORT or null")
    check_timeout_isolated(timeout, isolate, "isolate=False")
    name = str(raw.get("name", "sweep"))
    if not name or "/" in name or any(c.isspace() for c in name):
        raise ParameterError(f"name={name!r} is not valid; use a non-empty name without spaces or '/'")
    return SweepConfig(
        models=_distinct("models", tuple(ModelSpec.parse(m) for m in _as_list("models", raw["models"]))),
        name=name, chapter=str(raw.get("chapter", "")),
        tasks=_distinct("tasks", tuple(_task(t) for t in _as_list("tasks", raw.get("tasks", [NO_TASK])))),
        batch_sizes=_ints("batch_sizes", raw.get("batch_sizes", [1])),
        input_tokens=_ints("input_tokens", raw.get("input_tokens", [128])),
        output_tokens=_ints("output_tokens", raw.get("output_tokens", [32])),
        dtypes=dtypes, axes=_axes(raw.get("axes") or {}, extra_axes),
        settings=_settings(raw), isolate=isolate, order=order, cell_timeout_s=timeout,
        allow_download=allow_download,
        allow_hardware_settings=consent,
        executor=executor, ray_address=address,
    )

