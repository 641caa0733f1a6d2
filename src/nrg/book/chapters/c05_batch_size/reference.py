"""Chapter 5's GPU reference: energy per token against the batch size, two paper models, on a GPU only.

:func:`reference_part` is what ``nrg reference`` measures for the chapter on a
GPU (on a CPU the batch sweep is the same generation workload as chapter 2's
part, so a CPU run, which exists to test the path, leaves it out);
:func:`key_table` is what the chapter's reference section shows of it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nrg.book.chapters.c05_batch_size.driver import CHAPTER
from nrg.book.common import Text
from nrg.book.reference_section import ok_phase
from nrg.errors import ParameterError
from nrg.reference.parts import Part, by_size, config

if TYPE_CHECKING:
    import pandas as pd

#: Place in ``nrg reference``'s priority order (lowest first).
PRIORITY = 5
#: The batch sizes on a GPU (the gpu-paper profile's range, fewer steps to fit a short budget).
GPU_BATCH_SIZES = (1, 4, 16, 64)


def reference_part(device: str) -> Part | None:
    """On a GPU: gpt2 and gpt-neo-2.7b at :data:`GPU_BATCH_SIZES`, written to ``<out>/05_batch_size/``; none on a CPU."""
    if not device.startswith("cuda"):
        return None
    return Part("batch_size", CHAPTER, "energy per token against the batch size, two paper models",
                configs=(config(f"{CHAPTER}-reference", CHAPTER, device, by_size(["gpt2", "gpt-neo-2.7b"], device),
                                batch_sizes=list(GPU_BATCH_SIZES), input_tokens=[256], output_tokens=[64]),))



def key_table(rows: pd.DataFrame, params: Mapping[str, Any]) -> list[Any]:
    """Per model and batch size: energy per token, latency, throughput and their change from the smallest."""
    from nrg.book.chapters.c05_batch_size import driver as batch_size

    gen = ok_phase(rows, "generate")
    if gen.empty:
        raise ParameterError("no successful generation rows")
    shown: list[Any] = [batch_size.change_table(gen)]
    if gen["batch_size"].nunique() < 2:
        shown.append(Text(f"Only batch size {int(gen['batch_size'].iloc[0])} was measured (the run's budget "
                          "stopped before the others): there is no batch size to compare it with."))
    else:
        shown.append(Text(str(batch_size.batch_findings(gen))))
    return shown
