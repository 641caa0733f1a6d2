"""Configs and random-weight models: shape overrides, parameter counts, memory checks.

Random weights let the systems side of an experiment (time, energy, memory)
run at full architectural size without downloading anything; quality needs
real weights. Counting parameters builds the model on the ``meta`` device,
so a 7B model is counted in milliseconds without allocating 28 GB.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nrg.errors import ParameterError
from nrg.models.registry import Resolved
from nrg.models.spec import ModelSpec

ENCODER_ONLY_TYPES = frozenset({"bert", "roberta", "distilbert", "albert", "electra", "deberta",
                                "deberta-v2", "xlm-roberta", "mpnet"})
T5_PRACTICAL_CONTEXT = 512   # T5 was pre-trained on 512-token inputs (relative attention has no hard cap)
_RAM_FRACTION = 0.9          # refuse when weights alone need more than this share of free memory


def base_config_dict(resolved: Resolved) -> dict[str, Any]:
    """The unmodified config dict of a known model, a folder, or a hub id (hub: network or cache)."""
    if resolved.kind == "known" and resolved.info is not None:
        return resolved.info.config_dict()
    if resolved.kind == "folder" and resolved.path is not None:
        return json.loads((resolved.path / "config.json").read_text())
    if resolved.hub_id is None:
        raise ParameterError(f"{resolved!r} names no known model, folder or hub id")
    from transformers import AutoConfig
    return AutoConfig.from_pretrained(resolved.hub_id).to_dict()


def _canonical_key(model_type: str, key: str) -> str:
    """Map generic names (``hidden_size``) onto the config class's own (``n_embd`` for GPT-2)."""
    from transformers import AutoConfig
    cls = type(AutoConfig.for_model(model_type))
    return getattr(cls, "attribute_map", {}).get(key, key)


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


def shaped_config_dict(base: dict[str, Any], spec: ModelSpec, tiny: dict[str, Any]) -> dict[str, Any]:
    """Apply ``tiny`` widths, then ``layers``, then the spec's explicit overrides."""
    cfg = {k: v for k, v in base.items() if not k.startswith("_") and k != "transformers_version"}
    model_type = cfg.get("model_type")
    if not model_type:
        raise ParameterError(f"model {spec.name!r}: config has no model_type")
    changes: dict[str, Any] = dict(tiny) if spec.tiny else {}
    if spec.layers is not None:
        changes.update(_layer_fields(model_type, spec.layers))
    changes.update(spec.overrides_dict)
    for key, value in changes.items():
        cfg[_canonical_key(model_type, key)] = value
    if spec.tiny and "head_dim" in cfg and model_type != "t5":
        cfg["head_dim"] = cfg[_canonical_key(model_type, "hidden_size")] // cfg[
            _canonical_key(model_type, "num_attention_heads")]
    return cfg


def make_config(cfg: dict[str, Any]) -> Any:
    """A transformers config object from a plain dict (offline)."""
    from transformers import AutoConfig
    rest = dict(cfg)
    model_type = rest.pop("model_type")
    try:
        return AutoConfig.for_model(model_type, **rest)
    except ValueError as exc:   # strict config validation (e.g. heads do not divide width)
        raise ParameterError(f"config overrides give an invalid {model_type} config: {exc}") from exc


def resolve_head(config: Any, head: str) -> str:
    """The head ``auto`` stands for: seq2seq for T5, bare encoder for BERT, else causal LM."""
    if head != "auto":
        return head
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq-lm"
    if config.model_type in ENCODER_ONLY_TYPES:
        return "base"
    return "causal-lm"


def auto_class(head: str) -> Any:
    """The transformers ``AutoModel...`` class that builds a model with this head."""
    import transformers
    names = {"causal-lm": "AutoModelForCausalLM", "seq2seq-lm": "AutoModelForSeq2SeqLM",
             "base": "AutoModel", "sequence-classification": "AutoModelForSequenceClassification"}
    return getattr(transformers, names[head])


def meta_param_count(config: Any, head: str) -> int:
    """Parameters of the model this config builds, counted without allocating weights."""
    import torch
    with torch.device("meta"):
        model = auto_class(head).from_config(config)
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


def build_random(config: Any, head: str, spec: ModelSpec, seed: int = 0) -> Any:
    """Instantiate the architecture with random weights directly on the target device."""
    import torch
    torch.manual_seed(seed)
    dtype = getattr(torch, spec.dtype)
    with torch.device(spec.device):
        model = auto_class(head).from_config(config, dtype=dtype)
    return model


def folder_has_tokenizer(path: Path) -> bool:
    """True when the folder holds tokenizer files, so text tasks can render prompts for its model."""
    return any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json",
                                              "vocab.json", "spiece.model", "tokenizer.model"))
