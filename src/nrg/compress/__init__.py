"""Compression of a loaded model -- quantization and pruning -- as sweep axes.

Importing this module registers two axes in :mod:`nrg.sweep.axes` (cheap: torch is
imported only when a transform runs):

* ``prune`` -- ``"none"``, ``"unstructured:<ratio>"``, ``"structured:<ratio>"``,
  ``"2:4"`` (ratio in [0, 1); 2:4 is always 50%);
* ``quant`` -- ``"none"``, ``"fp32"``, ``"fp16"``, ``"bf16"``, ``"int8-bnb"``,
  ``"nf4"``, ``"fp4"``, ``"int8-dynamic"``.

Prune first, then quantize: pruning needs float weights. :func:`compress` does
both in that order; the ``prune`` axis is registered before ``quant`` for the
same reason. Each transform returns the model and the columns describing what
was done (``quant``, ``quant_status``, ``prune_method``, ``prune_ratio``,
``sparsity``, ``kernel``, ...). An unsupported quantization on this device is
recorded (``quant_status="unsupported"``, ``quant_reason``), not raised; as a
sweep axis it makes the cell ``unsupported`` with that reason (e.g. nf4 where
bitsandbytes does not import), so an unquantized model is never measured
under a quantized label.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError, choice_error
from nrg.sweep import axes

if TYPE_CHECKING:
    from nrg.compress.layers import ModelOrLoaded

QUANT_METHODS: tuple[str, ...] = ("none", "fp32", "fp16", "bf16", "int8-bnb", "nf4", "fp4", "int8-dynamic")
PRUNE_METHODS: tuple[str, ...] = ("none", "unstructured", "structured", "2:4")
PRUNE_FORMS = ("none", "unstructured:<ratio>", "structured:<ratio>", "2:4")

__all__ = [
    "PRUNE_METHODS",
    "QUANT_METHODS",
    "compress",
    "parse_prune",
    "prune",
    "quantize",
    "validate_prune",
    "validate_quant",
]


def parse_prune(value: str) -> tuple[str, float]:
    """``"unstructured:0.3"`` -> ``("unstructured", 0.3)``; ``"2:4"`` -> ``("2:4", 0.5)``."""
    if not isinstance(value, str):
        raise choice_error("prune", value, PRUNE_FORMS)
    if value in ("none", "2:4"):
        return value, (0.0 if value == "none" else 0.5)
    method, sep, ratio_text = value.partition(":")
    if method not in ("unstructured", "structured") or not sep:
        raise choice_error("prune", value, PRUNE_FORMS)
    try:
        ratio = float(ratio_text)
    except ValueError:
        raise ParameterError(f"prune={value!r} is not valid; the ratio must be a number in [0, 1)") from None
    if not 0 <= ratio < 1:
        raise ParameterError(f"prune={value!r} is not valid; the ratio {ratio} must be in [0, 1)")
    return method, ratio


def validate_quant(values: Sequence[Any]) -> None:
    """Raise :class:`ParameterError` listing the valid methods for the first unknown value."""
    for value in values:
        if value not in QUANT_METHODS:
            raise choice_error("quant", value, QUANT_METHODS)


def validate_prune(values: Sequence[Any]) -> None:
    """Raise :class:`ParameterError` for the first value :func:`parse_prune` rejects."""
    for value in values:
        parse_prune(value)


def quantize(model: ModelOrLoaded, method: str, sparse_kernels: bool = True) -> tuple[ModelOrLoaded, dict[str, Any]]:
    """Quantize a module or ``LoadedModel``; returns it and the quantization columns.

    ``sparse_kernels=False`` keeps 2:4-pruned weights dense (e.g. to fine-tune
    first and call :func:`nrg.compress.pruning.to_semi_structured` afterwards).
    """
    from nrg.compress.layers import rewrap, unwrap
    from nrg.compress.pruning import densify, to_semi_structured
    from nrg.compress.quantization import quantize as _quantize

    validate_quant([method])
    module = unwrap(model)
    sparse_2_4 = getattr(module, "_nrg_prune", None) == "2:4"
    if sparse_2_4:
        densify(module)  # casts and quantizers need plain dense weights
    result = _quantize(module, method)
    columns = result.columns()
    if sparse_2_4 and sparse_kernels and method in ("none", "fp32", "fp16", "bf16"):
        columns["kernel"], columns["prune_note"] = to_semi_structured(module)
    elif sparse_2_4:
        columns["kernel"] = "dense"
    return rewrap(model, module), columns


def prune(model: ModelOrLoaded, value: str, sparse_kernels: bool = True) -> tuple[ModelOrLoaded, dict[str, Any]]:
    """Prune a module or ``LoadedModel`` by ``value`` (see :func:`parse_prune`).

    For 2:4 on CUDA, ``sparse_kernels`` stores the weights as semi-structured
    sparse tensors so the speed-up is real; elsewhere the ``kernel`` column says "dense".
    """
    import nrg.compress.pruning as _prune
    from nrg.compress.layers import rewrap, unwrap

    method, ratio = parse_prune(value)
    module = unwrap(model)
    if method == "none":
        from nrg.compress.layers import count_params

        total, nonzero = count_params(module)
        columns = _prune.PruneResult("none", 0.0, 0.0, 1 - nonzero / total if total else 0.0, 0).columns()
    elif method == "2:4":
        columns = _prune.semi_structured_2_4(module).columns()
        module._nrg_prune = "2:4"  # type: ignore[assignment]  # torch types Module.__setattr__ for tensors and modules only
        columns["kernel"], note = (_prune.to_semi_structured(module) if sparse_kernels else
                                   ("dense", "sparse kernels deferred (sparse_kernels=False)"))
        columns["prune_note"] = "; ".join(n for n in (columns["prune_note"], note) if n)
    else:
        columns = getattr(_prune, method)(module, ratio).columns()
    return rewrap(model, module), columns


def compress(model: ModelOrLoaded, quant: str = "none", prune_value: str = "none",
             sparse_kernels: bool = True) -> tuple[ModelOrLoaded, dict[str, Any]]:
    """Prune then quantize; both checked before any work. Returns the model and all columns."""
    validate_quant([quant])
    validate_prune([prune_value])
    model, columns = prune(model, prune_value, sparse_kernels)
    model, quant_columns = quantize(model, quant, sparse_kernels)
    if "kernel" in quant_columns and columns.get("prune_note") and quant_columns.get("prune_note"):
        quant_columns["prune_note"] = columns["prune_note"] + "; " + quant_columns["prune_note"]
    return model, {**columns, **quant_columns}


axes.register(axes.Axis("prune", "none", validate_prune, transform=prune,
                        doc="pruning: none, unstructured:<ratio>, structured:<ratio>, 2:4 (before quant)"))
def _quant_axis(model: Any, method: str, sparse_kernels: bool = True) -> tuple[Any, dict[str, Any]]:
    """The ``quant`` axis: :func:`quantize`, but a method this machine cannot run ends the cell.

    NotImplementedError makes the cell's row ``unsupported`` with the reason
    (e.g. "bitsandbytes unavailable: ..."), instead of measuring the
    unquantized model as if it were quantized.
    """
    model, columns = quantize(model, method, sparse_kernels)
    if columns.get("quant_status") != "ok":
        raise NotImplementedError(f"quant={method!r} is not supported here: {columns.get('quant_reason')}")
    return model, columns


axes.register(axes.Axis("quant", "none", validate_quant, transform=_quant_axis,
                        doc="quantization: " + ", ".join(QUANT_METHODS)))
