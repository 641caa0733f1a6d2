"""Ticket metrics on hand cases; fine-tuning with energy per phase on tiny models; the study driver."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from nrg.errors import ParameterError
from nrg.tickets.metrics import accuracy, bleu, f1_per_class, macro_f1, rouge_l

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


# ------------------------------------------------------------------ metrics, by hand


def test_macro_f1_hand_case() -> None:
    refs = ["a", "a", "b", "b", "c"]
    preds = ["a", "b", "b", "b", "a"]
    # a: tp1 fp1 fn1 -> P .5 R .5 F .5 ; b: tp2 fp1 fn0 -> P 2/3 R 1 F .8 ; c: tp0 -> F 0
    assert f1_per_class(preds, refs) == pytest.approx({"a": 0.5, "b": 0.8, "c": 0.0})
    assert macro_f1(preds, refs) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert accuracy(preds, refs) == pytest.approx(3 / 5)


def test_macro_f1_perfect_and_absent_classes() -> None:
    assert macro_f1([1, 2, 2], [1, 2, 2]) == 1.0
    # a label listed but absent from both sides is left out of the average (sklearn's convention)
    assert macro_f1([1, 2], [1, 2], labels=[1, 2, 3]) == 1.0
    # a majority-class predictor: accuracy high, macro-F1 low
    refs = [0] * 9 + [1]
    assert accuracy([0] * 10, refs) == 0.9
    assert macro_f1([0] * 10, refs) == pytest.approx((2 * 0.9 / 1.9) / 2)


def test_metric_input_errors() -> None:
    with pytest.raises(ParameterError):
        macro_f1([1], [1, 2])
    with pytest.raises(ParameterError):
        accuracy([], [])


def test_rouge_l_and_bleu() -> None:
    ref = "Root cause: fibre cut. Action: spliced the fibre."
    assert rouge_l([ref], [ref]) == pytest.approx(1.0)
    assert bleu([ref], [ref]) == pytest.approx(100.0)
    assert rouge_l(["power failure at the site"], [ref]) < 0.3
    assert bleu(["something else entirely"], [ref]) < 10


# ------------------------------------------------------------------ tiny models


def tiny_classifier(num_labels: int) -> tuple[torch.nn.Module, object]:
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, vocab_size=384, num_labels=num_labels,
                                     max_position_embeddings=128)
    return transformers.BertForSequenceClassification(config), transformers.ByT5Tokenizer()


def tiny_generator(_: int) -> tuple[torch.nn.Module, object]:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=384)
    return transformers.LlamaForCausalLM(config), transformers.ByT5Tokenizer()


@pytest.fixture(scope="module")
def monitor():  # type: ignore[no-untyped-def]
    from nrg.meters import EnergyMonitor

    with EnergyMonitor.auto() as mon:
        yield mon


def test_finetune_classifier_records_energy_per_phase(monitor) -> None:  # type: ignore[no-untyped-def]
    from nrg.tickets.finetune import TrainSettings, attach_lora, evaluate_classifier, finetune_classifier
    from nrg.tickets.generator import generate_tickets

    tickets = generate_tickets(24, seed=0)
    model, tokenizer = tiny_classifier(8)
    settings = TrainSettings(batch_size=8, max_len=64, max_steps=2)
    model = attach_lora(model, "classifier", settings)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    ids = [hash(t.label) % 8 for t in tickets]
    tuned = finetune_classifier(model, tokenizer, [t.text for t in tickets], ids, settings, monitor)
    assert tuned.phase == "finetune" and tuned.extra["steps"] == 2
    assert tuned.record["energy_j"] > 0 and tuned.record["time_s"] > 0
    assert tuned.record["energy_method"] == "estimated"  # no RAPL / GPU on this machine
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n in before)
    evaluated = evaluate_classifier(model, tokenizer, [t.text for t in tickets], ids, settings, monitor)
    assert evaluated.phase == "inference" and evaluated.record["energy_j"] > 0
    assert 0 <= evaluated.metrics["accuracy"] <= 1 and 0 <= evaluated.metrics["macro_f1"] <= 1


def test_generator_loss_only_on_response_tokens() -> None:
    from nrg.tickets.finetune import encode_generation

    tokenizer = transformers.ByT5Tokenizer()
    encoded = encode_generation(tokenizer, ["LOS on port 1", "x"], ["spliced", "ok"], max_len=400)
    labels = encoded["labels"][0]
    answer = labels[labels != -100]
    assert tokenizer.decode(answer, skip_special_tokens=True) == "spliced"
    assert (encoded["labels"][encoded["attention_mask"] == 0] == -100).all()


def run_tiny_study(out_dir: Path, **kwargs):  # type: ignore[no-untyped-def]
    from nrg.tickets.finetune import TrainSettings
    from nrg.tickets.study import run_ticket_study

    options = dict(n_tickets=30, quant=["none", "int8-dynamic"], prune=["none", "2:4"],
                   models={"root_cause": tiny_classifier, "response": tiny_generator},
                   classifier=TrainSettings(batch_size=8, max_len=48, max_steps=2),
                   generator=TrainSettings(batch_size=2, max_len=64, max_steps=1),
                   n_generate=2, max_new_tokens=4, progress=False)
    options.update(kwargs)
    return run_ticket_study(out_dir, **options)


def test_study_writes_one_file_per_cell_and_resumes(tmp_path: Path) -> None:
    frame = run_tiny_study(tmp_path)
    cells = sorted((tmp_path / "cells").glob("*.parquet"))
    assert len(cells) == 2 * 2 * 2  # tasks x quant x prune
    assert set(frame["phase"]) == {"finetune", "inference"}
    ok = frame[frame["status"] == "ok"]
    assert (ok["energy_j"] > 0).all() and set(ok["energy_method"]) == {"estimated"}
    dynamic_ft = frame[(frame["quant"] == "int8-dynamic") & (frame["phase"] == "finetune")]
    assert set(dynamic_ft["status"]) == {"unsupported"} and dynamic_ft["error"].str.contains("LoRA").all()
    dynamic_inf = frame[(frame["quant"] == "int8-dynamic") & (frame["phase"] == "inference")]
    assert set(dynamic_inf["status"]) == {"ok"}
    two_four = frame[frame["prune_method"] == "2:4"]
    assert two_four["sparsity"].between(0.49, 0.51).all() and set(two_four["kernel"]) == {"dense"}
    roots = ok[ok["task"] == "root_cause"]
    assert roots["accuracy"].notna().all() and roots["macro_f1"].notna().all()
    responses = ok[ok["task"] == "response"]
    assert responses["rouge_l"].notna().all() and responses["bleu"].notna().all()
    stamps = {p.name: p.stat().st_mtime_ns for p in cells}
    again = run_tiny_study(tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in cells} == stamps  # skipped, not rewritten
    assert len(again) == len(frame)


@pytest.mark.parametrize("kwargs, match", [
    ({"prune": ["unstructured:1.2"]}, "prune"),
    ({"prune": ["magic:0.3"]}, "unstructured"),
    ({"quant": ["int2"]}, "nf4"),
    ({"w": 1.5}, "w="),
    ({"phases": ["train"]}, "phases"),
])
def test_bad_study_parameters_fail_before_any_file(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        run_tiny_study(tmp_path / "run", **kwargs)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_real_minilm_one_cell(tmp_path: Path) -> None:
    from nrg.tickets.finetune import TrainSettings
    from nrg.tickets.study import run_ticket_study

    frame = run_ticket_study(tmp_path, n_tickets=40, quant=["none"], prune=["none"], tasks=["root_cause"],
                             classifier=TrainSettings(batch_size=16, max_len=96, max_steps=2),
                             progress=False)
    assert list(frame["status"]) == ["ok", "ok"]
    assert frame["n_params"].iloc[0] > 20_000_000
    assert not math.isnan(frame["accuracy"].iloc[0])
