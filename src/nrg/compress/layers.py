"""Finding the weight matrices that compression acts on, whatever the architecture.

Why a module of its own: quantization and pruning must agree on which layers
they touch (the linear layers of the blocks, never the output head or the
classifier, which are tied to the embeddings or freshly trained), and GPT-2's
``Conv1D`` (an ``nn.Linear`` with a transposed weight) must look like a Linear
to both. :func:`as_linear` swaps each ``Conv1D`` for the equivalent
``nn.Linear`` -- same numbers, one code path after that.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    import torch

    from nrg.models.loaded import LoadedModel

#: A bare module or a LoadedModel: compression hands back the same kind it was given.
ModelOrLoaded = TypeVar("ModelOrLoaded", bound="torch.nn.Module | LoadedModel")

# Heads are left intact: lm_head is tied to the embeddings in many models, and a
# classifier / score head is trained from scratch in the fine-tuning study.
SKIP_NAMES: tuple[str, ...] = ("lm_head", "classifier", "score", "qa_outputs")


def unwrap(model_or_loaded: torch.nn.Module | LoadedModel) -> torch.nn.Module:
    """The ``torch.nn.Module`` inside an ``nrg.models.LoadedModel`` (or the module itself)."""
    import torch

    if isinstance(model_or_loaded, torch.nn.Module):
        return model_or_loaded
    inner = getattr(model_or_loaded, "model", None)
    if isinstance(inner, torch.nn.Module):
        return inner
    raise TypeError(f"expected a torch.nn.Module or a LoadedModel, got {type(model_or_loaded).__name__}")


def rewrap(model_or_loaded: ModelOrLoaded, module: torch.nn.Module) -> ModelOrLoaded:
    """Return ``module`` in the same kind of container as ``model_or_loaded`` came in."""
    import dataclasses

    import torch

    if isinstance(model_or_loaded, torch.nn.Module):
        return cast("ModelOrLoaded", module)  # a bare module came in, so a bare module goes out
    if dataclasses.is_dataclass(model_or_loaded) and not isinstance(model_or_loaded, type):
        return dataclasses.replace(model_or_loaded, model=module)
    model_or_loaded.model = module
    return model_or_loaded


def skipped(name: str) -> bool:
    """True for head layers (and LoRA adapters) that compression leaves alone."""
    return any(part in SKIP_NAMES or part.startswith("lora_") for part in name.split("."))


def as_linear(model: Any) -> int:
    """Replace every transformers ``Conv1D`` with an equal ``nn.Linear`` in place; returns how many."""
    import torch

    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers is a dependency
        return 0
    count = 0
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                nx, nf = child.weight.shape
                linear = torch.nn.Linear(nx, nf, bias=child.bias is not None,
                                         device=child.weight.device, dtype=child.weight.dtype)
                with torch.no_grad():
                    linear.weight.copy_(child.weight.t())
                    if child.bias is not None:
                        linear.bias.copy_(child.bias)
                linear.weight.requires_grad_(child.weight.requires_grad)
                setattr(parent, child_name, linear)
                count += 1
    return count


def linear_layers(model: Any) -> list[tuple[str, Any]]:
    """``(name, module)`` of the float ``nn.Linear`` layers compression may touch (heads skipped)."""
    import torch

    return [(name, module) for name, module in model.named_modules()
            if type(module) is torch.nn.Linear and not skipped(name)]


def count_params(model: Any) -> tuple[int, int]:
    """(all parameters, non-zero parameters) of ``model``; quantized storage counts as its elements."""
    total = nonzero = 0
    for param in model.parameters():
        total += param.numel()
        if param.is_floating_point():
            nonzero += int((param.detach() != 0).sum())
        else:
            nonzero += param.numel()
    return total, nonzero


def device_of(model: Any) -> torch.device:
    """The device of the model's first parameter (CPU for a model without any)."""
    import torch

    for param in model.parameters():
        return cast("torch.device", param.device)
    return torch.device("cpu")
