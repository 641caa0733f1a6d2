"""The least time the hardware allows for a cell's work, and how close we got.

A measured time means little alone: 40 ms per token is excellent on one
machine and poor on another. The roofline bound says what the hardware could
do at best, so ``roofline_fraction = bound / measured`` is comparable across
machines (1.0 = at the hardware limit).

Each step is bounded by the slower of two limits, and a phase's bound is the
sum over its steps:

* memory: bytes that must cross the memory bus / bandwidth. A decode step
  reads every weight once (the input-embedding table only when it is tied to
  the output head) plus the KV cache of all tokens so far.
* compute: ``2 * matmul_params * tokens`` FLOPs / peak FLOP/s (attention's
  quadratic FLOPs are left out, which keeps the bound a lower bound).

Prefill is one step over all prompt tokens; decode is ``output_tokens - 1``
steps (the first token comes from prefill).

Where the peaks come from:

* GPU: datasheet figures in :data:`GPU_PEAKS` (dense, i.e. without the 2:4
  sparsity factor NVIDIA quotes first), with the datasheet URL.
  ``float32`` uses the CUDA-core FP32 peak because PyTorch does not use TF32
  for matmuls by default; ``float16``/``bfloat16`` use tensor-core peaks
  with FP32 accumulation.
* CPU compute: *computed*, not measured -- ``cores x FLOP/cycle x clock``
  with FLOP/cycle from the CPU flags (two FMA units: AVX-512 64, AVX2+FMA 32,
  else 8 fp32 FLOP/cycle; AMX-BF16 1024 and AVX512-BF16 128 for bfloat16) and
  the highest clock the kernel reports (cpufreq max, else /proc/cpuinfo MHz).
  Turbo above that clock is not counted.
* CPU bandwidth: the STREAM-like copy of :func:`nrg.meters.hardware.memory_bandwidth_bytes_per_s`,
  measured once per sweep. A sustained copy can fall short of what many
  threads achieve, so on CPU a fraction slightly above 1 is possible.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAN = float("nan")


@dataclass(frozen=True)
class GpuPeak:
    """Datasheet peaks of one GPU model (dense FLOP/s by dtype, bytes/s)."""

    name: str
    pattern: str                      # regex matched against the lower-cased device name
    mem_bandwidth_bytes_per_s: float
    flops: Mapping[str, float]
    source: str
    note: str = ""


_A100 = "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"
_V100 = "https://images.nvidia.com/content/technologies/volta/pdf/volta-v100-datasheet-update-us-1165301-r5.pdf"
_A10 = "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a10/pdf/a10-datasheet.pdf"


def _f(fp32: float, half: float | None) -> dict[str, float]:
    """TFLOP/s -> FLOP/s by dtype; ``half`` None when the GPU has no bf16 tensor cores."""
    out = {"float32": fp32 * 1e12}
    if half is not None:
        out.update({"float16": half * 1e12, "bfloat16": half * 1e12})
    return out


# Order matters: the first pattern that matches wins (PCIe / NVL before SXM).
GPU_PEAKS: tuple[GpuPeak, ...] = (
    GpuPeak("H100 PCIe", r"h100.*pcie", 2.0e12, _f(51, 756),
            "https://www.nvidia.com/en-us/data-center/h100/"),
    GpuPeak("H100 NVL", r"h100.*nvl", 3.9e12, _f(60, 835.5),
            "https://www.nvidia.com/en-us/data-center/h100/"),
    GpuPeak("H100 SXM", r"h100", 3.35e12, _f(67, 989.5),
            "https://www.nvidia.com/en-us/data-center/h100/"),
    GpuPeak("H200", r"h200", 4.8e12, _f(67, 989.5),
            "https://www.nvidia.com/en-us/data-center/h200/"),
    GpuPeak("A100 80GB PCIe", r"a100.*80gb.*pcie|a100.*pcie.*80gb", 1.935e12, _f(19.5, 312), _A100),
    GpuPeak("A100 80GB SXM", r"a100.*80gb", 2.039e12, _f(19.5, 312), _A100),
    GpuPeak("A100 40GB", r"a100", 1.555e12, _f(19.5, 312), _A100),
    GpuPeak("L4", r"\bl4\b", 300e9, _f(30.3, 121),
            "https://www.nvidia.com/en-us/data-center/l4/"),
    GpuPeak("A10G", r"a10g", 600e9, _f(31.2, 125), _A10,
            note="AWS publishes no A10G datasheet; the A10 figures are used"),
    GpuPeak("A10", r"\ba10\b", 600e9, _f(31.2, 125), _A10),
    GpuPeak("V100 PCIe", r"v100.*pcie", 900e9, {"float32": 14e12, "float16": 112e12}, _V100,
            note="no bfloat16 tensor cores"),
    GpuPeak("V100 SXM2", r"v100", 900e9, {"float32": 15.7e12, "float16": 125e12}, _V100,
            note="no bfloat16 tensor cores"),
    GpuPeak("RTX 4090", r"4090", 1008e9, _f(82.6, 165.2),
            "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf",
            note="tensor peak with FP32 accumulate (GeForce rate)"),
)


def gpu_peak(device_name: str) -> GpuPeak | None:
    """The table entry for a CUDA device name (e.g. 'NVIDIA H100 80GB HBM3'); None if unknown."""
    lowered = device_name.lower()
    for entry in GPU_PEAKS:
        if re.search(entry.pattern, lowered):
            return entry
    return None


@dataclass(frozen=True)
class Peaks:
    """The two hardware limits a bound needs, and where they came from."""

    mem_bandwidth_bytes_per_s: float
    compute_flops: float
    source: str

    def to_record(self) -> dict[str, Any]:
        """The result columns saying which peaks the bound used and where they came from."""
        return {"mem_bandwidth_bytes_per_s": self.mem_bandwidth_bytes_per_s,
                "peak_flops": self.compute_flops, "roofline_source": self.source}


def _cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_flop_per_cycle(flags: set[str], dtype: str = "float32") -> int:
    """Peak FLOP per cycle per core from the CPU flags (two FMA units assumed)."""
    if dtype == "bfloat16" and "amx_bf16" in flags:
        return 1024
    if dtype == "bfloat16" and "avx512_bf16" in flags:
        return 128
    if "avx512f" in flags:
        return 64
    if "avx2" in flags and "fma" in flags:
        return 32
    return 8


def cpu_max_clock_hz(root: str | Path = "/") -> float:
    """Highest clock the kernel reports: cpufreq max, else the highest /proc/cpuinfo MHz."""
    root = Path(root)
    path = root / "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"
    try:
        return float(path.read_text().strip()) * 1e3
    except (OSError, ValueError):
        pass
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", _read(root / "proc/cpuinfo"), re.M)]
    return max(mhz) * 1e6 if mhz else NAN


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def cpu_peaks(mem_bandwidth_bytes_per_s: float, dtype: str, cores: int,
              root: str | Path = "/") -> Peaks:
    """CPU peaks: computed compute peak and a measured bandwidth (see module docstring)."""
    flags = _cpu_flags(_read(Path(root) / "proc/cpuinfo"))
    per_cycle = cpu_flop_per_cycle(flags, dtype)
    clock_hz = cpu_max_clock_hz(root)
    source = (f"cpu: {cores} cores x {per_cycle} FLOP/cycle x {clock_hz / 1e9:.2f} GHz (computed); "
              f"bandwidth {mem_bandwidth_bytes_per_s / 1e9:.1f} GB/s (measured copy)")
    return Peaks(mem_bandwidth_bytes_per_s, cores * per_cycle * clock_hz, source)


def aggregate_peaks(parts: Sequence[Peaks | None]) -> Peaks | None:
    """Peaks of a model sharded over several GPUs: bandwidths and FLOP/s add up.

    None when any GPU is unknown (a partial sum would overstate the bound).
    Accelerate's device map runs the layers on one GPU after another, so the
    sum is what the GPUs could do together, a lower bound the run cannot reach.
    """
    if not parts or any(p is None for p in parts):
        return None
    known = [p for p in parts if p is not None]
    if len(known) == 1:
        return known[0]
    sources = list(dict.fromkeys(p.source for p in known))
    return Peaks(sum(p.mem_bandwidth_bytes_per_s for p in known), sum(p.compute_flops for p in known),
                 f"{len(known)} GPUs summed: " + "; ".join(sources))


def cuda_peaks(device_name: str, dtype: str) -> Peaks | None:
    """GPU peaks from the datasheet table; None for an unknown GPU or dtype."""
    entry = gpu_peak(device_name)
    if entry is None or dtype not in entry.flops:
        return None
    return Peaks(entry.mem_bandwidth_bytes_per_s, entry.flops[dtype],
                 f"gpu: {entry.name} datasheet ({entry.source})")


@dataclass(frozen=True)
class ModelShape:
    """What a bound needs to know about a model, in plain numbers."""

    matmul_params: int                 # parameters used in matmuls (no untied input embedding)
    weight_bytes: int                  # bytes read per decode step
    kv_bytes_per_token: int            # K+V bytes per token per sequence, all layers
    encoder_params: int = 0            # encoder-decoder models: encoder part of matmul_params


def _step_s(shape: ModelShape, peaks: Peaks, flops: float, kv_tokens: int) -> float:
    memory_s = (shape.weight_bytes + shape.kv_bytes_per_token * kv_tokens) / peaks.mem_bandwidth_bytes_per_s
    return max(memory_s, flops / peaks.compute_flops)


def prefill_bound_s(shape: ModelShape, peaks: Peaks, batch_size: int, input_tokens: int) -> float:
    """One forward pass over ``batch_size x input_tokens`` tokens, writing their KV cache.

    An encoder-decoder model runs its encoder over the prompt and its decoder
    over one token per sequence.
    """
    tokens = batch_size * input_tokens
    decoder_params = shape.matmul_params - shape.encoder_params
    if shape.encoder_params:
        flops = 2.0 * (shape.encoder_params * tokens + decoder_params * batch_size)
    else:
        flops = 2.0 * shape.matmul_params * tokens
    return _step_s(shape, peaks, flops, tokens)


def decode_bound_s(shape: ModelShape, peaks: Peaks, batch_size: int, input_tokens: int,
                   output_tokens: int) -> float:
    """``output_tokens - 1`` steps, step t reading the KV cache of ``input_tokens + t`` tokens."""
    flops = 2.0 * (shape.matmul_params - shape.encoder_params) * batch_size
    return sum(
        _step_s(shape, peaks, flops, batch_size * (input_tokens + t))
        for t in range(1, output_tokens)
    )


def bounds_s(shape: ModelShape, peaks: Peaks, batch_size: int, input_tokens: int,
             output_tokens: int) -> dict[str, float]:
    """Bound per phase: ``prefill``, ``decode`` and ``generate`` (their sum)."""
    prefill = prefill_bound_s(shape, peaks, batch_size, input_tokens)
    decode = decode_bound_s(shape, peaks, batch_size, input_tokens, output_tokens)
    return {"prefill": prefill, "decode": decode, "generate": prefill + decode}


def fraction(bound_s: float, measured_s: float) -> float:
    """``bound / measured``; NaN when either is missing or the measurement is not positive."""
    if not (bound_s == bound_s and measured_s == measured_s) or measured_s <= 0:
        return NAN
    return bound_s / measured_s


def _first(config: Any, names: tuple[str, ...]) -> int | None:
    for name in names:
        value: int | None = getattr(config, name, None)
        if value is not None:
            return value
    return None


def kv_bytes_per_token(config: Any, dtype_bytes: int) -> int:
    """K+V bytes one token adds to the decoder's cache (0 when the config does not say).

    Underestimating keeps the bound a lower bound, so unknown layouts give 0.
    """
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = _first(text, ("num_decoder_layers", "num_hidden_layers", "n_layer", "num_layers"))
    heads = _first(text, ("num_attention_heads", "n_head", "num_heads"))
    hidden = _first(text, ("hidden_size", "n_embd", "d_model"))
    if not (layers and heads and hidden):
        return 0
    kv_heads = _first(text, ("num_key_value_heads", "num_kv_heads"))
    if getattr(text, "multi_query", False) and not getattr(text, "new_decoder_architecture", False):
        kv_heads = 1
    head_dim = _first(text, ("head_dim", "d_kv")) or hidden // heads
    return int(2 * layers * (kv_heads or heads) * head_dim * dtype_bytes)


def model_shape(model: Any, is_encoder_decoder: bool = False) -> ModelShape:
    """Shape of a loaded torch model: parameters that matmul, bytes read per decode step."""
    params = {id(p): p for p in model.parameters()}
    total_bytes = sum(p.numel() * p.element_size() for p in params.values())
    total_n = sum(p.numel() for p in params.values())
    skip_bytes = skip_n = 0
    inp = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    inp_w = getattr(inp, "weight", None)
    if inp_w is not None and (out is None or getattr(out, "weight", None) is not inp_w):
        skip_bytes += inp_w.numel() * inp_w.element_size()  # only one row per token is read
        skip_n += inp_w.numel()
    encoder = [p for name, p in model.named_parameters()
               if is_encoder_decoder and name.startswith("encoder.") and p is not inp_w]
    encoder_bytes = sum(p.numel() * p.element_size() for p in encoder)
    dtype_bytes = next(iter(params.values())).element_size() if params else 4
    return ModelShape(matmul_params=total_n - skip_n,
                      weight_bytes=max(total_bytes - skip_bytes - encoder_bytes, 0),
                      kv_bytes_per_token=kv_bytes_per_token(model.config, dtype_bytes),
                      encoder_params=sum(p.numel() for p in encoder))
