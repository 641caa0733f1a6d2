"""Configs and random-weight models: shape overrides, parameter counts, memory checks.

Random weights let the systems side of an experiment (time, energy, memory)
run at full architectural size without downloading anything; quality needs
real weights. Counting parameters builds the model on the ``meta`` device,
so a 7B model is counted in milliseconds without allocating 28 GB.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from nrg.errors import ParameterError
from nrg.models.registry import Resolved
from nrg.models.spec import ModelSpec

if TYPE_CHECKING:
    from transformers import PreTrainedConfig, PreTrainedModel

ENCODER_ONLY_TYPES = frozenset({"bert", "roberta", "distilbert", "albert", "electra", "deberta",
                                "deberta-v2", "xlm-roberta", "mpnet"})
T5_PRACTICAL_CONTEXT = 512   # T5 was pre-trained on 512-token inputs (relative attention has no hard cap)
_RAM_FRACTION = 0.9          # refuse when weights alone need more than this share of free memory


class AutoModelClass(Protocol):
    """The two calls nrg makes on a transformers ``AutoModel...`` class (untyped in transformers)."""

    def from_config(self, config: PreTrainedConfig, **kwargs: Any) -> PreTrainedModel:
        """The architecture of ``config`` with random weights."""

    def from_pretrained(self, source: str | Path, **kwargs: Any) -> PreTrainedModel:
        """Saved weights from a folder or a hub id."""


def base_config_dict(resolved: Resolved) -> dict[str, Any]:
    """The unmodified config dict of a known model, a folder, or a hub id (hub: network or cache)."""
    if resolved.kind == "known" and resolved.info is not None:
        return resolved.info.config_dict()
    if resolved.kind == "folder" and resolved.path is not None:
        return cast("dict[str, Any]", json.loads((resolved.path / "config.json").read_text()))
    if resolved.hub_id is None:
        raise ParameterError(f"{resolved!r} names no known model, folder or hub id")
    from transformers import AutoConfig
    return cast("dict[str, Any]", AutoConfig.from_pretrained(resolved.hub_id).to_dict())


def _canonical_key(model_type: str, key: str) -> str:
    """Map generic names (``hidden_size``) onto the config class's own (``n_embd`` for GPT-2)."""
    from transformers import AutoConfig
    cls = type(AutoConfig.for_model(model_type))
    return str(getattr(cls, "attribute_map", {}).get(key, key))


