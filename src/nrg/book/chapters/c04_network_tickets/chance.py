"""The quality a model reaches without learning anything: the floor a "best" configuration must clear.

Why: a classifier that learned nothing (loss ln 8, macro-F1 0 everywhere) or a
generator that answers every ticket "I'm ready to help" still gets a ranking
by R, and its top row reads as a recommendation. Chapter 4 names a best
configuration only when its quality rises above what a model ignoring the
ticket scores on the same held-out tickets:

- root cause: the better of guessing uniformly among the k root causes
  (expected accuracy and macro-F1 1/k) and always answering the most common
  root cause of the training tickets;
- response: the best score of a fixed reply, each of the first few training
  tickets' reference responses sent to every held-out ticket.

Computed from the chapter's own tickets (no model runs), so it moves with
``n_tickets``, ``noise`` and ``tickets_path``.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

FIXED_REPLIES = 5   # training responses tried as a constant answer


def chance_quality(params: Mapping[str, Any], task: str, metric: str) -> float | None:
    """The chance level of ``metric`` on ``task``'s held-out tickets; None when it cannot be computed."""
    options = params.get("options") if isinstance(params, Mapping) else None
    if not options:
        return None
    try:
        from nrg.tickets.data import task_data
        from nrg.tickets.options import FinetuneOptions

        data = task_data(FinetuneOptions.from_dict(dict(options)), task, int(params.get("seed", 0)))
    except Exception:   # tickets unreadable here (a reference run's parameters): no chance level
        return None
    if task == "root_cause":
        return _classifier_chance(data, metric)
    return _reply_chance(data, metric)


def _classifier_chance(data: Any, metric: str) -> float | None:
    from nrg.tickets.metrics import accuracy, macro_f1

    targets = list(data.eval_targets)
    k = len(data.labels) or len(set(targets))
    if not targets or k == 0 or metric not in ("accuracy", "macro_f1"):
        return None
    majority = Counter(data.train_targets).most_common(1)[0][0]
    constant = [majority] * len(targets)
    score = accuracy(constant, targets) if metric == "accuracy" else macro_f1(constant, targets)
    return max(1.0 / k, float(score))


def _reply_chance(data: Any, metric: str) -> float | None:
    from nrg.tickets.metrics import bleu, rouge_l

    score = {"rouge_l": rouge_l, "bleu": bleu}.get(metric)
    references = [str(r) for r in data.eval_targets]
    if score is None or not references:
        return None
    replies = list(dict.fromkeys(str(r) for r in data.train_targets))[:FIXED_REPLIES]
    values = [float(score([reply] * len(references), references)) for reply in replies]
    values = [v for v in values if math.isfinite(v)]
    return max(values) if values else None
