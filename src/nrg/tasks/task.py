"""The three tasks of arXiv 2501.08219: text generation, question answering, summarization.

Each task owns its datasets (an embedded default that works offline, public
datasets by hub name, any local file of the same schema), how an item becomes
a prompt, and how predictions are scored.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nrg.errors import ParameterError, choice_error
from nrg.tasks import loaders, metrics, prompts
from nrg.tasks.items import TaskItem

TASKS: tuple[str, ...] = ("generation", "qa", "summarization")

# Offline datasets per task (the first is the default), then hub-only names.
EMBEDDED: dict[str, dict[str, Callable[[], list[TaskItem]]]] = {
    "generation": {"gsm8k": loaders.load_gsm8k},
    "qa": {"netops-qa": lambda: loaders.load_file(loaders.DATA_DIR / "netops_qa.jsonl", "qa")},
    "summarization": {"netops-sum": lambda: loaders.load_file(
        loaders.DATA_DIR / "netops_summaries.jsonl", "summarization")},
}
HUB: dict[str, tuple[str, ...]] = {"generation": (), "qa": ("squad",),
                                   "summarization": ("cnn_dailymail", "xsum")}


def datasets_for(task: str) -> tuple[str, ...]:
    """Dataset names a task accepts (besides a local file path)."""
    return (*EMBEDDED[task], *HUB[task])


class BaseTask:
    """Shared parts: dataset loading (once), seeded sampling, rendering through the template."""

    name = ""

    def __init__(self, dataset: str, split: str | None = None) -> None:
        self.dataset = dataset
        self.split = split
        self._items: list[TaskItem] | None = None

    def all_items(self) -> list[TaskItem]:
        """Every item of the dataset, loaded once and kept."""
        if self._items is None:
            if self.dataset in EMBEDDED[self.name]:
                self._items = EMBEDDED[self.name][self.dataset]()
            elif self.dataset in HUB[self.name]:
                self._items = loaders.load_hub(self.dataset, self.name, self.split)
            else:
                self._items = loaders.load_file(self.dataset, self.name)
        return self._items

    def items(self, n: int | None = None, seed: int = 0) -> list[TaskItem]:
        """``n`` items in a seeded random order (all of them when ``n`` is None)."""
        pool = list(self.all_items())
        random.Random(seed).shuffle(pool)
        if n is None:
            return pool
        if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n > len(pool):
            raise ParameterError(f"n={n!r} is not valid; dataset {self.dataset!r} has {len(pool)} "
                                 f"items, choose 1..{len(pool)}")
        return pool[:n]

    def template(self, item: TaskItem, tokenizer: Any) -> tuple[str, str]:
        """The user message with :data:`prompts.SLOT` where the fittable text goes, and that text."""
        raise NotImplementedError

    def _render_slot(self, item: TaskItem, tokenizer: Any) -> tuple[str, str]:
        message, body = self.template(item, tokenizer)
        return prompts.wrap(message, tokenizer), body

    def render(self, item: TaskItem, tokenizer: Any) -> str:
        """The prompt text: chat template when the tokenizer has one, else a plain prompt."""
        rendered, body = self._render_slot(item, tokenizer)
        return rendered.replace(prompts.SLOT, body)

    def prompt_ids(self, item: TaskItem, tokenizer: Any, n_tokens: int) -> list[int]:
        """Token ids of exactly ``n_tokens`` for ``item`` (passage truncated or repeated)."""
        rendered, body = self._render_slot(item, tokenizer)
        return prompts.ids_to_length(tokenizer, rendered, body, n_tokens)

    def min_input_tokens(self, item: TaskItem, tokenizer: Any) -> int:
        """The smallest ``input_tokens`` :meth:`prompt_ids` accepts for ``item``."""
        rendered, _ = self._render_slot(item, tokenizer)
        return prompts.min_tokens(tokenizer, rendered)

    @staticmethod
    def _check_lengths(predictions: Sequence[str], items: Sequence[TaskItem]) -> None:
        if len(predictions) != len(items):
            raise ParameterError(f"predictions has {len(predictions)} entries but items has {len(items)}")

    def score(self, predictions: Sequence[str], items: Sequence[TaskItem]) -> dict[str, float]:
        """Mean quality metrics of ``predictions`` for ``items``; each task defines its metrics."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dataset={self.dataset!r})"


