"""The float LoRA-tuned model a cell quantizes after training, kept on disk for its sibling cells.

Why: LoRA cannot wrap torch's dynamic int8 layers, so an ``int8-dynamic`` cell
tunes LoRA in float on the pruned model, merges it (the pruning pattern
re-applied, :func:`reapply_mask`) and quantizes afterwards. Its ``none``
sibling -- same model, task, pruning, data, training settings and seed --
trains exactly that float model. Cells are separate processes, so the tuned
weights are shared through the run folder: only what training changed (the
LoRA matrices and the classifier head: kilobytes to a few megabytes, not the
model) goes to ``<run>/cache/float-tuned/<key>/``, written to a temporary
folder and renamed into place (a rename is atomic, so a folder is complete or
absent). A cell that finds no entry trains the float model itself (same seed,
same data: the same weights) and leaves it for the next.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    import torch
    from peft import PeftModel

    from nrg.sweep.config import Cell

M = TypeVar("M", bound="torch.nn.Module")

ADAPTER = "trained.pt"
META = "meta.json"
TMP_MARK = ".tmp-"


def cache_key(cell: Cell, train_repeat: int) -> str:
    """What determines the float-tuned weights: the cell without its ``quant`` axis, and the repeat."""
    spec = cell.to_dict()
    spec["axes"] = [[k, v] for k, v in cell.axes if k != "quant"]
    blob = json.dumps({"cell": spec, "train_repeat": train_repeat}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def trained_state(model: Any) -> dict[str, Any]:
    """The parameters training changed (LoRA adapters, classifier head), on the CPU."""
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}


@dataclass(frozen=True)
class FloatCache:
    """The run folder's float-tuned entries; ``root=None`` (no run folder) caches nothing."""

    root: Path | None

    @classmethod
    def for_run(cls, run_dir: str | None) -> FloatCache:
        """The cache of the run folder ``run_dir`` (None: no cache)."""
        return cls(Path(run_dir) / "cache" / "float-tuned" if run_dir else None)

    def load(self, key: str, model: Any) -> bool:
        """Copy the entry ``key`` into ``model``'s trainable parameters; False when there is none.

        An entry whose parameter names or shapes differ from ``model``'s (another
        library version) is not used: the caller trains instead.
        """
        if self.root is None or not (self.root / key / ADAPTER).is_file():
            return False
        import torch

        state = torch.load(self.root / key / ADAPTER, map_location="cpu", weights_only=True)
        params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        if set(state) != set(params) or any(state[n].shape != p.shape for n, p in params.items()):
            return False
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(state[name].to(param.device))
        return True

    def save(self, key: str, model: Any, meta: dict[str, Any]) -> None:
        """Write ``model``'s trained parameters as entry ``key`` unless it exists (atomic)."""
        if self.root is None or (self.root / key).is_dir():
            return
        import torch

        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_MARK}{key}-", dir=self.root))
        try:
            torch.save(trained_state(model), tmp / ADAPTER)
            (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
            for path in (tmp / ADAPTER, tmp / META):
                with open(path, "rb") as fh:
                    os.fsync(fh.fileno())
            os.rename(tmp, self.root / key)
        except OSError:
            if not (self.root / key).is_dir():  # not "another cell was first"
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def reapply_mask(merged: M, pruned: Any) -> M:
    """Zero in ``merged`` every weight that pruning zeroed in ``pruned``.

    Why: merging a LoRA update (dense, low rank) into pruned weights fills the
    zeros back in; a "2:4" or "unstructured" model must keep its pattern.
    """
    import torch

    from nrg.compress.layers import linear_layers

    with torch.no_grad():
        for name, module in linear_layers(pruned):
            # merge_and_unload left the same-named layer a plain Linear again
            target = cast("torch.nn.Linear", merged.get_submodule(name))
            if target.weight.shape == module.weight.shape:
                target.weight.mul_((module.weight != 0).to(target.weight.dtype))
    return merged


def merged_float(lora_model: PeftModel, pruned: Any, prune_value: str) -> torch.nn.Module:
    """A merged copy of a float LoRA model, with the pruning pattern of ``pruned`` kept."""
    merged: torch.nn.Module = copy.deepcopy(lora_model).merge_and_unload()
    return merged if prune_value == "none" else reapply_mask(merged, pruned)
