"""Ticket metrics on hand cases; fine-tuning with energy per phase on tiny models; one real MiniLM cell."""
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
    assert tuned.tokens == tuned.extra["train_tokens"] > 0
    record = tuned.measurement.to_record()
    assert record["energy_j"] > 0 and record["time_s"] > 0
    assert record["energy_method"] == "estimated"  # no RAPL / GPU on this machine
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n in before)
    evaluated = evaluate_classifier(model, tokenizer, [t.text for t in tickets], ids, settings, monitor)
    assert evaluated.phase == "inference" and evaluated.measurement.total_j() > 0
    assert evaluated.tokens == evaluated.extra["eval_tokens"]
    assert 0 <= evaluated.metrics["accuracy"] <= 1 and 0 <= evaluated.metrics["macro_f1"] <= 1


def test_generator_loss_only_on_response_tokens() -> None:
    from nrg.tickets.finetune import encode_generation

    tokenizer = transformers.ByT5Tokenizer()
    encoded = encode_generation(tokenizer, ["LOS on port 1", "x"], ["spliced", "ok"], max_len=400)
    labels = encoded["labels"][0]
    answer = labels[labels != -100]
    assert tokenizer.decode(answer, skip_special_tokens=True) == "spliced"
    assert (encoded["labels"][encoded["attention_mask"] == 0] == -100).all()


def test_train_settings_are_checked_and_exclude_the_seed_from_configs() -> None:
    from nrg.tickets.finetune import TrainSettings

    with pytest.raises(ParameterError, match="max_steps"):
        TrainSettings(max_steps=True)
    with pytest.raises(ParameterError, match="learning_rate"):
        TrainSettings(learning_rate=0)
    assert "seed" not in TrainSettings(seed=3).to_dict()


@pytest.mark.slow
def test_real_minilm_one_cell(tmp_path: Path) -> None:
    from nrg.sweep.run import run_sweep

    config = {"workload": "finetune", "models": ["minilm-l6"], "tasks": ["root_cause"], "repeats": 1,
              "warmup": 0, "idle_s": 0, "isolate": False,
              "finetune": {"n_tickets": 40, "classifier": {"batch_size": 16, "max_len": 96, "max_steps": 2}}}
    frame = run_sweep(config, tmp_path, progress=False)
    assert list(frame["status"]) == ["ok", "ok"] and list(frame["phase"]) == ["finetune", "inference"]
    assert frame["n_params"].iloc[0] > 20_000_000
    assert not math.isnan(frame["accuracy"].iloc[0])
