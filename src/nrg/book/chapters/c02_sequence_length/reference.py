"""Chapter 2's GPU reference: the prefill / decode split and the length slopes of two paper models.

:func:`reference_part` is what ``nrg reference`` measures for the chapter (a
2 x 2 grid of input and output lengths), right after the meters; :func:`key_table`
is what the chapter's reference section shows of it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nrg.book.chapters.c02_sequence_length.driver import CHAPTER
from nrg.book.common import Text
from nrg.book.reference_section import ok_phase
from nrg.errors import ParameterError
from nrg.reference.parts import Part, config

if TYPE_CHECKING:
    import pandas as pd

#: Place in ``nrg reference``'s priority order (lowest first).
PRIORITY = 1


def reference_part(device: str) -> Part:
    """gpt2 and gpt-neo-2.7b over two input and two output lengths on ``device``."""
    gpu = device.startswith("cuda")
    return Part("sequence_length", CHAPTER, "prefill/decode split and length slopes, two paper models",
                configs=(config(f"{CHAPTER}-reference", CHAPTER, device, ["gpt2", "gpt-neo-2.7b"],
                                input_tokens=[128, 512] if gpu else [16, 32],
                                output_tokens=[32, 128] if gpu else [4, 8]),))



def key_table(rows: pd.DataFrame, params: Mapping[str, Any]) -> list[Any]:
    """The fitted energy per input and per output token, per model."""
    from nrg.stats import per_token_costs

    gen = ok_phase(rows, "generate")
    if gen.empty:
        raise ParameterError("no successful generation rows")
    return [Text("Fitted energy per input and per output token (OLS of the generation's energy on both "
                 "lengths, per model):"), per_token_costs(gen, response="energy_j", by=["model"])]