def _first_line(text: str) -> str:
    """Generated answers often run on; the answer is the first non-empty line."""
    return next((line.strip() for line in text.strip().splitlines() if line.strip()), "")


class QATask(BaseTask):
    """Extractive QA; scored with SQuAD exact match and F1 on the first line of the output."""

    name = "qa"

    def template(self, item: TaskItem, tokenizer: Any) -> tuple[str, str]:
        """Extractive QA prompt; the context is the fittable text (T5 gets its ``question:`` prefix)."""
        context = item.context or ""
        if prompts.is_t5_tokenizer(tokenizer):
            return f"question: {item.prompt} context: {prompts.SLOT}", context
        if prompts.has_chat_template(tokenizer):
            return (f"Answer the question with a short phrase copied from the context.\n\n"
                    f"Context: {prompts.SLOT}\n\nQuestion: {item.prompt}"), context
        return f"Context: {prompts.SLOT}\nQuestion: {item.prompt}\nAnswer:", context

    def score(self, predictions: Sequence[str], items: Sequence[TaskItem]) -> dict[str, float]:
        """SQuAD exact match and token F1 on each prediction's first line."""
        self._check_lengths(predictions, items)
        return metrics.mean_scores([metrics.squad_scores(_first_line(p), it.references)
                                    for p, it in zip(predictions, items, strict=True)])


class SummarizationTask(BaseTask):
    """Abstractive summarization; scored with ROUGE-1/2/L F-measures."""

    name = "summarization"

    def template(self, item: TaskItem, tokenizer: Any) -> tuple[str, str]:
        """Summarization prompt; the document is the fittable text (T5 ``summarize:``, else TL;DR)."""
        document = item.context or ""
        if prompts.is_t5_tokenizer(tokenizer):
            return f"summarize: {prompts.SLOT}", document
        if prompts.has_chat_template(tokenizer):
            return f"Summarize the following text in one or two sentences.\n\n{prompts.SLOT}", document
        return f"{prompts.SLOT}\n\nTL;DR:", document

    def score(self, predictions: Sequence[str], items: Sequence[TaskItem]) -> dict[str, float]:
        """ROUGE-1/2/L F-measures against the first reference."""
        self._check_lengths(predictions, items)
        return metrics.mean_scores([metrics.rouge_scores(p.strip(), it.references[0])
                                    for p, it in zip(predictions, items, strict=True)])


class GenerationTask(BaseTask):
    """Text generation with checkable answers (GSM8K): the last number of the output must match."""

    name = "generation"

    def template(self, item: TaskItem, tokenizer: Any) -> tuple[str, str]:
        """GSM8K prompt asking for step-by-step work ending in a number; the problem is the fittable text."""
        if prompts.has_chat_template(tokenizer):
            return (f"{prompts.SLOT}\n\nSolve the problem step by step and end with the final "
                    f"answer as a number."), item.prompt
        return f"Question: {prompts.SLOT}\nAnswer:", item.prompt

    def score(self, predictions: Sequence[str], items: Sequence[TaskItem]) -> dict[str, float]:
        """Exact match of the output's last number with the reference answer."""
        self._check_lengths(predictions, items)
        return metrics.mean_scores([{"exact_match": metrics.numeric_match(p, it.references[0])}
                                    for p, it in zip(predictions, items, strict=True)])


_CLASSES: dict[str, type[BaseTask]] = {"generation": GenerationTask, "qa": QATask,
                                       "summarization": SummarizationTask}


def get_task(name: str, dataset: str | None = None, split: str | None = None) -> BaseTask:
    """A task by name with a dataset: an embedded or hub name, or a local .jsonl/.json/.csv file."""
    if name not in _CLASSES:
        raise choice_error("task", name, TASKS)
    dataset = dataset or next(iter(EMBEDDED[name]))
    if dataset not in datasets_for(name):
        path = Path(dataset).expanduser()
        if path.suffix not in loaders.FILE_SUFFIXES or not path.is_file():
            valid = ", ".join(repr(d) for d in datasets_for(name))
            raise ParameterError(f"dataset={dataset!r} is not valid for task {name!r}; choose one of: "
                                 f"{valid}, or an existing local {'/'.join(loaders.FILE_SUFFIXES)} file")
    return _CLASSES[name](dataset, split)
