"""What to load: a frozen, validated model spec.

Validation that needs no torch (names of dtypes, device syntax, weights kind,
depth) happens when the spec is built, so a bad sweep fails before any model
is touched; checks that need the machine (is CUDA there, does bf16 work) run in
:func:`nrg.models.load` before loading.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from nrg.errors import ParameterError, check_choice, check_device, check_int

WEIGHTS: tuple[str, ...] = ("auto", "real", "random")
DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")
HEADS: tuple[str, ...] = ("auto", "causal-lm", "seq2seq-lm", "base", "sequence-classification")
DTYPE_BYTES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2}



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
    def from_entry(cls, d: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`entry_dict`; missing keys take the defaults."""
        return cls(d["name"], d.get("weights", "auto"), layers=d.get("layers"), tiny=bool(d.get("tiny", False)),
                   overrides=tuple((str(k), v) for k, v in d.get("overrides") or ()))

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
