"""The chapter-4 driver: every quantization x pruning setting, fine-tuned and evaluated, with energy.

For each task (``root_cause`` with all-MiniLM-L6-v2, ``response`` with
SmolLM2-135M-Instruct) and each ``quant`` x ``prune`` combination, one cell:

1. copy the loaded fp32 model, prune it (float weights), quantize it;
2. ``finetune`` -- LoRA on top of the compressed base (QLoRA-style for 8/4-bit),
   measured in one energy window. Where LoRA cannot wrap the compressed layers
   (torch dynamic int8) the row says ``unsupported`` with the reason; the model
   for inference is then tuned in float, merged, and quantized afterwards
   (``finetune_path`` says which);
3. ``inference`` -- predict the held-out tickets (accuracy, macro-F1) or write
   their responses (ROUGE-L, BLEU), measured in one window; on CUDA a 2:4
   model runs semi-structured sparse kernels (``kernel`` column).

Each cell is one Parquet file (:class:`nrg.sweep.store.RunStore`), written
atomically; a rerun skips cells whose file exists. The ranking
R = w*phi + (1-w)*rho and the Pareto front are computed by :mod:`nrg.stats`.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError, check_choice
from nrg.tickets.finetune import TrainSettings

if TYPE_CHECKING:
    import pandas as pd

    from nrg.meters.protocols import Monitor

TASKS: tuple[str, ...] = ("root_cause", "response")
PHASES: tuple[str, ...] = ("finetune", "inference")
DEFAULT_MODELS = {"root_cause": "minilm-l6", "response": "smollm2-135m"}
Factory = Callable[[int], tuple[Any, Any]]   # num_labels -> (model, tokenizer)


@dataclass(frozen=True)
class StudyConfig:
    """Everything that defines the study's numbers; checked before any work or file write."""

    n_tickets: int = 200
    seed: int = 0
    noise: float = 0.1
    quant: tuple[str, ...] = ("none", "int8-dynamic", "nf4")
    prune: tuple[str, ...] = ("none", "2:4")
    phases: tuple[str, ...] = PHASES
    tasks: tuple[str, ...] = TASKS
    w: float = 0.5
    eval_fraction: float = 0.2
    # measured on the shared 2-core CPU: 2 epochs at 5e-3 reach ~0.8 accuracy on 200 tickets
    classifier: TrainSettings = TrainSettings(epochs=2, batch_size=16, max_len=128, learning_rate=5e-3)
    generator: TrainSettings = TrainSettings(batch_size=2, max_len=192, max_steps=6, learning_rate=1e-3)
    n_generate: int = 4
    max_new_tokens: int = 32
    device: str = "cpu"
    chapter: str = "ch4-tickets"
    dataset: str = "synthetic-tickets"
    model_names: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    # replication: inference windows per tuned model (energy), fine-tunings per cell (seeds)
    repeats: int = 1
    train_repeats: int = 1
    generate_batch_size: int | None = None   # None: the generator's training batch size
    model_layers: Mapping[str, int] = field(default_factory=dict)  # truncate an embedded model

    def __post_init__(self) -> None:
        from nrg.compress import validate_prune, validate_quant

        object.__setattr__(self, "quant", tuple(self.quant))
        object.__setattr__(self, "prune", tuple(self.prune))
        object.__setattr__(self, "phases", tuple(self.phases))
        object.__setattr__(self, "tasks", tuple(self.tasks))
        for name in ("n_tickets", "n_generate", "max_new_tokens", "repeats", "train_repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name}={value!r} is not valid; it must be an integer >= 1")
        if isinstance(self.w, bool) or not isinstance(self.w, (int, float)) or not 0 <= self.w <= 1:
            raise ParameterError(f"w={self.w!r} is not valid; it must be a number in [0, 1]")
        if not 0 < self.eval_fraction < 1:
            raise ParameterError(f"eval_fraction={self.eval_fraction!r} is not valid; it must be in (0, 1)")
        if not self.quant or not self.prune or not self.phases or not self.tasks:
            raise ParameterError("quant, prune, phases and tasks must each list at least one value")
        validate_quant(self.quant)
        validate_prune(self.prune)
        for phase in self.phases:
            check_choice("phases", phase, PHASES)
        for task in self.tasks:
            check_choice("tasks", task, TASKS)
        from nrg.tickets.generator import check_noise

        check_noise(self.noise)
        batch = self.generate_batch_size
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
            raise ParameterError(f"generate_batch_size={batch!r} is not valid; an integer >= 1 or None")
        for task, layers in dict(self.model_layers).items():
            check_choice("model_layers", task, TASKS)
            if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
                raise ParameterError(f"model_layers[{task!r}]={layers!r} is not valid; an integer >= 1")
        object.__setattr__(self, "model_layers", dict(self.model_layers))

    def cell_id(self, task: str, quant: str, prune: str, dataset_key: str) -> str:
        """Stable hash of what determines a cell's numbers."""
        settings = self.classifier if task == "root_cause" else self.generator
        blob = {"chapter": self.chapter, "task": task, "model": self.model_names.get(task),
                "quant": quant, "prune": prune, "data": dataset_key, "settings": asdict(settings),
                "n_generate": self.n_generate, "max_new_tokens": self.max_new_tokens,
                "device": self.device, "repeats": self.repeats, "train_repeats": self.train_repeats,
                "layers": self.model_layers.get(task), "phases": list(self.phases),
                "eval_fraction": self.eval_fraction}
        if task == "response":
            blob["generate_batch_size"] = self.generate_batch_size
        text = json.dumps(blob, sort_keys=True, default=str)
        return f"{task}-" + hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TaskData:
    """The tickets of one study split into training and held-out evaluation."""

    train_texts: tuple[str, ...]
    train_targets: tuple[Any, ...]
    eval_texts: tuple[str, ...]
    eval_targets: tuple[Any, ...]
    labels: tuple[str, ...] = ()


