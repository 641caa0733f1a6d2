"""ROUGE-1/2/L F-measures without ``rouge-score``: the same tokens, stems and formulas.

Why a second implementation: the lent GPU machine's image has neither
``rouge-score`` nor ``nltk``, and a missing metric must not cost a cell its
energy measurement. :func:`nrg.tasks.metrics.rouge_scores` uses ``rouge-score``
when it imports and this module otherwise; the tests check that both give the
same numbers (tokens and stems on thousands of words, scores on sentence pairs).

What ``rouge_score.rouge_scorer.RougeScorer(..., use_stemmer=True)`` does, and
so what this does: lowercase, every run of characters other than ``a-z0-9``
becomes a separator, tokens longer than 3 characters are Porter-stemmed (NLTK's
default ``NLTK_EXTENSIONS`` mode, ported below from ``nltk.stem.porter``,
Apache-2.0); ROUGE-N counts clipped n-gram matches, ROUGE-L takes the longest
common subsequence; each F-measure is 2PR / (P + R), 0 when P + R = 0.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

_SEPARATORS = re.compile(r"[^a-z0-9]+")
_VALID = re.compile(r"^[a-z0-9]+$")
_VOWELS = frozenset("aeiou")
_IRREGULAR = {"skies": "sky", "sky": "sky", "dying": "die", "lying": "lie", "tying": "tie", "news": "news",
              "innings": "inning", "inning": "inning", "outings": "outing", "outing": "outing",
              "cannings": "canning", "canning": "canning", "howe": "howe", "proceed": "proceed",
              "exceed": "exceed", "succeed": "succeed"}

Rule = tuple[str, str, "Callable[[str], bool] | None"]


# ---------------------------------------------------------------- Porter stemmer (NLTK extensions)


def _consonant(word: str, i: int) -> bool:
    if word[i] in _VOWELS:
        return False
    if word[i] == "y":
        negate = False
        while i > 0 and word[i] == "y":
            negate = not negate
            i -= 1
        return (word[i] not in _VOWELS) != negate
    return True


def _flags(word: str) -> list[bool]:
    flags: list[bool] = []
    for i, ch in enumerate(word):
        flags.append(False if ch in _VOWELS else (ch != "y" or i == 0 or not flags[i - 1]))
    return flags


def _measure(stem: str) -> int:
    return "".join("c" if c else "v" for c in _flags(stem)).count("vc")


def _positive(stem: str) -> bool:
    return _measure(stem) > 0


def _has_vowel(stem: str) -> bool:
    return not all(_flags(stem))


def _double_consonant(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _consonant(word, len(word) - 1)


def _cvc(word: str) -> bool:
    n = len(word)
    if n >= 3 and _consonant(word, n - 3) and not _consonant(word, n - 2) and _consonant(word, n - 1) \
            and word[-1] not in "wxy":
        return True
    return n == 2 and not _consonant(word, 0) and _consonant(word, 1)


def _apply(word: str, rules: Sequence[Rule]) -> str:
    """The first rule whose suffix matches decides (applied or not); ``*d`` = a double consonant."""
    for suffix, replacement, condition in rules:
        if suffix == "*d" and _double_consonant(word):
            stem = word[:-2]
            return stem + replacement if condition is None or condition(stem) else word
        if word.endswith(suffix):
            stem = word[: len(word) - len(suffix)]
            return stem + replacement if condition is None or condition(stem) else word
    return word


def _step1a(word: str) -> str:
    if word.endswith("ies") and len(word) == 4:
        return word[:-3] + "ie"
    return _apply(word, [("sses", "ss", None), ("ies", "i", None), ("ss", "ss", None), ("s", "", None)])


def _step1b(word: str) -> str:
    if word.endswith("ied"):
        return word[:-3] + ("ie" if len(word) == 4 else "i")
    if word.endswith("eed"):
        stem = word[:-3]
        return stem + "ee" if _measure(stem) > 0 else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and _has_vowel(word[: -len(suffix)]):
            stem = word[: -len(suffix)]
            break
    else:
        return word
    return _apply(stem, [("at", "ate", None), ("bl", "ble", None), ("iz", "ize", None),
                         ("*d", stem[-1], lambda _: stem[-1] not in "lsz"),
                         ("", "e", lambda s: _measure(s) == 1 and _cvc(s))])


def _step1c(word: str) -> str:
    return _apply(word, [("y", "i", lambda s: len(s) > 1 and _consonant(s, len(s) - 1))])


_STEP2: list[Rule] = [(s, r, _positive) for s, r in (
    ("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"),
    ("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"), ("ization", "ize"),
    ("ation", "ate"), ("ator", "ate"), ("alism", "al"), ("iveness", "ive"), ("fulness", "ful"),
    ("ousness", "ous"), ("aliti", "al"), ("iviti", "ive"), ("biliti", "ble"), ("fulli", "ful"))]


def _step2(word: str) -> str:
    if word.endswith("alli") and _positive(word[:-4]):
        return _step2(word[:-4] + "al")
    return _apply(word, [*_STEP2, ("logi", "log", lambda _: _positive(word[:-3]))])


_STEP3: list[Rule] = [(s, r, _positive) for s, r in (
    ("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"), ("ful", ""), ("ness", ""))]


def _gt1(stem: str) -> bool:
    return _measure(stem) > 1


_STEP4: list[Rule] = [
    *((s, "", _gt1) for s in ("al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent")),
    ("ion", "", lambda s: _measure(s) > 1 and s[-1] in "st"),
    *((s, "", _gt1) for s in ("ou", "ism", "ate", "iti", "ous", "ive", "ize")),
]


def _step5(word: str) -> str:
    if word.endswith("e"):
        stem = word[:-1]
        if _measure(stem) > 1 or (_measure(stem) == 1 and not _cvc(stem)):
            word = stem
    return _apply(word, [("ll", "l", lambda _: _measure(word[:-1]) > 1)])


def porter_stem(word: str) -> str:
    """Porter stem of ``word`` as ``nltk.stem.porter.PorterStemmer()`` (NLTK_EXTENSIONS) gives it."""
    stem = word.lower()
    if stem in _IRREGULAR:
        return _IRREGULAR[stem]
    if len(word) <= 2:
        return stem
    for step in (_step1a, _step1b, _step1c, _step2):
        stem = step(stem)
    return _step5(_apply(_apply(stem, _STEP3), _STEP4))


# ---------------------------------------------------------------- ROUGE


def tokens(text: str, stem: bool = True) -> list[str]:
    """rouge-score's tokens: lowercase alphanumeric runs, stemmed when longer than 3 characters."""
    words = _SEPARATORS.sub(" ", text.lower()).split()
    if stem:
        words = [porter_stem(w) if len(w) > 3 else w for w in words]
    return [w for w in words if _VALID.match(w)]


