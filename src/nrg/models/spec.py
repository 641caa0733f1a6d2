"""What to load: a frozen, validated model spec.

Validation that needs no torch (names of dtypes, device syntax, weights kind,
depth) happens when the spec is built, so a bad sweep fails before any model
is touched; checks that need the machine (is CUDA there, does bf16 work) run in
:func:`nrg.models.load` before loading.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from nrg.errors import ParameterError, check_bool, check_choice, check_device, check_int

WEIGHTS: tuple[str, ...] = ("auto", "real", "random")
DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")
HEADS: tuple[str, ...] = ("auto", "causal-lm", "seq2seq-lm", "base", "sequence-classification")
DTYPE_BYTES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2}
#: The keys of a model entry (a chapter's ``models`` item, a sweep config's, a cell file's).
ENTRY_KEYS: tuple[str, ...] = ("name", "weights", "layers", "tiny", "overrides")


def _freeze_overrides(overrides: Mapping[str, Any] | tuple[tuple[str, Any], ...] | None
                      ) -> tuple[tuple[str, Any], ...]:
    """Overrides are kept as sorted pairs so a spec stays hashable and comparable."""
    if overrides is None:
        return ()
    items = overrides.items() if isinstance(overrides, Mapping) else overrides
    pairs = []
    for key, value in items:
        if not isinstance(key, str) or not key:
            raise ParameterError(f"overrides: key {key!r} is not valid; keys are config field names")
        pairs.append((key, value))
    return tuple(sorted(pairs, key=lambda kv: kv[0]))


def _override_pairs(name: str, overrides: Any) -> tuple[tuple[str, Any], ...]:
    """An entry's ``overrides``: a mapping, or the ``[key, value]`` pairs :meth:`ModelSpec.entry_dict` writes."""
    if overrides is None:
        return ()
    if isinstance(overrides, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in overrides):
        overrides = dict(overrides)
    if not isinstance(overrides, Mapping):
        raise ParameterError(f"models[{name}].overrides={overrides!r} is not valid; give a mapping")
    for key in overrides:
        if not isinstance(key, str) or not key:
            raise ParameterError(f"models[{name}].overrides key {key!r} is not valid; "
                                 "keys are fields of the model's config class")
    return tuple(overrides.items())


@dataclass(frozen=True)
class ModelSpec:
    """One model to load.

    ``name`` is a known short name (see :func:`nrg.models.known_models`), one of
    their hub ids, another hub id, or a local folder with a transformers model.
    ``layers`` truncates depth and ``overrides`` replaces config fields (e.g.
    ``{"hidden_size": 64}``); ``tiny=True`` applies a small per-architecture
    width so CI can run every architecture in seconds. ``head`` picks the
    model class: ``auto`` is a causal LM for decoders, seq2seq for T5 and the
    bare encoder for BERT-like models. ``device="auto"`` shards the model over
    the GPUs ``devices`` (CUDA indices; None = all) with accelerate's device
    map (:mod:`nrg.models.placement`).
    """

    name: str
    weights: str = "auto"
    dtype: str = "float32"
    device: str = "cpu"
    layers: int | None = None
    overrides: tuple[tuple[str, Any], ...] = field(default=())
    tiny: bool = False
    head: str = "auto"
    devices: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ParameterError(f"name={self.name!r} is not valid; give a model name, hub id or folder")
        check_choice("weights", self.weights, WEIGHTS)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("head", self.head, HEADS)
        check_device("device", self.device, allow_auto=True)
        if self.devices is not None and self.device != "auto":
            raise ParameterError(f"devices={self.devices!r} is only valid with device='auto'")
        if self.layers is not None:
            check_int("layers", self.layers)
        object.__setattr__(self, "overrides", _freeze_overrides(self.overrides))

    def for_cell(self, dtype: str, device: str, devices: tuple[int, ...] | None = None) -> ModelSpec:
        """This spec as a sweep config names it (dtype and device left to the grid), completed for one cell."""
        return replace(self, dtype=dtype, device=device, devices=devices)

    def entry_dict(self) -> dict[str, Any]:
        """What a sweep config entry names: plain data for YAML, JSON and the cell id hash.

        dtype, device and head are not in it: the sweep's grid (and workload) give them, so
        a cell's id is the same whichever way its model was written.
        """
        return {"name": self.name, "weights": self.weights, "layers": self.layers,
                "tiny": self.tiny, "overrides": [[k, v] for k, v in self.overrides]}

    @classmethod
    def parse(cls, value: Any, weights: str = "auto", layers: int | None = None) -> ModelSpec:
        """A model entry: a name, a mapping of :data:`ENTRY_KEYS`, or a spec already parsed.

        The one parser of a model, wherever it is written: a chapter's ``models``
        parameter (:func:`parse_models`), a sweep config's ``models`` list and the
        :meth:`entry_dict` a cell process reads back all come through here, so a
        model is checked by one set of rules and named by one type. A name or a
        mapping without ``weights`` or ``layers`` takes the given ones. A spec
        must be an entry (:attr:`is_entry`): dtype and device come from the
        sweep's grid, the head from the workload.
        """
        if isinstance(value, ModelSpec):
            if not value.is_entry:
                raise ParameterError(f"models entry {value.name!r} sets dtype, device or head; in a sweep config "
                                     "those come from the grid (dtypes, device) and the workload")
            return value
        if isinstance(value, str):
            return cls(value, weights, layers=layers)
        if not isinstance(value, Mapping):
            raise ParameterError(f"models entry {value!r} is not valid; give a model name or "
                                 "{name, weights: real|random|auto, layers: N, tiny, overrides}")
        for key in value:
            check_choice("models[].key", key, ENTRY_KEYS)
        name = value.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ParameterError(f"models entry {dict(value)!r} is not valid; it needs a name")
        given_weights, given_layers = value.get("weights", weights), value.get("layers", layers)
        check_choice(f"models[{name}].weights", given_weights, WEIGHTS)
        if given_layers is not None:
            check_int(f"models[{name}].layers", given_layers)
        tiny = check_bool(f"models[{name}].tiny", value.get("tiny", False))
        return cls(name, given_weights, layers=given_layers, tiny=tiny,
                   overrides=_override_pairs(name, value.get("overrides")))

    def config_entry(self) -> dict[str, Any]:
        """This spec as a model entry of a sweep config written for a reader: only what differs from the defaults."""
        out: dict[str, Any] = {"name": self.name, "weights": self.weights}
        if self.layers is not None:
            out["layers"] = self.layers
        if self.tiny:
            out["tiny"] = True
        if self.overrides:
            out["overrides"] = dict(self.overrides)
        return out

    @property
    def is_entry(self) -> bool:
        """True for a spec a sweep config may hold: dtype, device and head left at their defaults."""
        return (self.dtype, self.device, self.head, self.devices) == ("float32", "cpu", "auto", None)

    @property
    def overrides_dict(self) -> dict[str, Any]:
        """The config overrides as a plain dict."""
        return dict(self.overrides)

    @property
    def dtype_bytes(self) -> int:
        """Bytes per parameter in this dtype (before any quantization)."""
        return DTYPE_BYTES[self.dtype]


def parse_models(values: Sequence[Any], weights: str = "auto", layers: int | None = None) -> tuple[ModelSpec, ...]:
    """A chapter's ``models`` (names, mappings or specs) as specs; names take ``weights`` and ``layers``."""
    check_choice("weights", weights, WEIGHTS)
    if layers is not None:
        check_int("layers", layers)
    return tuple(ModelSpec.parse(v, weights, layers) for v in values)
