"""How long a cell of ``nrg reference`` will take: physics for the shape, measurements for the level.

Why both: before any cell ran, only the model's shape is known, and a budget
run must not start a 7B cell it cannot finish; after a few cells, the
measured load times and per-token rates say how fast this machine really is.
The prediction is a roofline-like model --

* load: a fixed part plus the weights' bytes at a load rate,
* prefill: a per-layer latency plus ``2 x params x tokens`` FLOP at a compute rate,
* decode, per token: a per-layer latency plus the weights' bytes at a bandwidth,

-- whose three parts are each multiplied by a correction factor, the geometric
mean of measured / predicted over the cells finished so far (so one fast
small model and one slow large one both inform the next estimate through the
shape), plus the measured overhead of a cell (process start, imports, checks).
A cell's work is ``warmup`` generations plus ``repeats`` x (prefill + generation),
as :mod:`nrg.workloads.generation` runs it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from nrg.sweep.config import Cell


@dataclass(frozen=True)
class Prior:
    """Rates assumed before anything was measured on the device (deliberately modest)."""

    overhead_s: float          # per cell: process start, imports, checks, meters
    load_s: float              # fixed part of a load
    load_bytes_per_s: float
    flops: float               # achieved, not peak
    bandwidth_bytes_per_s: float
    layer_s: float             # per layer and forward pass: kernel launches, Python


PRIORS: dict[str, Prior] = {
    "cuda": Prior(overhead_s=12.0, load_s=2.0, load_bytes_per_s=2e9, flops=1e14,
                  bandwidth_bytes_per_s=1.5e12, layer_s=4e-4),
    "cpu": Prior(overhead_s=10.0, load_s=1.0, load_bytes_per_s=2e8, flops=1e10,
                 bandwidth_bytes_per_s=4e9, layer_s=5e-4),
}
#: The share of a GPU's peak memory bandwidth the cuda prior assumes decode achieves (1.5 of 3.35 TB/s).
BANDWIDTH_SHARE = 0.45
#: Peak memory bandwidth by GPU name (bytes/s; the vendors' data sheets), first match wins.
GPU_PEAK_BANDWIDTH: tuple[tuple[tuple[str, ...], float], ...] = (
    (("H200",), 4.8e12), (("H100", "PCIe"), 2.0e12), (("H100",), 3.35e12), (("B200",), 8.0e12),
    (("A100", "80GB"), 2.039e12), (("A100",), 1.555e12), (("L40S",), 0.864e12), (("L4",), 0.3e12),
    (("A10",), 0.6e12), (("V100",), 0.9e12), (("T4",), 0.32e12),
)


def peak_bandwidth(gpu_name: str) -> float | None:
    """The data sheet's memory bandwidth of ``gpu_name`` (bytes/s), None for a GPU not in the table."""
    for words, bytes_per_s in GPU_PEAK_BANDWIDTH:
        if all(w.lower() in gpu_name.lower() for w in words):
            return bytes_per_s
    return None


QUANT_BYTES = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8-bnb": 1.0, "int8-dynamic": 1.0, "nf4": 0.5, "fp4": 0.5}
DTYPE_BYTES = {"float32": 4.0, "float16": 2.0, "bfloat16": 2.0}


@dataclass(frozen=True)
class Shape:
    """What a cell's model weighs: parameters, layers (forward-pass depth), bytes of weights."""

    n_params: int
    layers: int
    weight_bytes: float


def _layers(config: Any) -> int:
    values = [getattr(config, k, None) for k in ("num_hidden_layers", "n_layer", "num_layers")]
    layers = next((v for v in values if isinstance(v, int)), 1)
    decoder = getattr(config, "num_decoder_layers", None)
    if getattr(config, "is_encoder_decoder", False) and isinstance(decoder, int):
        layers += decoder
    return max(int(layers), 1)


def shape_of(cell: Cell) -> Shape:
    """The cell's model shape, from its config on the meta device (no weights allocated)."""
    from nrg.models.load import plan

    p = plan(cell.model.for_cell(cell.dtype, "cpu"))
    per_param = QUANT_BYTES.get(str(dict(cell.axes).get("quant")), DTYPE_BYTES.get(cell.dtype, 4.0))
    return Shape(p.n_params, _layers(p.config), p.n_params * per_param)


@dataclass(frozen=True)
class Estimate:
    """A cell's predicted wall time in parts (seconds)."""

    overhead_s: float
    load_s: float
    work_s: float

    @property
    def total_s(self) -> float:
        """The whole cell, start to end."""
        return self.overhead_s + self.load_s + self.work_s


def repeats_of(cell: Cell) -> int:
    """How many measured repeats the cell's policy runs at most."""
    policy = cell.settings.repeats
    return policy.min_n if policy.fixed else policy.max_n


def work_s(cell: Cell, prefill_s: float, tpot_s: float) -> float:
    """Warm-up generations plus repeats of (prefill + generation), as the runner measures them."""
    generate_s = prefill_s + max(cell.output_tokens - 1, 0) * tpot_s
    return cell.settings.warmup * generate_s + repeats_of(cell) * (prefill_s + generate_s)