def _f(matches: int, predicted: int, target: int) -> float:
    precision, recall = matches / max(predicted, 1), matches / max(target, 1)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def rouge_n(target: Sequence[str], prediction: Sequence[str], n: int) -> float:
    """ROUGE-N F-measure: clipped n-gram matches over the n-grams of each side."""
    def grams(toks: Sequence[str]) -> Counter[tuple[str, ...]]:
        return Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))

    want, got = grams(target), grams(prediction)
    return _f(sum((want & got).values()), sum(got.values()), sum(want.values()))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, two rows)."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(target: Sequence[str], prediction: Sequence[str]) -> float:
    """ROUGE-L F-measure: LCS over the prediction's length (P) and the target's (R); 0 if either is empty."""
    if not target or not prediction:
        return 0.0
    return _f(lcs_length(target, prediction), len(prediction), len(target))


def scores(prediction: str, reference: str) -> dict[str, float]:
    """``rouge_1``, ``rouge_2``, ``rouge_l`` F-measures of ``prediction`` against ``reference``, stemmed."""
    target, predicted = tokens(reference), tokens(prediction)
    return {"rouge_1": rouge_n(target, predicted, 1), "rouge_2": rouge_n(target, predicted, 2),
            "rouge_l": rouge_l(target, predicted)}