def split_tickets(tickets: Sequence[Any], task: str, eval_fraction: float, n_generate: int
                  ) -> TaskData:
    """Deterministic split; labels become ids in the order of ``nrg.tickets.LABELS`` (or sorted)."""
    from nrg.tickets.generator import LABELS

    n_eval = max(1, round(len(tickets) * eval_fraction))
    train, held_out = list(tickets[:-n_eval]), list(tickets[-n_eval:])
    if not train:
        raise ParameterError(f"n_tickets={len(tickets)} leaves no training ticket; give more tickets")
    if task == "response":
        held_out = held_out[:n_generate]
        return TaskData(tuple(t.text for t in train), tuple(t.response for t in train),
                        tuple(t.text for t in held_out), tuple(t.response for t in held_out))
    seen = {t.label for t in tickets}
    labels = tuple(label for label in LABELS if label in seen) + tuple(sorted(seen - set(LABELS)))
    index = {label: i for i, label in enumerate(labels)}
    return TaskData(tuple(t.text for t in train), tuple(index[t.label] for t in train),
                    tuple(t.text for t in held_out), tuple(index[t.label] for t in held_out), labels)


def run_ticket_study(out_dir: str | Path, n_tickets: int = 200, seed: int = 0,
                     quant: Sequence[str] = ("none", "int8-dynamic", "nf4"),
                     prune: Sequence[str] = ("none", "2:4"), phases: Sequence[str] = PHASES,
                     w: float = 0.5, tasks: Sequence[str] = TASKS, tickets: Sequence[Any] | None = None,
                     models: Mapping[str, Factory] | None = None, monitor: Monitor | None = None,
                     idle_s: float = 0.0, progress: bool = True, **options: Any) -> pd.DataFrame:
    """Fine-tune and evaluate every ``quant`` x ``prune`` setting per task; one Parquet file per cell.

    ``tickets`` replaces the generated ones (e.g. ``nrg.tickets.loader.load_tickets(...)``);
    ``models`` maps a task to a factory ``num_labels -> (model, tokenizer)`` instead
    of the embedded models; ``options`` go to :class:`StudyConfig` (``noise``,
    ``classifier``, ``generator``, ``n_generate``, ``max_new_tokens``, ``device``, ...).
    Returns the rows of this study's cells (the run directory may also hold
    cells of earlier parameters: they are kept, so a rerun reuses them, but
    not returned).
    """
    from nrg.sweep.store import RunStore, load

    config = StudyConfig(n_tickets=n_tickets, seed=seed, quant=tuple(quant), prune=tuple(prune),
                         phases=tuple(phases), w=w, tasks=tuple(tasks), **options)
    if idle_s < 0:
        raise ParameterError(f"idle_s={idle_s!r} is not valid; it must be >= 0")
    all_tickets, dataset_key = _tickets(config, tickets)
    store = RunStore.at(out_dir)
    store.create()
    store.clean_temporary()
    from nrg.hardware import provenance

    prov = provenance()
    run_id = store.open_session("tickets", config.chapter, _config_dict(config), prov)
    owned = monitor is None
    if monitor is None:
        from nrg.meters import EnergyMonitor

        monitor = EnergyMonitor.auto()
    try:
        if idle_s > 0:
            monitor.measure_idle(idle_s)
        for task in config.tasks:
            _run_task(task, config, all_tickets, dataset_key, store, run_id, prov, models, monitor, progress)
    finally:
        if owned:
            monitor.close()
    rows = load(out_dir)
    ids = set(cell_ids(config, dataset_key))
    return rows[rows["cell_id"].isin(ids)].reset_index(drop=True) if len(rows) else rows


