"""Quantizing a loaded model: fp32/fp16/bf16 casts, bitsandbytes int8 / nf4 / fp4, torch dynamic int8.

Why from a loaded model rather than at load time: the study prunes first and
quantizes second, and the same code must serve MiniLM (BERT) and SmolLM2
(Llama) alike. bitsandbytes layers (``Linear8bitLt``, ``Linear4bit``) replace
each block ``nn.Linear`` and quantize their weights when moved to the device
-- the same kernels ``BitsAndBytesConfig`` uses at load time -- and they run on
CPU with bitsandbytes >= 0.45 as well as on CUDA. Torch's dynamic int8
quantization (``quantize_dynamic`` on ``nn.Linear``) is CPU-only.

A method the device cannot run returns a :class:`QuantResult` with status
``"unsupported"`` and the reason, leaving the model as it was: a sweep records
the combination instead of crashing.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from nrg.compress.layers import as_linear, device_of, linear_layers

if TYPE_CHECKING:
    import torch

FLOAT_DTYPES = {"none": None, "fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
BNB_METHODS = ("int8-bnb", "nf4", "fp4")
QUANT_METHODS: tuple[str, ...] = ("none", "fp32", "fp16", "bf16", "int8-bnb", "nf4", "fp4", "int8-dynamic")
BITS = {"none": 32, "fp32": 32, "fp16": 16, "bf16": 16, "int8-bnb": 8, "int8-dynamic": 8, "nf4": 4, "fp4": 4}


@dataclass(frozen=True)
class QuantResult:
    """What quantization did; ``status`` is "ok" or "unsupported" (then ``reason`` says why)."""

    method: str
    status: str = "ok"
    reason: str = ""
    layers: int = 0

    def columns(self) -> dict[str, Any]:
        """The ``quant_*`` result columns, so every row says which quantization ran (or why not)."""
        return {"quant": self.method, "quant_bits": BITS[self.method], "quant_status": self.status,
                "quant_reason": self.reason, "quant_layers": self.layers}


def support(method: str, device_type: str) -> str:
    """Empty string when ``method`` runs on ``device_type`` here, else the reason it does not."""
    if method in BNB_METHODS:
        try:
            import_bitsandbytes()
        except Exception as exc:  # import may fail for many reasons (no library, no backend)
            return f"bitsandbytes unavailable: {type(exc).__name__}: {exc}"
        return ""
    if method == "int8-dynamic":
        import torch

        if device_type != "cpu":
            return "torch dynamic int8 quantization runs on CPU only"
        engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
        return "" if engines else "no quantized engine (fbgemm/x86/qnnpack) in this torch build"
    return ""


def _cast(model: Any, method: str) -> QuantResult:
    import torch

    dtype = FLOAT_DTYPES[method]
    if dtype is not None:
        model.to(getattr(torch, dtype))
    return QuantResult(method, layers=len(linear_layers(model)))


def import_bitsandbytes() -> ModuleType:
    """``bitsandbytes``, imported without its start-up warning about an optional CPU kernel.

    On a CPU with AVX512-BF16 it tries to fetch ``kernels-community``'s 4-bit
    kernel (network, the ``kernels`` package) and logs "Failed to load CPU
    gemm_4bit_forward ..." when it cannot; it then uses its own kernel, so the
    line is noise on every nrg start-up that probes quantization.
    """
    import logging

    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    import bitsandbytes

    return bitsandbytes


def _bnb_layer(linear: Any, method: str, device: Any) -> torch.nn.Module:
    import torch

    bnb = import_bitsandbytes()

    bias = linear.bias is not None
    new: torch.nn.Module
    weight = linear.weight.detach().to("cpu", torch.float32 if device.type == "cpu" else torch.float16)
    if method == "int8-bnb":
        new = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=bias,
                                  has_fp16_weights=False, threshold=6.0)
        new.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
    else:
        new = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=bias,
                                compute_dtype=linear.weight.dtype, quant_type=method)
        new.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type=method)
    if bias:
        new.bias = torch.nn.Parameter(linear.bias.detach().to("cpu"), requires_grad=False)
    return new.to(device)  # quantization happens on this move


def _bnb(model: Any, method: str) -> QuantResult:
    device = device_of(model)
    layers = linear_layers(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, linear in layers:
            parent_path, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_path) if parent_path else model
            setattr(parent, attr, _bnb_layer(linear, method, device))
    return QuantResult(method, layers=len(layers))


def _dynamic(model: Any) -> QuantResult:
    import torch

    layers = linear_layers(model)
    mapping = {name: torch.ao.quantization.default_dynamic_qconfig for name, _ in layers}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(model, mapping, dtype=torch.qint8, inplace=True)
    return QuantResult("int8-dynamic", layers=len(layers))


def quantize(model: Any, method: str) -> QuantResult:
    """Quantize ``model`` (a ``torch.nn.Module``) in place with ``method``; never raises for support.

    Block linear layers are quantized; heads (lm_head, classifier) stay in float,
    as bitsandbytes' own loader does, because they are tied or freshly trained.
    """
    from nrg.errors import check_choice

    check_choice("quant", method, QUANT_METHODS)
    reason = support(method, device_of(model).type)
    if reason:
        return QuantResult(method, "unsupported", reason)
    if method in FLOAT_DTYPES:
        return _cast(model, method)
    as_linear(model)
    if method in BNB_METHODS:
        return _bnb(model, method)
    return _dynamic(model)
