"""Prompts: chat templates for instruction models, plain prompts otherwise, exact token lengths.

Systems runs need inputs of an exact token length even with a real tokenizer;
:func:`prompt_ids` keeps the task's instruction and template intact and
truncates or repeats only the passage (or question) to hit the length.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from nrg.errors import ParameterError, check_positive

SLOT = "\ue000"     # private-use character marking where the fittable text sits


def has_chat_template(tokenizer: Any) -> bool:
    """True when the tokenizer carries a chat template (instruction-tuned models)."""
    return bool(getattr(tokenizer, "chat_template", None))


def is_t5_tokenizer(tokenizer: Any) -> bool:
    """T5 was trained with task prefixes (``summarize:``, ``question: ... context:``)."""
    return tokenizer is not None and "T5" in type(tokenizer).__name__


def wrap(message: str, tokenizer: Any) -> str:
    """Put a user message through the chat template when the tokenizer has one."""
    if not has_chat_template(tokenizer):
        return message
    return cast(str, tokenizer.apply_chat_template([{"role": "user", "content": message}],
                                                   add_generation_prompt=True, tokenize=False))


def fit_to_tokens(token_ids: Sequence[int], n: int) -> list[int]:
    """Exactly ``n`` ids: truncate a longer sequence, repeat a shorter one cyclically."""
    check_positive("n", n)
    ids = list(token_ids)
    if not ids:
        raise ParameterError("token_ids is empty; nothing to fit to a length")
    repeats = -(-n // len(ids))
    return (ids * repeats)[:n]


def _special_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Special tokens the tokenizer adds before and after a text (e.g. BOS, or T5's </s>)."""
    bare = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start:start + len(bare)] == bare:
            return full[:start], full[start + len(bare):]
    return [], []


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens, so prompt parts can be counted and joined."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def _fixed_parts(tokenizer: Any, rendered_with_slot: str) -> tuple[list[int], list[int]]:
    """Ids before and after the slot: template, instruction and special tokens, never cut."""
    prefix, _, suffix = rendered_with_slot.partition(SLOT)
    lead, trail = ([], []) if has_chat_template(tokenizer) else _special_ids(tokenizer)
    return lead + encode(tokenizer, prefix), encode(tokenizer, suffix) + trail


def min_tokens(tokenizer: Any, rendered_with_slot: str) -> int:
    """The shortest exact length a prompt can take: its fixed parts plus one token of text."""
    head, tail = _fixed_parts(tokenizer, rendered_with_slot)
    return len(head) + len(tail) + 1


def ids_to_length(tokenizer: Any, rendered_with_slot: str, body: str, n_tokens: int) -> list[int]:
    """Token ids of exactly ``n_tokens``: template parts kept, ``body`` fitted into the slot."""
    check_positive("input_tokens", n_tokens)
    head, tail = _fixed_parts(tokenizer, rendered_with_slot)
    room = n_tokens - len(head) - len(tail)
    if room < 1:
        raise ParameterError(f"input_tokens={n_tokens} is too small for this prompt template; "
                             f"the minimum is {len(head) + len(tail) + 1}")
    return head + fit_to_tokens(encode(tokenizer, body), room) + tail
