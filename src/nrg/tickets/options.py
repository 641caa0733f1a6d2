"""The finetune workload's settings: the ``finetune:`` section of a sweep config.

One source for chapter 4's defaults: :data:`DEFAULTS` is what a sweep config
gets for a key it leaves out, what the chapter driver's ``check`` takes as its
defaults, and what the notebook's parameters cell declares (a test compares
the three). Every value here changes a cell's numbers, so the section is part
of each cell's id -- but only the part a cell's task uses
(:func:`task_options`): changing the response generator's settings does not
re-measure the root-cause cells.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from nrg.errors import ParameterError, check_choice, check_int
from nrg.tickets.finetune import TrainSettings

TASKS: tuple[str, ...] = ("root_cause", "response")
KIND: dict[str, str] = {"root_cause": "classifier", "response": "generator"}
DEFAULT_MODELS: dict[str, str] = {"root_cause": "minilm-l6", "response": "smollm2-135m"}
SECTION = "finetune"
# keys of the generation grid that mean nothing to fine-tuning: refused rather than ignored
UNUSED_KEYS: dict[str, str] = {
    "batch_sizes": "finetune.classifier.batch_size / finetune.generator.batch_size",
    "input_tokens": "finetune.classifier.max_len / finetune.generator.max_len",
    "output_tokens": "finetune.output_tokens", "quality": "the held-out tickets (finetune.eval_fraction)",
    "roofline": "nothing (no roofline for fine-tuning)",
}
# options only the response task uses, and only the root-cause task uses
RESPONSE_ONLY = ("generator", "n_generate", "output_tokens", "generate_batch_size", "response_column")
ROOT_CAUSE_ONLY = ("classifier",)


@dataclass(frozen=True)
class FinetuneOptions:
    """Tickets, training and response generation of the finetune workload (defaults: chapter 4's)."""

    n_tickets: int = 120                  # synthetic tickets (train 1 - eval_fraction, evaluate the rest)
    noise: float = 0.1                    # probability of a misleading symptom / missing field / typos
    eval_fraction: float = 0.2
    tickets_path: str | None = None       # your own tickets (.csv / .jsonl) instead of synthetic ones
    text_column: str = "text"
    label_column: str = "label"
    response_column: str | None = "response"
    # measured on the shared 2-core CPU: 2 epochs at 5e-3 reach ~0.8 accuracy on 200 tickets
    classifier: TrainSettings = TrainSettings(epochs=2, batch_size=16, max_len=128, learning_rate=5e-3)  # noqa: RUF009 - frozen
    generator: TrainSettings = TrainSettings(batch_size=2, max_len=192, max_steps=6, learning_rate=1e-3)  # noqa: RUF009 - frozen
    train_repeats: int = 1                # fine-tunings per cell, seeds seed, seed + 1, ...
    n_generate: int = 4                   # held-out tickets whose response is generated
    output_tokens: int = 24
    generate_batch_size: int | None = 4   # None: the generator's training batch size
    tickets_sha256: str | None = None     # derived from tickets_path's content (part of the cell id)

    def __post_init__(self) -> None:
        from nrg.tickets.generator import check_noise

        for name in ("n_tickets", "train_repeats", "n_generate", "output_tokens"):
            check_int(name, getattr(self, name), 2 if name == "n_tickets" else 1)
        if self.generate_batch_size is not None:
            check_int("generate_batch_size", self.generate_batch_size)
        check_noise(self.noise)
        fraction = self.eval_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ParameterError(f"eval_fraction={fraction!r} is not valid; it must be a number in (0, 1)")
        for name in ("text_column", "label_column", "response_column"):
            value = getattr(self, name)
            if not (isinstance(value, str) and value) and not (name == "response_column" and value is None):
                raise ParameterError(f"{name}={value!r} is not valid; give a column name")

    def train(self, task: str) -> TrainSettings:
        """The training settings of ``task`` (the classifier's or the generator's)."""
        return self.classifier if KIND[task] == "classifier" else self.generator

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; :func:`parse_options` reads it back to an equal object."""
        out = asdict(self)
        out["classifier"], out["generator"] = self.classifier.to_dict(), self.generator.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FinetuneOptions:
        """From :meth:`to_dict` (or a part of it: the rest are defaults)."""
        values = dict(d)
        for kind in ("classifier", "generator"):
            if kind in values:
                values[kind] = TrainSettings(**values[kind])
        return cls(**values)


DEFAULTS = FinetuneOptions()


def train_settings(name: str, value: Any, default: TrainSettings) -> TrainSettings:
    """``default`` with the keys of the mapping ``value`` replaced; unknown keys list the valid ones."""
    if value is None:
        return default
    if isinstance(value, TrainSettings):
        return value
    if not isinstance(value, Mapping):
        raise ParameterError(f"{name}={value!r} is not valid; give a mapping such as {{epochs: 2}}")
    valid = [f.name for f in fields(TrainSettings) if f.name != "seed"]
    for key in value:
        if key == "seed":
            raise ParameterError(f"{name}.seed is not valid here; the sweep's seed key sets it "
                                 "(train repeat k uses seed + k)")
        check_choice(f"{name}.key", key, valid)
    try:
        return replace(default, **dict(value))
    except ParameterError as exc:
        raise ParameterError(f"{name}: {exc}") from None


def tickets_digest(path: str | Path) -> str:
    """SHA-256 of a tickets file: a changed file is new data, so new cells."""
    file = Path(path)
    if not file.is_file():
        raise ParameterError(f"tickets_path={str(path)!r} is not valid; no such file")
    return hashlib.sha256(file.read_bytes()).hexdigest()


def parse_options(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The checked ``finetune:`` section of a raw sweep config, completed with :data:`DEFAULTS`.

    (The grid keys fine-tuning does not use, :data:`UNUSED_KEYS`, are refused by
    :func:`nrg.workloads.registry.parse`.)
    """
    section = raw.get(SECTION) or {}
    if not isinstance(section, Mapping):
        raise ParameterError(f"{SECTION}={section!r} is not valid; give a mapping such as {{n_tickets: 120}}")
    valid = [f.name for f in fields(FinetuneOptions)]
    for key in section:
        check_choice(f"{SECTION}.key", key, valid)
    values = {k: v for k, v in section.items() if k not in ("classifier", "generator", "tickets_sha256")}
    for kind in ("classifier", "generator"):
        values[kind] = train_settings(f"{SECTION}.{kind}", section.get(kind), getattr(DEFAULTS, kind))
    path = values.get("tickets_path")
    if path not in (None, ""):
        values["tickets_path"] = str(Path(str(path)).expanduser().resolve())
        values["tickets_sha256"] = tickets_digest(values["tickets_path"])
        given = section.get("tickets_sha256")
        if given is not None and given != values["tickets_sha256"]:
            raise ParameterError(f"tickets_path={path!r} changed since this config was written "
                                 f"(tickets_sha256 {given[:12]}... is now {values['tickets_sha256'][:12]}...)")
    else:
        values["tickets_path"] = None
    return FinetuneOptions(**values).to_dict()


def task_options(options: Mapping[str, Any], task: str) -> dict[str, Any]:
    """The options a cell of ``task`` uses (unknown tasks keep all: the check names them)."""
    drop = RESPONSE_ONLY if task == "root_cause" else ROOT_CAUSE_ONLY if task == "response" else ()
    return {k: v for k, v in options.items() if k not in drop}