def _layer_fields(model_type: str, layers: int) -> dict[str, Any]:
    """Config fields that set depth, per architecture (some store it under several names)."""
    if model_type in ("gpt2", "gptj"):
        return {"n_layer": layers}
    if model_type == "gpt_neo":
        pattern: list[Any] = [[["global", "local"], layers // 2]] if layers >= 2 else []
        if layers % 2:
            pattern.append([["global"], 1])
        return {"num_layers": layers, "attention_types": pattern,
                "attention_layers": (["global", "local"] * layers)[:layers]}
    if model_type == "t5":
        return {"num_layers": layers, "num_decoder_layers": layers}
    return {"num_hidden_layers": layers}


def config_fields(model_type: str) -> tuple[set[str], list[str]]:
    """Every key a config of ``model_type`` takes, and the ones specific to it (for messages)."""
    from transformers import AutoConfig, PretrainedConfig

    config = AutoConfig.for_model(model_type)
    aliases = set(getattr(type(config), "attribute_map", {}))
    settable = {name for cls in type(config).__mro__ for name, value in vars(cls).items()
                if isinstance(value, property) and value.fset is not None}   # e.g. num_labels
    own = set(config.to_dict()) - set(PretrainedConfig().to_dict())
    return set(config.to_dict()) | aliases | settable, sorted(own | aliases)


def check_override_keys(model_type: str, spec: ModelSpec) -> None:
    """An override key the config class does not have would be stored and silently ignored."""
    if not spec.overrides:
        return
    valid, shown = config_fields(model_type)
    unknown = sorted(k for k in spec.overrides_dict if k not in valid)
    if unknown:
        raise ParameterError(
            f"overrides of model {spec.name!r}: unknown key(s) {unknown}; valid keys of its "
            f"{model_type} config: {', '.join(shown)}")


def model_depth(cfg: dict[str, Any]) -> int | None:
    """Number of layers of a config dict (the field name differs per architecture)."""
    value = cfg.get(_canonical_key(str(cfg["model_type"]), "num_hidden_layers"))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def shaped_config_dict(base: dict[str, Any], spec: ModelSpec, tiny: dict[str, Any]) -> dict[str, Any]:
    """Apply ``tiny`` widths, then ``layers``, then the spec's explicit overrides.

    ``layers`` may only truncate: it must not exceed the depth of the published
    (or overridden) config, whose weights or shape it stands for.
    """
    cfg = {k: v for k, v in base.items() if not k.startswith("_") and k != "transformers_version"}
    model_type = cfg.get("model_type")
    if not model_type:
        raise ParameterError(f"model {spec.name!r}: config has no model_type")
    check_override_keys(model_type, spec)
    changes: dict[str, Any] = dict(tiny) if spec.tiny else {}
    depth = model_depth({**cfg, **{_canonical_key(model_type, k): v for k, v in spec.overrides}})
    if spec.layers is not None:
        if depth is not None and spec.layers > depth:
            raise ParameterError(f"layers={spec.layers} is not valid for model {spec.name!r}; "
                                 f"it has {depth} layers, choose layers in [1, {depth}]")
        changes.update(_layer_fields(model_type, spec.layers))
    changes.update(spec.overrides_dict)
    for key, value in changes.items():
        cfg[_canonical_key(model_type, key)] = value
    if spec.tiny and "head_dim" in cfg and model_type != "t5":
        cfg["head_dim"] = cfg[_canonical_key(model_type, "hidden_size")] // cfg[
            _canonical_key(model_type, "num_attention_heads")]
    return cfg


def make_config(cfg: dict[str, Any]) -> PreTrainedConfig:
    """A transformers config object from a plain dict (offline), with shapes that fit together."""
    from transformers import AutoConfig
    rest = dict(cfg)
    model_type = rest.pop("model_type")
    try:
        config = AutoConfig.for_model(model_type, **rest)
    except (ValueError, TypeError) as exc:   # strict config validation (e.g. heads do not divide width)
        raise ParameterError(f"config overrides give an invalid {model_type} config: {exc}") from None
    check_shapes(config, explicit_head_dim=cfg.get("head_dim") is not None)
    return config


def check_shapes(config: Any, explicit_head_dim: bool = False) -> None:
    """Widths that attention can split: hidden % heads (unless head_dim is given), heads % kv heads.

    transformers checks this only for some architectures, and only when the
    model is built or run -- inside a cell, after the sweep has started.
    """
    hidden, heads = _positive(config, "hidden_size"), _positive(config, "num_attention_heads")
    kv_heads = _positive(config, "num_key_value_heads") or (
        _positive(config, "num_kv_heads") if getattr(config, "new_decoder_architecture", False) else None)
    t5_like = getattr(config, "model_type", "") == "t5"   # d_kv sets the head width
    if hidden and heads and not explicit_head_dim and not t5_like and hidden % heads:
        raise ParameterError(
            f"overrides give hidden_size={hidden}, which num_attention_heads={heads} does not divide; "
            "choose a hidden size that is a multiple of the number of heads")
    if heads and kv_heads and heads % kv_heads:
        raise ParameterError(
            f"overrides give num_attention_heads={heads}, which num_key_value_heads={kv_heads} does "
            "not divide; choose a number of key/value heads that divides the number of heads")
    rotary, head_dim = _positive(config, "rotary_dim"), _positive(config, "head_dim")
    head_dim = head_dim or (hidden // heads if hidden and heads else None)
    if rotary and head_dim and rotary > head_dim:
        raise ParameterError(f"overrides give rotary_dim={rotary}, more than the head width {head_dim}; "
                             f"choose rotary_dim <= {head_dim}")


def resolve_head(config: Any, head: str) -> str:
    """The head ``auto`` stands for: seq2seq for T5, bare encoder for BERT, else causal LM."""
    if head != "auto":
        return head
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq-lm"
    if config.model_type in ENCODER_ONLY_TYPES:
        return "base"
    return "causal-lm"


def auto_class(head: str) -> AutoModelClass:
    """The transformers ``AutoModel...`` class that builds a model with this head."""
    import transformers
    names = {"causal-lm": "AutoModelForCausalLM", "seq2seq-lm": "AutoModelForSeq2SeqLM",
             "base": "AutoModel", "sequence-classification": "AutoModelForSequenceClassification"}
    auto: AutoModelClass = getattr(transformers, names[head])
    return auto


#: Parameter counts already computed, by (the config as JSON, head): the same shape is planned many
#: times (``nrg reference --plan`` plans 22 cells of 7 shapes; each build on the meta device takes ~70 ms).
_PARAM_COUNTS: dict[tuple[str, str], int] = {}


def meta_param_count(config: Any, head: str) -> int:
    """Parameters of the model this config builds, counted without allocating weights.

    Building it (on the meta device) is also the last shape check: a config
    that cannot be built is a bad parameter, refused before any work. A config
    built before (same JSON, same head) is not built again; one that failed is.
    """
    try:
        key = (config.to_json_string(use_diff=False), head)
    except (TypeError, ValueError):      # a field JSON cannot hold: count without remembering
        return _count_on_meta(config, head)
    if key not in _PARAM_COUNTS:
        _PARAM_COUNTS[key] = _count_on_meta(config, head)
    return _PARAM_COUNTS[key]


def _count_on_meta(config: Any, head: str) -> int:
    import torch
    try:
        with torch.device("meta"):
            model = auto_class(head).from_config(config)
    except Exception as exc:  # transformers raises many kinds (KeyError for an activation)
        raise ParameterError(f"the {config.model_type} config (with its overrides) does not build "
                             f"a model: {type(exc).__name__}: {exc}") from None
    return sum(p.numel() for p in model.parameters())


def context_limit(config: Any) -> int:
    """Longest input the model was built for: position table size, or T5's practical 512."""
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return T5_PRACTICAL_CONTEXT


def available_memory_bytes(device: str) -> int:
    """Free memory on the device that will hold the weights."""
    if device.startswith("cuda"):
        import torch
        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        return int(torch.cuda.mem_get_info(index)[0])
    import psutil
    return int(psutil.virtual_memory().available)


def check_fits(spec: ModelSpec, n_params: int, available_bytes: int | None = None) -> int:
    """Refuse, before allocating, a model whose weights alone exceed free memory."""
    need = n_params * spec.dtype_bytes
    free = available_memory_bytes(spec.device) if available_bytes is None else available_bytes
    if need > _RAM_FRACTION * free:
        raise ParameterError(
            f"model {spec.name!r} ({n_params / 1e9:.2f}B parameters) needs about {need / 2**30:.1f} GiB "
            f"of weights in {spec.dtype} but {spec.device} has {free / 2**30:.1f} GiB free; "
            f"set layers=N to truncate depth (e.g. layers=2) or use a smaller dtype / a larger device")
    return need


def working_set_bytes(config: Any, dtype_bytes: int, batch_size: int, tokens: int) -> dict[str, int]:
    """Memory a generation needs beyond the weights: KV cache, attention scores and logits.

    An estimate from the shapes (eager attention, fp32 logits over the full
    sequence): enough to refuse ``batch_sizes: [10000000]`` before any work,
    not a promise that a config under it fits.
    """
    layers = _positive(config, "num_hidden_layers") or 1
    heads = _positive(config, "num_attention_heads") or 1
    hidden = _positive(config, "hidden_size") or 1
    head_dim = _positive(config, "head_dim", "d_kv") or max(hidden // heads, 1)
    kv_heads = _positive(config, "num_key_value_heads", "num_kv_heads") or heads
    rows = batch_size * tokens
    return {"kv_cache": 2 * layers * rows * kv_heads * head_dim * dtype_bytes,
            "attention": batch_size * heads * tokens * tokens * dtype_bytes,
            "logits": rows * (_positive(config, "vocab_size") or 1) * 4}


def _positive(config: Any, *names: str) -> int | None:
    """The first of ``names`` that the config holds as a positive integer."""
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def check_workload_fits(spec: ModelSpec, config: Any, n_params: int, batch_size: int, tokens: int,
                        available_bytes: int | None = None) -> int:
    """Refuse a batch x length that, with the weights, exceeds free memory; returns the bytes needed."""
    extra = working_set_bytes(config, spec.dtype_bytes, batch_size, tokens)
    weights = n_params * spec.dtype_bytes
    need = weights + sum(extra.values())
    free = available_memory_bytes(spec.device) if available_bytes is None else available_bytes
    if need > _RAM_FRACTION * free:
        parts = ", ".join(f"{k.replace('_', ' ')} {v / 2**30:.1f} GiB" for k, v in extra.items())
        raise ParameterError(
            f"batch_sizes={batch_size} x {tokens} tokens (input_tokens + output_tokens) on model "
            f"{spec.name!r} needs about {need / 2**30:.1f} GiB (weights {weights / 2**30:.1f} GiB, "
            f"{parts}) but {spec.device} has {free / 2**30:.1f} GiB free; lower batch_sizes, "
            "input_tokens or output_tokens, or set layers=N")
    return need


def build_random(config: Any, head: str, spec: ModelSpec, seed: int = 0) -> PreTrainedModel:
    """Instantiate the architecture with random weights directly on the target device."""
    import torch
    torch.manual_seed(seed)
    dtype = getattr(torch, spec.dtype)
    with torch.device(spec.device):
        model = auto_class(head).from_config(config, dtype=dtype)
    return model


