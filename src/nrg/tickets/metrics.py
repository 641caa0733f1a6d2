"""Quality of the two ticket tasks: root-cause accuracy and macro-F1, response ROUGE-L and BLEU.

Why macro-F1 next to accuracy: with unbalanced classes (see
``nrg.tickets.generate_tickets(weights=...)``) a model that always answers the
majority class scores a high accuracy; macro-F1 averages the per-class F1 with
equal weight, so a class the model never gets right costs it 1/K of the score.
It is written out here (scikit-learn is not a dependency) and follows
scikit-learn's convention: a class with no true and no predicted example is
left out of the average; precision or recall with a zero denominator counts as 0.
"""
from __future__ import annotations

from collections.abc import Sequence

from nrg.errors import ParameterError


def _check_pairs(name: str, predictions: Sequence[object], references: Sequence[object]) -> None:
    if len(predictions) != len(references):
        raise ParameterError(f"{name}: {len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ParameterError(f"{name}: no predictions to score")


def accuracy(predictions: Sequence[object], references: Sequence[object]) -> float:
    """Share of predictions equal to their reference."""
    _check_pairs("accuracy", predictions, references)
    return sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)


def f1_per_class(predictions: Sequence[object], references: Sequence[object],
                 labels: Sequence[object] | None = None) -> dict[object, float]:
    """F1 of each class (one-vs-rest); ``labels`` fixes the classes, else those seen."""
    _check_pairs("f1", predictions, references)
    classes = list(labels) if labels is not None else sorted(set(references) | set(predictions), key=str)
    scores: dict[object, float] = {}
    for cls in classes:
        tp = sum(p == cls and r == cls for p, r in zip(predictions, references, strict=True))
        fp = sum(p == cls and r != cls for p, r in zip(predictions, references, strict=True))
        fn = sum(p != cls and r == cls for p, r in zip(predictions, references, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        scores[cls] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return scores


def macro_f1(predictions: Sequence[object], references: Sequence[object],
             labels: Sequence[object] | None = None) -> float:
    """Unweighted mean of the per-class F1 over classes that occur in references or predictions."""
    per_class = f1_per_class(predictions, references, labels)
    present = set(references) | set(predictions)
    used = [score for cls, score in per_class.items() if cls in present]
    return sum(used) / len(used) if used else 0.0


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure with stemming, in [0, 1] (rouge-score, else the same in nrg.tasks.rouge)."""
    from nrg.tasks.metrics import rouge_scores

    _check_pairs("rouge_l", predictions, references)
    scores = [rouge_scores(pred, ref)["rouge_l"] for pred, ref in zip(predictions, references, strict=True)]
    return sum(scores) / len(scores)


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (``sacrebleu.corpus_bleu``), in [0, 100] as sacrebleu reports it."""
    import sacrebleu

    _check_pairs("bleu", predictions, references)
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)
