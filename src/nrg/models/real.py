"""Real weights: a local folder, a hub id, or a model embedded in a registry package.

SmolLM2 ships as GGUF; transformers dequantizes it to fp32 in ~25 s. It is
converted once to a safetensors folder in the nrg cache (written to a temp
folder and renamed, so a crash never leaves a half-written model), after which
loads take well under a second. Converting needs the optional ``gguf`` package
(the ``embedded`` extra); without it and without a converted copy, ``auto``
weights resolve to random and ``real`` ones make the cell ``unsupported``.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError
from nrg.models.registry import ModelInfo, Resolved, hub_cached, package_folder

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from nrg.models.build import AutoModelClass

_MARKER = "nrg-source.json"


def cache_root() -> Path:
    """``$NRG_CACHE_DIR`` or ``~/.cache/nrg``; converted models live under ``<root>/models/<name>``."""
    return Path(os.environ.get("NRG_CACHE_DIR") or Path.home() / ".cache" / "nrg").expanduser()


def converted_folder(info: ModelInfo) -> Path:
    """Where a model converted from its embedded GGUF file is cached (converted once, reused)."""
    return cache_root() / "models" / info.name


def _source_stamp(gguf_path: Path) -> dict[str, Any]:
    import transformers
    stat = gguf_path.stat()
    return {"gguf": str(gguf_path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "transformers": transformers.__version__}


def _cache_valid(folder: Path, stamp: dict[str, Any]) -> bool:
    marker = folder / _MARKER
    if not marker.is_file():
        return False
    try:
        return bool(json.loads(marker.read_text()) == stamp)
    except ValueError:
        return False


def _gguf_imports() -> bool:
    try:
        import gguf  # noqa: F401
    except ImportError:
        return False
    return True


def gguf_readable(info: ModelInfo) -> bool:
    """Whether the embedded GGUF of ``info`` can be used here: ``gguf`` imports, or a converted copy is cached."""
    if _gguf_imports():
        return True
    folder = package_folder(info)
    if folder is None or info.gguf_file is None or not (folder / info.gguf_file).is_file():
        return False
    return _cache_valid(converted_folder(info), _source_stamp(folder / info.gguf_file))


def _convert_gguf(gguf_path: Path, target: Path, stamp: dict[str, Any]) -> None:
    """Dequantize the GGUF file and save model + tokenizer as a safetensors folder, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    # The weights are plain fp32 after dequantization; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None  # type: ignore[assignment]  # torch types Module.__setattr__ for tensors and modules only
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _MARKER).write_text(json.dumps(stamp))
        if target.exists():                 # stale conversion: replace it
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def embedded_folder(info: ModelInfo) -> tuple[Path, bool]:
    """A loadable folder for an embedded model, and whether it came from the conversion cache."""
    folder = package_folder(info)
    present = folder is not None and (folder / (info.gguf_file or "config.json")).is_file()
    if not present:
        raise ParameterError(
            f"model {info.name!r} with weights='real' needs the package that embeds it: "
            f"pip install {info.package_pip} (or use weights='random')")
    assert folder is not None
    if info.gguf_file is None:
        return folder, False
    gguf_path = folder / info.gguf_file
    target = converted_folder(info)
    stamp = _source_stamp(gguf_path)
    if _cache_valid(target, stamp):
        return target, True
    if not _gguf_imports():
        raise NotImplementedError(
            f"model {info.name!r} with weights='real': converting its embedded GGUF needs the gguf package "
            f"(pip install gguf, or nrg's [embedded] extra), and no converted copy is cached in {target}")
    _convert_gguf(gguf_path, target, stamp)
    return target, False


def load_tokenizer(source: str | Path) -> PreTrainedTokenizerBase | None:
    """The tokenizer saved with a model, or None when the source has none."""
    from transformers import AutoTokenizer
    try:
        return AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError, TypeError):
        return None


def load_pretrained(auto_cls: AutoModelClass, source: str | Path, config: Any | None, dtype: str,
                    device: str) -> PreTrainedModel:
    """Real weights through transformers' Auto classes (hub ids need network or the HF cache)."""
    import torch
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if config is not None:
        kwargs["config"] = config
    if device.startswith("cuda"):
        kwargs["device_map"] = device
    try:
        model = auto_cls.from_pretrained(str(source), **kwargs)
    except OSError as exc:
        raise OSError(f"could not load real weights from {str(source)!r} ({exc}); without network "
                      f"use weights='random' for the architecture only") from exc
    # transformers declares ``to`` through functools.wraps(nn.Module.to), which mypy reads as unbound
    return model if device.startswith("cuda") else model.to(device)  # type: ignore[arg-type]


def embedded_available(info: ModelInfo) -> bool:
    """True when the model's embedded package is installed and holds its weights."""
    folder = package_folder(info)
    if folder is None:
        return False
    if info.gguf_file:
        return (folder / info.gguf_file).is_file() and gguf_readable(info)
    return (folder / "config.json").is_file()


def real_available_offline(resolved: Resolved) -> bool:
    """Whether real weights can be loaded without network for this name."""
    if resolved.kind == "folder":
        return True
    if resolved.kind == "known" and resolved.info is not None and resolved.info.embedded:
        return embedded_available(resolved.info) or hub_cached(resolved.info.hub_id)
    return resolved.hub_id is not None and hub_cached(resolved.hub_id)