def cell_ids(config: StudyConfig, dataset_key: str) -> list[str]:
    """The cell ids of every (task, quant, prune) of ``config`` on the data ``dataset_key``."""
    return [config.cell_id(task, q, p, dataset_key)
            for task in config.tasks for q in config.quant for p in config.prune]


def _tickets(config: StudyConfig, tickets: Sequence[Any] | None) -> tuple[list[Any], str]:
    from nrg.tickets.generator import generate_tickets

    if tickets is not None:
        if len(tickets) < 2:
            raise ParameterError(f"tickets has {len(tickets)} ticket(s); give at least 2")
        digest = hashlib.sha256("\n".join(t.text + t.label for t in tickets).encode()).hexdigest()[:12]
        return list(tickets), f"user-{digest}"
    return generate_tickets(config.n_tickets, config.seed, noise=config.noise), \
        f"synthetic-n{config.n_tickets}-s{config.seed}-noise{config.noise}"


def _config_dict(config: StudyConfig) -> dict[str, Any]:
    out = asdict(config)
    out["model_names"] = dict(config.model_names)
    return out


def _run_task(task: str, config: StudyConfig, tickets: list[Any], dataset_key: str, store: Any,
              run_id: str, prov: Mapping[str, Any], models: Mapping[str, Factory] | None,
              monitor: Monitor, progress: bool) -> None:
    from nrg.tickets.cell import measure_cell

    data = split_tickets(tickets, task, config.eval_fraction, config.n_generate)
    finished = store.finished()
    todo = [(q, p) for q in config.quant for p in config.prune
            if config.cell_id(task, q, p, dataset_key) not in finished]
    if not todo:
        return
    custom = (models or {}).get(task)
    factory = custom or _embedded_factory(task, config)
    base, tokenizer = factory(len(data.labels))
    weights = "custom" if custom else "real"
    cache: dict[tuple[str, int], Any] = {}   # float-tuned models, shared by this task's cells
    for quant, prune in todo:
        cell_id = config.cell_id(task, quant, prune, dataset_key)
        if progress:
            print(f"[tickets] {task}: quant={quant} prune={prune} ...", flush=True)
        frame = measure_cell(task, base, tokenizer, data, quant, prune, config, monitor, cache)
        identity = {"run_id": run_id, "chapter": config.chapter, "cell_id": cell_id}
        for key, value in {**identity, **prov, "dataset": dataset_key, "weights": weights}.items():
            frame[key] = value
        store.write_cell(cell_id, frame)


def _embedded_factory(task: str, config: StudyConfig) -> Factory:
    """Load the task's embedded model through :func:`nrg.models.load` (fp32, real weights)."""

    def factory(num_labels: int) -> tuple[Any, Any]:
        from nrg.models import ModelSpec, load

        name = config.model_names[task]
        layers = config.model_layers.get(task)
        if task == "root_cause":
            spec = ModelSpec(name, weights="real", device=config.device, head="sequence-classification",
                             overrides=(("num_labels", num_labels),), layers=layers)
        else:
            spec = ModelSpec(name, weights="real", device=config.device, layers=layers)
        loaded = load(spec)
        return loaded.model, loaded.tokenizer

    return factory
