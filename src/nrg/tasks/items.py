"""One unit of work for a task: what the model is asked and what counts as right."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskItem:
    """``prompt`` is the question or instruction text, ``context`` the passage it is about.

    ``reference`` is the expected output: the answer spans for QA (a list;
    the best match counts), the reference summary, or GSM8K's final number.
    """

    id: str
    prompt: str
    reference: str | list[str]
    context: str | None = None

    @property
    def references(self) -> list[str]:
        """The reference answers as a list (one or several)."""
        return list(self.reference) if isinstance(self.reference, list) else [self.reference]
