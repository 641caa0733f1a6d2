"""Chapter 1's GPU reference: the six paper models at full size, random weights, one length shape per task.

:func:`reference_part` is what ``nrg reference`` measures for the chapter
(smallest model first, the gpu-paper profile's length per task; without the
GSM8K file the generation task is left out and says why); :func:`key_table`
is what the chapter's reference section shows of it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nrg.book.chapters.c01_model_comparison.driver import CHAPTER
from nrg.book.reference_section import ok_phase
from nrg.errors import ParameterError
from nrg.reference.parts import PAPER_MODELS, Part, by_size, config

if TYPE_CHECKING:
    import pandas as pd

#: Place in ``nrg reference``'s priority order (lowest first).
PRIORITY = 2
GPU_TASK_LENGTHS = {"generation": (64, 256), "qa": (384, 32), "summarization": (480, 96)}
CPU_TASK_LENGTHS = {"generation": (16, 8), "qa": (32, 4), "summarization": (48, 8)}


def _gsm8k_left_out() -> tuple[str, str] | None:
    from nrg.tasks.loaders import gsm8k_path

    try:
        gsm8k_path()
    except ParameterError as exc:
        return "task generation (GSM8K)", str(exc)
    return None


def reference_part(device: str) -> Part:
    """One sweep per task (the paper models, one length shape each) on ``device``."""
    lengths = GPU_TASK_LENGTHS if device.startswith("cuda") else CPU_TASK_LENGTHS
    no_gsm8k = _gsm8k_left_out()
    tasks = [t for t in lengths if not (t == "generation" and no_gsm8k)]
    paper = by_size(list(PAPER_MODELS), device)
    return Part("model_comparison", CHAPTER, "the six paper models, one length shape per task",
                configs=tuple(config(f"{CHAPTER}-{t}", CHAPTER, device, paper, tasks=[t],
                                     input_tokens=[lengths[t][0]], output_tokens=[lengths[t][1]]) for t in tasks),
                left_out=(no_gsm8k,) if no_gsm8k else ())



def key_table(rows: pd.DataFrame, params: Mapping[str, Any]) -> list[Any]:
    """Per model, task and lengths: mean energy per token, TTFT, TPOT, throughput and power."""
    from nrg.stats import summarize

    gen = ok_phase(rows, "generate")
    if gen.empty:
        raise ParameterError("no successful generation rows")
    measures = ["energy_per_token_j", "ttft_s", "tpot_s", "tokens_per_s", "avg_power_w"]
    table = summarize(gen, by=["model", "task", "input_tokens", "output_tokens"], measures=measures)
    return [table.pivot_table(index=["model", "task", "input_tokens", "output_tokens"], columns="measure",
                              values="mean")[measures]]