@dataclass
class Estimator:
    """Predicts cells' wall times; :meth:`observe` refines it with every finished cell."""

    device: str
    ratios: dict[str, list[float]] = field(default_factory=lambda: {"load": [], "prefill": [], "tpot": []})
    overheads_s: list[float] = field(default_factory=list)
    peak_bandwidth_bytes_per_s: float | None = None   # the GPU's data sheet, when known
    _shapes: dict[str, Shape] = field(default_factory=dict)

    @property
    def prior(self) -> Prior:
        """The device's assumed rates (CUDA or CPU; decode bandwidth from the GPU's data sheet when known)."""
        prior = PRIORS["cuda" if self.device.startswith("cuda") else "cpu"]
        if self.peak_bandwidth_bytes_per_s and self.device.startswith("cuda"):
            return replace(prior, bandwidth_bytes_per_s=BANDWIDTH_SHARE * self.peak_bandwidth_bytes_per_s)
        return prior

    def shape(self, cell: Cell) -> Shape:
        """The cell's model shape, computed once per model, dtype and quantization."""
        key = repr((cell.model, cell.dtype, dict(cell.axes).get("quant")))
        if key not in self._shapes:
            self._shapes[key] = shape_of(cell)
        return self._shapes[key]

    def predicted(self, cell: Cell) -> dict[str, float]:
        """Uncorrected load, prefill and per-token decode times from the shape alone."""
        s, p = self.shape(cell), self.prior
        tokens = cell.batch_size * cell.input_tokens
        return {"load": p.load_s + s.weight_bytes / p.load_bytes_per_s,
                "prefill": s.layers * p.layer_s + 2 * s.n_params * tokens / p.flops,
                "tpot": s.layers * p.layer_s + s.weight_bytes / p.bandwidth_bytes_per_s
                + 2 * s.n_params * cell.batch_size / p.flops}

    def factor(self, part: str) -> float:
        """Geometric mean of measured / predicted for ``part`` (1 before any measurement)."""
        values = [v for v in self.ratios[part] if v > 0 and math.isfinite(v)]
        return math.exp(sum(math.log(v) for v in values) / len(values)) if values else 1.0

    def estimate(self, cell: Cell) -> Estimate:
        """The predicted wall time of ``cell`` with the corrections measured so far."""
        raw = self.predicted(cell)
        overhead = (sum(self.overheads_s) / len(self.overheads_s)) if self.overheads_s else self.prior.overhead_s
        return Estimate(overhead, raw["load"] * self.factor("load"),
                        work_s(cell, raw["prefill"] * self.factor("prefill"), raw["tpot"] * self.factor("tpot")))

    def observe(self, cell: Cell, rows: Any, wall_s: float) -> None:
        """Learn from a finished cell's rows (ok cells only) and its wall time."""
        ok = rows[rows["status"] == "ok"] if "status" in rows.columns else rows.iloc[0:0]
        if ok.empty or "phase" not in ok.columns:
            return
        raw = self.predicted(cell)
        prefill = ok.loc[ok["phase"] == "prefill", "time_s"].mean()
        tpot = ok.loc[ok["phase"] == "decode", "tpot_s"].mean() if cell.output_tokens > 1 else math.nan
        load = float(ok["load_time_s"].iloc[0]) if "load_time_s" in ok.columns else math.nan
        for part, actual in (("load", load), ("prefill", prefill), ("tpot", tpot)):
            if math.isfinite(actual) and actual > 0:
                self.ratios[part].append(actual / raw[part])
        measured_work = work_s(cell, prefill if math.isfinite(prefill) else 0.0,
                               tpot if math.isfinite(tpot) else 0.0)
        overhead = wall_s - (load if math.isfinite(load) else 0.0) - measured_work
        self.overheads_s.append(max(overhead, 0.0))

    def to_dict(self) -> dict[str, Any]:
        """The corrections in force, for the run's summary."""
        return {"device": self.device, "cells_observed": len(self.overheads_s),
                "overhead_s": (sum(self.overheads_s) / len(self.overheads_s)) if self.overheads_s else None,
                "factors": {part: self.factor(part) for part in self.ratios},
                "peak_bandwidth_bytes_per_s": self.peak_bandwidth_bytes_per_s}

    def corrections(self) -> dict[str, Any]:
        """What a rerun needs to start where this one ended: every measured ratio and overhead."""
        return {"ratios": {part: list(values) for part, values in self.ratios.items()},
                "overheads_s": list(self.overheads_s)}

    def restore(self, corrections: dict[str, Any]) -> None:
        """Take the corrections of an earlier run (:meth:`corrections`); bad entries are ignored."""
        for part, values in (corrections.get("ratios") or {}).items():
            if part in self.ratios and isinstance(values, list):
                self.ratios[part] = [float(v) for v in values if isinstance(v, (int, float))]
        overheads = corrections.get("overheads_s")
        if isinstance(overheads, list):
            self.overheads_s = [float(v) for v in overheads if isinstance(v, (int, float))]
