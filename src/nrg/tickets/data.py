"""The tickets of a finetune cell: synthetic or the user's, split into training and held-out.

Every cell process rebuilds its data from the options and the sweep's seed
(generating a few hundred tickets takes milliseconds), so a cell needs no
file from another cell; the same options and seed give the same split on
every machine.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nrg.errors import ParameterError
from nrg.tickets.options import FinetuneOptions


@dataclass(frozen=True)
class TaskData:
    """The tickets of one task split into training and held-out evaluation."""

    train_texts: tuple[str, ...]
    train_targets: tuple[Any, ...]
    eval_texts: tuple[str, ...]
    eval_targets: tuple[Any, ...]
    labels: tuple[str, ...] = ()


def load_tickets(options: FinetuneOptions, seed: int, task: str | None = None) -> list[Any]:
    """The user's tickets (``tickets_path``) or ``n_tickets`` synthetic ones of ``seed``.

    The response column is required only when ``task`` is ``response`` (or None: both tasks).
    """
    if options.tickets_path:
        from nrg.tickets.loader import load_tickets as load_file

        response = options.response_column if task in (None, "response") else None
        if task == "response" and response is None:
            raise ParameterError("tasks includes 'response' but response_column is None; name the column "
                                 "with the reference responses, or run only root_cause")
        return load_file(options.tickets_path, text_column=options.text_column,
                         label_column=options.label_column, response_column=response)
    from nrg.tickets.generator import generate_tickets

    return generate_tickets(options.n_tickets, seed, noise=options.noise)


def dataset_name(options: FinetuneOptions, seed: int) -> str:
    """What the ``dataset`` column says: the synthetic recipe, or the file and its digest."""
    if options.tickets_path:
        return f"{Path(options.tickets_path).name}#{(options.tickets_sha256 or '')[:12]}"
    return f"synthetic-n{options.n_tickets}-s{seed}-noise{options.noise:g}"


def split_tickets(tickets: Sequence[Any], task: str, eval_fraction: float, n_generate: int) -> TaskData:
    """Deterministic split (the last ``eval_fraction`` held out); labels become ids.

    Label ids follow :data:`nrg.tickets.generator.LABELS`, then any other label sorted.
    """
    from nrg.tickets.generator import LABELS

    n_eval = max(1, round(len(tickets) * eval_fraction))
    train, held_out = list(tickets[:-n_eval]), list(tickets[-n_eval:])
    if not train:
        raise ParameterError(f"n_tickets={len(tickets)} leaves no training ticket; give more tickets")
    if task == "response":
        held_out = held_out[:n_generate]
        return TaskData(tuple(t.text for t in train), tuple(t.response for t in train),
                        tuple(t.text for t in held_out), tuple(t.response for t in held_out))
    seen = {t.label for t in tickets}
    labels = tuple(label for label in LABELS if label in seen) + tuple(sorted(seen - set(LABELS)))
    index = {label: i for i, label in enumerate(labels)}
    return TaskData(tuple(t.text for t in train), tuple(index[t.label] for t in train),
                    tuple(t.text for t in held_out), tuple(index[t.label] for t in held_out), labels)


def task_data(options: FinetuneOptions, task: str, seed: int) -> TaskData:
    """The split a cell of ``task`` trains and evaluates on."""
    tickets = load_tickets(options, seed, task)
    return split_tickets(tickets, task, options.eval_fraction, options.n_generate)
