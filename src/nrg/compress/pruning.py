"""Pruning a loaded model: unstructured, structured (MLP neurons), and 2:4 semi-structured.

Why three kinds: they trade quality for speed differently. Unstructured
magnitude pruning keeps the most quality for a given sparsity but dense
kernels still multiply the zeros, so it saves no time by itself. Structured
pruning removes whole MLP neurons -- the matrices really shrink, so every
device runs fewer FLOPs. 2:4 keeps the 2 largest of every 4 consecutive
weights along the input dimension (50% sparsity), which NVIDIA's sparse tensor
cores run at up to twice the speed; on a CPU the zeros are multiplied as usual.

Each function returns a :class:`PruneResult` with the sparsity *measured* after
pruning, over the pruned layers and over all parameters (removed weights count
as zeros), and which kernel runs the result ("dense" or "sparse-2:4").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nrg.compress.layers import as_linear, count_params, device_of, linear_layers

if TYPE_CHECKING:
    import torch

# (input-side layers, output-side layer) of an MLP block, relative to the module holding them.
MLP_PATTERNS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("gate_proj", "up_proj"), "down_proj"),          # Llama, Mistral, SmolLM2
    (("intermediate.dense",), "output.dense"),        # BERT, MiniLM
    (("c_fc",), "c_proj"),                            # GPT-2, GPT-Neo (after Conv1D -> Linear)
    (("fc_in",), "fc_out"),                           # GPT-J
    (("dense_h_to_4h",), "dense_4h_to_h"),            # Falcon
    (("wi_0", "wi_1"), "wo"), (("wi",), "wo"),       # T5
    (("fc1",), "fc2"),                                # OPT and others
)


@dataclass(frozen=True)
class PruneResult:
    """What pruning did: requested ratio, measured sparsity, kernel that will run it."""

    method: str
    ratio: float
    sparsity: float            # zero-or-removed fraction of the pruned layers' original weights
    sparsity_all: float        # zero-or-removed fraction of all original parameters
    layers: int                # how many layers were pruned
    kernel: str = "dense"
    note: str = ""

    def columns(self) -> dict[str, Any]:
        """The ``prune_*`` result columns, so every row says what was pruned and how sparse it is."""
        return {"prune_method": self.method, "prune_ratio": self.ratio, "sparsity": self.sparsity,
                "sparsity_all": self.sparsity_all, "pruned_layers": self.layers, "kernel": self.kernel,
                "prune_note": self.note}


def _measure(model: Any, method: str, ratio: float, names: list[str], before_layers: int,
             before_all: int, note: str = "") -> PruneResult:
    modules = dict(model.named_modules())
    nonzero_layers = sum(int((modules[n].weight.detach() != 0).sum()) for n in names)
    _, nonzero_all = count_params(model)
    sparsity = 1 - nonzero_layers / before_layers if before_layers else 0.0
    return PruneResult(method, ratio, sparsity, 1 - nonzero_all / before_all if before_all else 0.0,
                       len(names), "dense", note)


def unstructured(model: Any, ratio: float) -> PruneResult:
    """Global L1-magnitude pruning over all block linear weights (``prune.global_unstructured``)."""
    import torch
    from torch.nn.utils import prune

    as_linear(model)
    layers = linear_layers(model)
    before = sum(m.weight.numel() for _, m in layers)
    before_all, _ = count_params(model)
    if ratio > 0 and layers:
        params = [(m, "weight") for _, m in layers]
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=float(ratio))
        for module, name in params:
            prune.remove(module, name)
        torch.nn.Module.zero_grad(model, set_to_none=True)
    return _measure(model, "unstructured", ratio, [n for n, _ in layers], before, before_all)


def semi_structured_2_4(model: Any) -> PruneResult:
    """Keep the 2 largest-magnitude weights of every 4 consecutive ones along the input dim."""
    import torch

    as_linear(model)
    layers = [(n, m) for n, m in linear_layers(model) if m.in_features % 4 == 0]
    before = sum(m.weight.numel() for _, m in layers)
    before_all, _ = count_params(model)
    with torch.no_grad():
        for _, module in layers:
            weight = module.weight
            groups = weight.abs().reshape(weight.shape[0], -1, 4)
            keep = groups.topk(2, dim=-1).indices
            mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
            weight.mul_(mask.reshape(weight.shape).to(weight.dtype))
    skipped = len(linear_layers(model)) - len(layers)
    note = f"{skipped} layer(s) with input size not divisible by 4 left dense" if skipped else ""
    return _measure(model, "2:4", 0.5, [n for n, _ in layers], before, before_all, note)


def _mlp_blocks(model: Any) -> list[tuple[Any, tuple[str, ...], str]]:
    """(module holding the MLP, input-side layer paths, output-side layer path) per MLP found."""
    import torch

    blocks = []
    for _, module in model.named_modules():
        for ups, down in MLP_PATTERNS:
            try:
                layers = [module.get_submodule(path) for path in (*ups, down)]
            except AttributeError:
                continue
            if all(type(m) is torch.nn.Linear for m in layers) and \
                    all(m.out_features == layers[-1].in_features for m in layers[:-1]):
                blocks.append((module, ups, down))
                break
    return blocks


def _replace(holder: Any, path: str, new: Any) -> None:
    parent_path, _, attr = path.rpartition(".")
    setattr(holder.get_submodule(parent_path) if parent_path else holder, attr, new)


def _shrink(linear: Any, keep: Any, dim: int) -> torch.nn.Linear:
    """A new Linear with only the ``keep`` rows (dim 0) or input columns (dim 1)."""
    import torch

    weight = linear.weight.detach().index_select(dim, keep)
    out_f, in_f = weight.shape
    new = torch.nn.Linear(in_f, out_f, bias=linear.bias is not None,
                          device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if linear.bias is not None:
            new.bias.copy_(linear.bias.detach() if dim == 1 else linear.bias.detach().index_select(0, keep))
    return new


def _weights(holder: Any, paths: tuple[str, ...]) -> int:
    return sum(holder.get_submodule(p).weight.numel() for p in paths)


def structured(model: Any, ratio: float) -> PruneResult:
    """Remove the ``ratio`` of MLP neurons with the smallest L2 norm, shrinking the matrices.

    A neuron is a row of each input-side layer and a column of the output-side
    layer; its norm is taken over all of them, so the block's function changes least.
    """
    import torch

    as_linear(model)
    blocks = _mlp_blocks(model)
    before_all, _ = count_params(model)
    before = sum(_weights(h, (*ups, down)) for h, ups, down in blocks)
    with torch.no_grad():
        for holder, ups, down in blocks:
            up_layers = [holder.get_submodule(p) for p in ups]
            down_layer = holder.get_submodule(down)
            norms = sum(u.weight.detach().float().pow(2).sum(1) for u in up_layers) \
                + down_layer.weight.detach().float().pow(2).sum(0)
            n_keep = max(1, round(down_layer.in_features * (1 - ratio)))
            keep = norms.topk(n_keep).indices.sort().values.to(device_of(down_layer))
            for path, layer in zip(ups, up_layers, strict=True):
                _replace(holder, path, _shrink(layer, keep, 0))
            _replace(holder, down, _shrink(down_layer, keep, 1))
    after = sum(_weights(h, (*ups, down)) for h, ups, down in blocks)
    total_after, nonzero_all = count_params(model)
    zero_or_removed = (before_all - total_after) + (total_after - nonzero_all)
    note = "" if blocks else "no MLP block of a known pattern found"
    return PruneResult("structured", ratio, 1 - after / before if before else 0.0,
                       zero_or_removed / before_all if before_all else 0.0,
                       sum(len(ups) + 1 for _, ups, _ in blocks), "dense", note)


def to_semi_structured(model: Any) -> tuple[str, str]:
    """On CUDA, store 2:4-pruned Linear weights as semi-structured sparse tensors (real speed-up).

    Returns (kernel, note); anywhere it cannot run -- CPU, an old GPU, a shape the
    sparse kernels reject -- the dense weights stay and the note says why.
    """
    import torch

    if device_of(model).type != "cuda":
        return "dense", "semi-structured sparse kernels need CUDA; dense kernels run the zeros"
    try:
        from torch.sparse import to_sparse_semi_structured
    except ImportError as exc:  # pragma: no cover - torch >= 2.1 has it
        return "dense", f"torch.sparse.to_sparse_semi_structured unavailable: {exc}"
    converted, failed = 0, []
    for name, module in linear_layers(model):
        try:
            module.weight = torch.nn.Parameter(to_sparse_semi_structured(module.weight.detach()),
                                               requires_grad=False)
            converted += 1
        except (RuntimeError, ValueError, NotImplementedError) as exc:
            failed.append(f"{name}: {exc}"[:120])
    if not converted:
        return "dense", "no layer accepted semi-structured sparsity: " + "; ".join(failed[:2])
    note = f"{len(failed)} layer(s) left dense" if failed else ""
    return "sparse-2:4", note


def densify(model: Any) -> int:
    """Turn semi-structured sparse weights back into dense ones (before a cast or quantization)."""
    import torch

    count = 0
    for _, module in linear_layers(model):
        if type(module.weight.data) is not torch.Tensor and hasattr(module.weight, "to_dense"):
            module.weight = torch.nn.Parameter(module.weight.to_dense(), requires_grad=False)
            count += 1
    return count
