"""Driver of chapter 2: how input and output length drive energy, latency and throughput.

Three sweeps share one run folder: input length at a fixed output length,
output length at a fixed input length, and a small joint grid for the ANOVA
and the interaction.  Identical cells (the fixed point lies on both lines) have
identical ids, so they are measured once.  Prompts are synthetic token ids of
exact length: this is a systems experiment, and a prompt's content does not
change its cost once its length is fixed.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.book import carbon, common, sweeps
from nrg.errors import ParameterError

if TYPE_CHECKING:
    import pandas as pd

CHAPTER = "02_sequence_length"


def _lengths(name: str, value: Any) -> list[int]:
    values = [common.as_int(name, v) for v in common.as_list(name, value)]
    if len(set(values)) != len(values):
        raise ParameterError(f"{name}={values!r} has duplicates; give distinct lengths")
    return sorted(values)


def check(models: Any = ("smollm2-135m",), weights: str = "auto", layers: int | None = None,
          input_tokens: Any = (32, 64, 128, 256), output_tokens: Any = (4, 8, 16, 32),
          fixed_input_tokens: int = 64, fixed_output_tokens: int = 8,
          joint_input_tokens: Any = (32, 128), joint_output_tokens: Any = (8, 32),
          batch_size: int = 1, dtype: str = "float32", device: str = "cpu", repeats: Any = None,
          warmup: int = 1, idle_s: float = 2.0, isolate: bool = True, executor: str = "local",
          ray_address: str | None = None, run_dir: str | None = None,
          reference_dir: str | None = None, alpha: float = 0.05, region: str = carbon.DEFAULT_REGION,
          price_per_kwh: float | None = None, pue: float = carbon.DEFAULT_PUE,
          **unknown: Any) -> dict[str, Any]:
    """Checked parameters plus the three sweep configs; raises before any work."""
    if unknown:
        raise ParameterError(f"unknown parameter(s) {sorted(unknown)}")
    impact = carbon.check_params(region, price_per_kwh, pue)   # region, price_per_kwh, pue
    as_seq = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
    inputs, outputs = _lengths("input_tokens", as_seq(input_tokens)), _lengths("output_tokens", as_seq(output_tokens))
    joint_in = _lengths("joint_input_tokens", as_seq(joint_input_tokens))
    joint_out = _lengths("joint_output_tokens", as_seq(joint_output_tokens))
    fixed_in = common.as_int("fixed_input_tokens", fixed_input_tokens)
    fixed_out = common.as_int("fixed_output_tokens", fixed_output_tokens)
    if len(joint_in) < 2 or len(joint_out) < 2:
        raise ParameterError("joint_input_tokens and joint_output_tokens need >= 2 lengths each "
                             "(the joint grid estimates the interaction)")
    base = {
        "chapter": CHAPTER, "models": sweeps.model_specs(as_seq(models), weights, layers),
        "tasks": ["none"], "batch_sizes": [common.as_int("batch_size", batch_size)],
        "dtypes": [dtype], "device": common.as_device("device", device),
        "warmup": common.as_int("warmup", warmup, minimum=0), "idle_s": common.as_number("idle_s", idle_s),
        "repeats": sweeps.repeat_policy(repeats or {"min": 3, "max": 5, "ci_rel": 0.05}),
        "isolate": common.as_bool("isolate", isolate), "quality": {"items": 0},
        "executor": executor, "ray_address": ray_address,
    }
    configs = [
        {**base, "name": f"{CHAPTER}-input", "input_tokens": inputs, "output_tokens": [fixed_out]},
        {**base, "name": f"{CHAPTER}-output", "input_tokens": [fixed_in], "output_tokens": outputs},
        {**base, "name": f"{CHAPTER}-joint", "input_tokens": joint_in, "output_tokens": joint_out},
    ]
    sweeps.check_configs(configs)
    return {"configs": configs, "run_dir": common.run_dir(CHAPTER, run_dir),
            "reference": common.reference_runs(common.reference_root(reference_dir), CHAPTER),
            "alpha": common.as_fraction("alpha", alpha, 1e-6, 0.5),
            "fixed_input_tokens": fixed_in, "fixed_output_tokens": fixed_out,
            "joint_input_tokens": joint_in, "joint_output_tokens": joint_out,
            **impact}


def measure(params: dict[str, Any], progress: bool = True) -> pd.DataFrame:
    """Run (or reuse) the three sweeps; the rows of exactly their cells.

    ``model`` is labelled with what differs from the published model (:mod:`nrg.book.labels`);
    the published name stays in ``model_name``.
    """
    from nrg.book.labels import with_model_labels

    return with_model_labels(sweeps.measure(params["configs"], Path(params["run_dir"]), progress=progress))


def ok_phase(df: pd.DataFrame, phase: str) -> pd.DataFrame:
    """Rows of one phase whose cell ran: failed cells carry no energy to plot."""
    return df[(df["phase"] == phase) & (df["status"] == "ok")].copy()


def input_sweep(gen: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Generation rows of the input-length line (output length fixed)."""
    return gen[gen["output_tokens"] == params["fixed_output_tokens"]]


def output_sweep(gen: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Generation rows of the output-length line (input length fixed)."""
    return gen[gen["input_tokens"] == params["fixed_input_tokens"]]


def joint_grid(gen: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Generation rows of the joint grid (balanced: for the ANOVA)."""
    return gen[gen["input_tokens"].isin(params["joint_input_tokens"])
               & gen["output_tokens"].isin(params["joint_output_tokens"])]
