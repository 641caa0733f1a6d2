"""Task quality metrics: SQuAD exact match / F1, ROUGE-1/2/L, GSM8K final-answer match.

Scores are fractions in [0, 1] (the SQuAD script reports percentages; here
every metric shares one scale so they can sit in one ``score`` column).
"""
from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from nrg.errors import ParameterError

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lowercase, drop punctuation and articles, squeeze spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised prediction equals the normalised reference, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Bag-of-tokens F1 after normalisation (empty vs empty counts as a match, as in SQuAD 2.0)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def squad_scores(prediction: str, references: Sequence[str]) -> dict[str, float]:
    """EM and F1 against the best-matching reference answer."""
    if not references:
        raise ParameterError("references is empty; a QA item needs at least one answer")
    return {"exact_match": max(exact_match(prediction, r) for r in references),
            "f1": max(token_f1(prediction, r) for r in references)}


def rouge_scores(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures with Porter stemming.

    ``rouge-score`` (the ``quality`` extra) when it imports; else
    :mod:`nrg.tasks.rouge`, which gives the same numbers without it (tested).
    """
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        from nrg.tasks import rouge

        return rouge.scores(prediction, reference)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    result = scorer.score(reference, prediction)
    return {"rouge_1": result["rouge1"].fmeasure, "rouge_2": result["rouge2"].fmeasure,
            "rouge_l": result["rougeL"].fmeasure}


def last_number(text: str) -> str | None:
    """The last number in ``text`` with thousands separators removed, or None."""
    found = _NUMBER.findall(text)
    return found[-1].replace(",", "").rstrip(".") if found else None


def gsm8k_final_answer(solution: str) -> str:
    """The number after GSM8K's ``####`` marker (or the last number when there is none)."""
    tail = solution.split("####")[-1]
    number = last_number(tail)
    return number if number is not None else tail.strip()


def numeric_match(prediction: str, reference: str) -> float:
    """1.0 when the last number of the prediction equals the reference number."""
    got = last_number(prediction)
    if got is None:
        return 0.0
    try:
        return float(abs(float(got) - float(reference.replace(",", ""))) < 1e-6)
    except ValueError:
        return float(got == reference.strip())


def mean_scores(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Average each metric over items."""
    if not rows:
        return {}
    return {key: sum(r[key] for r in rows) / len(rows) for key in rows[0]}
