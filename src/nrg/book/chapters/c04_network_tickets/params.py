"""Chapter 4's parameters: the one source of their defaults and types, checked once.

The ticket and training defaults are :data:`nrg.tickets.options.DEFAULTS`
(what a sweep config gets for a key it leaves out); building a ``Params``
parses every value (papermill's strings included) and checks the two sweep
configs (one per task, ``workload: finetune``) against this machine, unless
``nrg book run`` checked the same values already (:mod:`nrg.book.params`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nrg.book import carbon, common, sweeps
from nrg.book.params import ChapterParams
from nrg.errors import check_device
from nrg.sweep.repeats import RepeatPolicy
from nrg.tickets.finetune import TrainSettings
from nrg.tickets.options import DEFAULT_MODELS, DEFAULTS, TASKS, train_settings

CHAPTER = "04_network_tickets"
METRICS: dict[str, tuple[str, ...]] = {"root_cause": ("macro_f1", "accuracy"), "response": ("rouge_l", "bleu")}
ROOT_CAUSE_REPEATS = RepeatPolicy.parse(3)   # a fixed count: 3 windows
RESPONSE_REPEATS = RepeatPolicy.parse(2)


def _strings(name: str, value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in common.as_list(name, value))


def _tasks_mapping(name: str, value: Any, valid_values: Mapping[str, tuple[str, ...]] | None = None
                   ) -> dict[str, Any]:
    mapping = common.as_mapping(name, value)
    common.check_choices(f"{name} keys", list(mapping), TASKS)
    for task, item in mapping.items():
        if valid_values is not None:
            common.check_choices(f"{name}[{task}]", [item], valid_values[task])
    return mapping


def _repeats(value: Any) -> RepeatPolicy:
    return value if isinstance(value, RepeatPolicy) else RepeatPolicy.parse(sweeps.repeat_policy(value))


@dataclass(frozen=True)
class Params(ChapterParams):
    """Fault tickets: each task's quantization x pruning grid, fine-tuned and evaluated; see the parameters cell."""

    EXTRA = ("configs", "options", "reference")

    n_tickets: int = DEFAULTS.n_tickets
    seed: int = 0
    noise: float = DEFAULTS.noise
    tickets_path: str | None = DEFAULTS.tickets_path
    text_column: str = DEFAULTS.text_column
    label_column: str = DEFAULTS.label_column
    response_column: str | None = DEFAULTS.response_column
    tasks: tuple[str, ...] = TASKS
    quant: tuple[str, ...] = ("none", "int8-dynamic", "nf4")
    prune: tuple[str, ...] = ("none", "unstructured:0.3", "structured:0.25", "2:4")
    response_quant: tuple[str, ...] | None = ("none", "int8-dynamic")   # None: as quant
    response_prune: tuple[str, ...] | None = ("none", "2:4")            # None: as prune
    w: float = 0.5
    repeats: RepeatPolicy = ROOT_CAUSE_REPEATS          # inference windows per tuned model
    response_repeats: RepeatPolicy | None = RESPONSE_REPEATS   # None: as repeats
    train_repeats: int = DEFAULTS.train_repeats
    classifier: TrainSettings = DEFAULTS.classifier
    generator: TrainSettings = DEFAULTS.generator
    n_generate: int = DEFAULTS.n_generate
    output_tokens: int = DEFAULTS.output_tokens
    generate_batch_size: int | None = DEFAULTS.generate_batch_size
    models: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    model_layers: Mapping[str, int] = field(default_factory=dict)
    metrics: Mapping[str, str] = field(default_factory=lambda: {t: METRICS[t][0] for t in TASKS})
    device: str = "cpu"
    threads: int | None = None
    idle_s: float = 0.0
    isolate: bool = True
    alpha: float = 0.05
    run_dir: Path | None = None        # None: runs/04_network_tickets (resolved when built)
    reference_dir: Path | None = None  # None: results/reference, when the book has one
    region: str = carbon.DEFAULT_REGION
    price_per_kwh: float | None = None
    pue: float = carbon.DEFAULT_PUE
    # the sweep config of each task, checked against this machine
    checked: tuple[sweeps.Checked, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._parse_tickets()
        self._parse_grid()
        put = self._put
        put("models", {**DEFAULT_MODELS, **{k: str(v) for k, v in _tasks_mapping("models", self.models).items()}})
        put("model_layers", {t: common.as_int(f"model_layers[{t}]", v)
                             for t, v in _tasks_mapping("model_layers", self.model_layers).items()})
        put("metrics", {**{t: METRICS[t][0] for t in TASKS}, **_tasks_mapping("metrics", self.metrics, METRICS)})
        put("device", check_device("device", self.device))
        put("threads", None if self.threads is None else common.as_int("threads", self.threads))
        put("idle_s", common.as_number("idle_s", self.idle_s))
        put("isolate", common.as_bool("isolate", self.isolate))
        put("alpha", common.as_fraction("alpha", self.alpha, 1e-6, 0.5))
        put("run_dir", common.run_dir(CHAPTER, None if self.run_dir is None else str(self.run_dir)))
        put("reference_dir", common.reference_root(None if self.reference_dir is None else str(self.reference_dir)))
        for name, value in carbon.check_params(self.region, self.price_per_kwh, self.pue).items():
            put(name, value)
        configs = sweeps.parse_configs(list(self.configs.values()))
        put("checked", sweeps.unchecked(configs) if self.checked_elsewhere() else sweeps.check_configs(configs))

    def _put(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _parse_tickets(self) -> None:
        """The tickets, training and generation settings (the ``finetune:`` section)."""
        put = self._put
        put("n_tickets", common.as_int("n_tickets", self.n_tickets, minimum=2))
        put("seed", common.as_int("seed", self.seed, minimum=0))
        put("noise", common.as_fraction("noise", self.noise))
        put("tickets_path", None if self.tickets_path in (None, "") else str(self.tickets_path))
        put("response_column", self.response_column or None)
        put("train_repeats", common.as_int("train_repeats", self.train_repeats))
        put("classifier", train_settings("classifier", _settings("classifier", self.classifier), DEFAULTS.classifier))
        put("generator", train_settings("generator", _settings("generator", self.generator), DEFAULTS.generator))
        put("n_generate", common.as_int("n_generate", self.n_generate))
        put("output_tokens", common.as_int("output_tokens", self.output_tokens))
        batch = self.generate_batch_size
        put("generate_batch_size", None if batch is None else common.as_int("generate_batch_size", batch))

    def _parse_grid(self) -> None:
        """Tasks, each task's quantization x pruning grid and repeats, and the ranking weight."""
        put = self._put
        tasks = _strings("tasks", self.tasks)
        common.check_choices("tasks", tasks, TASKS)
        put("tasks", tasks)
        put("quant", _strings("quant", self.quant))
        put("prune", _strings("prune", self.prune))
        put("response_quant", _strings("response_quant", self.response_quant) if self.response_quant else None)
        put("response_prune", _strings("response_prune", self.response_prune) if self.response_prune else None)
        put("w", common.as_fraction("w", self.w))
        put("repeats", _repeats(self.repeats))
        put("response_repeats", None if self.response_repeats is None else _repeats(self.response_repeats))

    def section(self) -> dict[str, Any]:
        """The ``finetune:`` section of both configs."""
        return {"n_tickets": self.n_tickets, "noise": self.noise, "tickets_path": self.tickets_path,
                "text_column": self.text_column, "label_column": self.label_column,
                "response_column": self.response_column, "train_repeats": self.train_repeats,
                "classifier": self.classifier.to_dict(), "generator": self.generator.to_dict(),
                "n_generate": self.n_generate, "output_tokens": self.output_tokens,
                "generate_batch_size": self.generate_batch_size}

    def grid(self, task: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The task's quantization and pruning lists (the response task's default to the root cause's)."""
        if task == "response":
            return self.response_quant or self.quant, self.response_prune or self.prune
        return self.quant, self.prune

    @property
    def configs(self) -> dict[str, dict[str, Any]]:
        """One sweep config per task: its model, its quant x prune grid, the shared ``finetune:`` section."""
        out = {}
        for task in self.tasks:
            quant, prune = self.grid(task)
            repeats = self.repeats if task == "root_cause" or self.response_repeats is None else self.response_repeats
            out[task] = {"name": f"{CHAPTER}-{task}", "chapter": CHAPTER, "workload": "finetune",
                         "models": [{"name": self.models[task], "weights": "real",
                                     "layers": self.model_layers.get(task)}], "tasks": [task],
                         "dtypes": ["float32"], "device": self.device,
                         "axes": {"prune": list(prune), "quant": list(quant)}, "repeats": repeats.to_dict(),
                         "idle_s": self.idle_s, "isolate": self.isolate, "seed": self.seed,
                         "finetune": self.section()}
        return out

    @property
    def options(self) -> dict[str, Any]:
        """The checked ``finetune:`` section, as a cell sees it (completed, the tickets file's digest added)."""
        return dict(self.checked[0].config.settings.options)

    @property
    def reference(self) -> dict[str, Path]:
        """Committed GPU runs of this chapter by GPU folder (empty without reference data)."""
        return common.reference_runs(self.reference_dir, CHAPTER)


def _settings(name: str, value: Any) -> Any:
    """A training-settings parameter: None (the defaults), settings, or a mapping (a string from papermill)."""
    return value if value is None or isinstance(value, TrainSettings) else common.as_mapping(name, value)
