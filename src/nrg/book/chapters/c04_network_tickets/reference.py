"""Chapter 4's GPU reference: inference by quantization and 2:4 pruning (sparse kernels against dense).

:func:`reference_part` is what ``nrg reference`` measures for the chapter
(fp16 / bf16, int8 and nf4 where bitsandbytes imports; each quantization that
cannot run here is left out with the reason); :func:`key_table` is what the
chapter's reference section shows of it: ranked like the live run when the
rows are the chapter's fine-tuning cells, else inference by quantization x pruning.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nrg.book.chapters.c04_network_tickets.driver import CHAPTER
from nrg.book.common import Text
from nrg.book.reference_section import ok_phase
from nrg.errors import ParameterError
from nrg.reference.parts import Part, config

if TYPE_CHECKING:
    import pandas as pd

#: Place in ``nrg reference``'s priority order (lowest first).
PRIORITY = 3


def _quant_methods(device: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The quantizations that run here, and those left out with the reason."""
    from nrg.compress.quantization import support

    kind = "cuda" if device.startswith("cuda") else "cpu"
    wanted = ["bf16", "fp16", "int8-bnb", "nf4"] if kind == "cuda" else ["none", "int8-dynamic", "int8-bnb", "nf4"]
    runs = [q for q in wanted if not support(q, kind)]
    return runs, [(f"quant={q}", support(q, kind)) for q in wanted if q not in runs]


def reference_part(device: str) -> Part:
    """Inference of a small and a paper model (the small one on a CPU), dense and 2:4-pruned, per quantization."""
    gpu = device.startswith("cuda")
    quants, no_quant = _quant_methods(device)
    return Part("tickets", CHAPTER, "inference by quantization and 2:4 pruning (sparse kernels vs dense)",
                configs=(config(f"{CHAPTER}-inference", CHAPTER, device,
                                ["smollm2-135m", "mistral-7b-v0.1"] if gpu else ["smollm2-135m"],
                                input_tokens=[256] if gpu else [16], output_tokens=[64] if gpu else [4],
                                axes={"prune": ["none", "2:4"], "quant": quants}),),
                left_out=tuple(no_quant))



def key_table(rows: pd.DataFrame, params: Mapping[str, Any]) -> list[Any]:
    """Ranked like the live run when the rows are chapter 4's fine-tuning cells, else inference by quant x prune."""
    from nrg.book.chapters.c04_network_tickets import analysis as tickets_analysis

    if {"finetune", "inference"} & set(rows["phase"].dropna()):
        shown: list[Any] = []
        for task in sorted(set(rows["task"].dropna()) & set(params["metrics"])):
            for phase in tickets_analysis.PHASES:
                if not ok_phase(rows[rows["task"] == task], phase).empty:
                    shown += [Text(f"**{task}, {phase}**"),
                              tickets_analysis.ranking(rows, task, phase, params["metrics"][task], params["w"])]
        return shown
    gen = ok_phase(rows, "generate")
    if gen.empty:
        raise ParameterError("no successful generation or inference rows")
    keys = ["quant", "prune"]
    gen = gen.assign(**{k: gen[k].astype("string").fillna("none") for k in keys})
    table = gen.groupby(keys, sort=True).agg(
        energy_per_token_j=("energy_per_token_j", "mean"), time_s=("time_s", "mean"),
        tpot_s=("tpot_s", "mean"), kernel=("kernel", "first"), sparsity=("sparsity", "mean")).reset_index()
    dense = table[table["prune"] == "none"].set_index("quant")
    table["energy_vs_unpruned"] = table["energy_per_token_j"] / table["quant"].map(dense["energy_per_token_j"])
    table["time_vs_unpruned"] = table["time_s"] / table["quant"].map(dense["time_s"])
    return [Text("Inference (generation) per quantization x pruning; `*_vs_unpruned` is the ratio to the "
                 "unpruned model of the same quantization (task quality is not measured with random weights):"),
            table]
