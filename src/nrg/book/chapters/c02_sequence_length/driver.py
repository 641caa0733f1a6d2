"""Driver of chapter 2: how input and output length drive energy, latency and throughput.

Three sweeps share one run folder: input length at a fixed output length,
output length at a fixed input length, and a small joint grid for the ANOVA
and the interaction.  Identical cells (the fixed point lies on both lines) have
identical ids, so they are measured once.  Prompts are synthetic token ids of
exact length: this is a systems experiment, and a prompt's content does not
change its cost once its length is fixed.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nrg.book import common, sweeps
from nrg.errors import ParameterError, check_choice
from nrg.sweep.config import EXECUTORS

if TYPE_CHECKING:
    import pandas as pd

CHAPTER = "02_sequence_length"


def _lengths(name: str, value: Any) -> tuple[int, ...]:
    values = [common.as_int(name, v) for v in common.as_list(name, value)]
    if len(set(values)) != len(values):
        raise ParameterError(f"{name}={values!r} has duplicates; give distinct lengths")
    return tuple(sorted(values))


@dataclass(frozen=True)
class Params(sweeps.SweepParams):
    """Input length at a fixed output length, output length at a fixed input length, a joint grid."""

    CHAPTER = CHAPTER

    input_tokens: tuple[int, ...] = (32, 64, 128, 256)      # input-length line, at fixed_output_tokens
    output_tokens: tuple[int, ...] = (4, 8, 16, 32)         # output-length line, at fixed_input_tokens
    fixed_input_tokens: int = 64
    fixed_output_tokens: int = 8
    joint_input_tokens: tuple[int, ...] = (32, 128)         # joint grid (the ANOVA and the interaction)
    joint_output_tokens: tuple[int, ...] = (8, 32)
    batch_size: int = 1
    executor: str = "local"
    ray_address: str | None = None

    def parse(self) -> None:
        """The lengths of the three sweeps, batch size, executor."""
        for name in ("input_tokens", "output_tokens", "joint_input_tokens", "joint_output_tokens"):
            self._put(name, _lengths(name, getattr(self, name)))
        for name in ("fixed_input_tokens", "fixed_output_tokens", "batch_size"):
            self._put(name, common.as_int(name, getattr(self, name)))
        if len(self.joint_input_tokens) < 2 or len(self.joint_output_tokens) < 2:
            raise ParameterError("joint_input_tokens and joint_output_tokens need >= 2 lengths each "
                                 "(the joint grid estimates the interaction)")
        check_choice("executor", self.executor, EXECUTORS)

    def configs(self) -> list[dict[str, Any]]:
        """The three sweeps, into one run folder (a cell on two of them is measured once)."""
        base = {**self.base_config(), "tasks": ["none"], "batch_sizes": [self.batch_size], "quality": {"items": 0},
                "executor": self.executor, "ray_address": self.ray_address}
        return [
            {**base, "name": f"{CHAPTER}-input", "input_tokens": list(self.input_tokens),
             "output_tokens": [self.fixed_output_tokens]},
            {**base, "name": f"{CHAPTER}-output", "input_tokens": [self.fixed_input_tokens],
             "output_tokens": list(self.output_tokens)},
            {**base, "name": f"{CHAPTER}-joint", "input_tokens": list(self.joint_input_tokens),
             "output_tokens": list(self.joint_output_tokens)},
        ]


def measure(params: Params, progress: bool = True) -> pd.DataFrame:
    """Run (or reuse) the three sweeps, checked when ``params`` was built; the rows of exactly their cells."""
    return params.measure(progress)


def ok_phase(df: pd.DataFrame, phase: str) -> pd.DataFrame:
    """Rows of one phase whose cell ran: failed cells carry no energy to plot."""
    return df[(df["phase"] == phase) & (df["status"] == "ok")].copy()


def input_sweep(gen: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Generation rows of the input-length line (output length fixed)."""
    return gen[gen["output_tokens"] == params.fixed_output_tokens]


def output_sweep(gen: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Generation rows of the output-length line (input length fixed)."""
    return gen[gen["input_tokens"] == params.fixed_input_tokens]


def joint_grid(gen: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    """Generation rows of the joint grid (balanced: for the ANOVA).

    ``params``: the chapter's :class:`Params` (read as a mapping: :mod:`nrg.book.found` passes a copy).
    """
    return gen[gen["input_tokens"].isin(params["joint_input_tokens"])
               & gen["output_tokens"].isin(params["joint_output_tokens"])]
