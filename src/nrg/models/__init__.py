"""Model specs and loading: real weights (folder, hub, embedded packages) or random weights.

``load(ModelSpec(...))`` returns a :class:`LoadedModel`; quantization and
pruning are applied afterwards by :mod:`nrg.compress`. Importing this package
is light (no torch); torch and transformers load inside the functions.
"""
from __future__ import annotations

from nrg.models.load import (
    check_device_available,
    check_device_support,
    estimated_weight_bytes,
    load,
    param_count,
    plan,
)
from nrg.models.loaded import LoadedModel
from nrg.models.real import cache_root, converted_folder, real_available_offline
from nrg.models.registry import EMBEDDED_MODELS, PAPER_MODELS, ModelInfo, known_models, resolve
from nrg.models.spec import DTYPES, HEADS, WEIGHTS, ModelSpec

__all__ = [
    "DTYPES", "EMBEDDED_MODELS", "HEADS", "PAPER_MODELS", "WEIGHTS", "LoadedModel", "ModelInfo",
    "ModelSpec", "cache_root", "check_device_available", "check_device_support", "converted_folder", "estimated_weight_bytes",
    "known_models", "load", "param_count", "plan", "real_available_offline", "resolve",
]
