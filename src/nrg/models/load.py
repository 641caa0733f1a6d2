"""``load(spec)``: check the spec against the machine, then build or read the model.

Compression is not done here: :mod:`nrg.compress` transforms the returned
:class:`LoadedModel` afterwards (through the ``quant`` / ``prune`` axes).
"""
from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError, check_device, device_index
from nrg.models import build, real
from nrg.models.loaded import LoadedModel
from nrg.models.real import real_available_offline
from nrg.models.registry import Resolved, resolve
from nrg.models.spec import ModelSpec

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def check_device_available(parameter: str, device: str) -> str:
    """``device`` is well formed and exists on this machine (``cuda:7`` on a 1-GPU machine does not)."""
    check_device(parameter, device)
    if not device.startswith("cuda"):
        return device
    import torch
    if not torch.cuda.is_available():
        raise ParameterError(f"{parameter}={device!r} is not valid here: CUDA is not available; "
                             f"use {parameter}='cpu'")
    count = torch.cuda.device_count()
    if (device_index(device) or 0) >= count:
        raise ParameterError(f"{parameter}={device!r} is not valid; this machine has {count} CUDA "
                             f"device(s): choose one of 'cuda', "
                             + ", ".join(f"'cuda:{i}'" for i in range(count)))
    return device


def check_device_support(spec: ModelSpec) -> None:
    """Refuse device / dtype combinations this machine cannot run, before loading."""
    import torch
    if spec.device == "auto":
        _check_sharded(spec, torch.cuda.is_available(), torch.cuda.device_count())
    else:
        check_device_available("device", spec.device)
    if spec.device.startswith("cuda") or spec.device == "auto":
        if spec.dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
            raise ParameterError(f"dtype='bfloat16' is not supported on {spec.device}; "
                                 f"use 'float16' or 'float32'")
    elif spec.dtype != "float32":
        warnings.warn(f"dtype={spec.dtype!r} on CPU is much slower than float32 (no native units); "
                      f"timings will not be representative", stacklevel=3)


def _check_sharded(spec: ModelSpec, cuda_available: bool, count: int) -> None:
    """``device='auto'`` shards over GPUs: CUDA must be there, with every index of ``devices``."""
    if not cuda_available:
        raise ParameterError("device='auto' shards the model over GPUs, but CUDA is not available; "
                             "use device='cpu'")
    missing = [i for i in spec.devices or () if i >= count]
    if missing:
        raise ParameterError(f"devices={list(spec.devices or ())!r} is not valid; this machine has "
                             f"{count} CUDA device(s) (indices 0 to {count - 1})")


def resolve_weights(spec: ModelSpec, resolved: Resolved) -> str:
    """``auto`` becomes ``real`` when real weights load offline, else ``random``."""
    if spec.weights != "auto":
        return spec.weights
    return "real" if real_available_offline(resolved) else "random"


@dataclass(frozen=True)
class Plan:
    """What load() will do, decided without touching weights."""

    resolved: Resolved
    weights: str
    config: Any
    head: str
    n_params: int
    shaped: bool      # layers / overrides / tiny change the published config


def plan(spec: ModelSpec) -> Plan:
    """Resolve name, weights, config, head and parameter count (meta device, no allocation)."""
    resolved = resolve(spec.name)
    weights = resolve_weights(spec, resolved)
    tiny = resolved.info.tiny if resolved.info is not None else {}
    base = build.base_config_dict(resolved)   # known models: the shipped copy of the published config
    cfg = build.shaped_config_dict(base, spec, tiny)
    config = build.make_config(cfg)
    head = build.resolve_head(config, spec.head)
    n_params = build.meta_param_count(config, head)
    shaped = spec.tiny or spec.layers is not None or bool(spec.overrides)
    return Plan(resolved, weights, config, head, n_params, shaped)


def _real_source(resolved: Resolved) -> tuple[str | Path, bool]:
    if resolved.kind == "folder" and resolved.path is not None:
        return resolved.path, False
    info = resolved.info
    if info is not None and info.embedded:
        return real.embedded_folder(info)
    assert resolved.hub_id is not None
    return resolved.hub_id, False


def local_tokenizer(p: Plan) -> PreTrainedTokenizerBase | None:
    """The tokenizer ``load`` would use for plan ``p`` when it is on this machine (embedded, folder).

    Lets a sweep check prompt lengths before any work. Random weights have no
    tokenizer, and hub sources are skipped: a check must not reach the network.
    """
    if p.weights != "real" or p.resolved.kind == "hub":
        return None
    info = p.resolved.info
    if p.resolved.kind == "known" and (info is None or not info.embedded):
        return None
    try:
        source, _ = _real_source(p.resolved)
    except NotImplementedError:  # a missing optional package: the cell says so when it runs
        return None
    return _tokenizer_at(str(source))


@functools.lru_cache(maxsize=8)
def _tokenizer_at(source: str) -> PreTrainedTokenizerBase | None:
    """A sweep is checked several times (chapter, then runner): read each tokenizer once."""
    return real.load_tokenizer(source)


def load(spec: ModelSpec) -> LoadedModel:
    """Load ``spec``: real weights (folder, hub, embedded) or random weights from a config."""
    check_device_support(spec)
    start = time.perf_counter()
    p = plan(spec)
    build.check_fits(spec, p.n_params, sharded_free_bytes(spec))
    auto_cls = build.auto_class(p.head)
    here = dataclasses.replace(spec, device="cpu", devices=None) if spec.device == "auto" else spec
    tokenizer = None
    from_cache = False
    if p.weights == "real":
        source, from_cache = _real_source(p.resolved)
        model = real.load_pretrained(auto_cls, source, p.config if p.shaped else None,
                                     here.dtype, here.device)
        tokenizer = real.load_tokenizer(source)
        source_text = str(source)
    else:
        model = build.build_random(p.config, p.head, here)
        source_text = str(p.resolved.info.config_path) if p.resolved.info else str(
            p.resolved.path or p.resolved.hub_id)
    if spec.device == "auto":  # built on the CPU above: spread over the cell's GPUs
        from nrg.models import placement
        model = placement.shard(model, placement.cuda_indices("auto", spec.devices))
    model.eval()
    config = model.config
    name = p.resolved.info.name if p.resolved.info else spec.name
    return LoadedModel(
        spec=spec, model=model, tokenizer=tokenizer,
        n_params=sum(t.numel() for t in model.parameters()), weights=p.weights,
        is_encoder_decoder=bool(getattr(config, "is_encoder_decoder", False)),
        max_context_tokens=build.context_limit(config), vocab_size=int(config.vocab_size),
        name=name, source=source_text, head=p.head, from_cache=from_cache,
        load_time_s=time.perf_counter() - start)


def sharded_free_bytes(spec: ModelSpec) -> int | None:
    """Free memory of all the GPUs a sharded model spreads over (None: one device, as before)."""
    if spec.device != "auto":
        return None
    from nrg.models import placement
    return sum(placement.free_memory_bytes(placement.cuda_indices("auto", spec.devices)).values())


def param_count(spec: ModelSpec) -> int:
    """Parameters ``spec`` would load, without allocating weights."""
    return plan(spec).n_params


def estimated_weight_bytes(spec: ModelSpec) -> int:
    """Bytes of weights in the spec's dtype (before quantization)."""
    return param_count(spec) * spec.dtype_bytes
