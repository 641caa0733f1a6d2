"""Quantization and pruning on tiny random models (hidden 64): sparsity reached, outputs finite."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from nrg.compress import compress, parse_prune, prune, quantize  # noqa: E402
from nrg.compress.layers import linear_layers  # noqa: E402
from nrg.errors import ParameterError  # noqa: E402
from nrg.sweep import axes  # noqa: E402


def tiny_llama() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=100)
    return transformers.LlamaForCausalLM(config).eval()


def tiny_gpt2() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=100, n_positions=64)
    return transformers.GPT2LMHeadModel(config).eval()


def tiny_bert() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, vocab_size=100, num_labels=3)
    return transformers.BertForSequenceClassification(config).eval()


MODELS = {"llama": tiny_llama, "gpt2": tiny_gpt2, "bert": tiny_bert}
IDS = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(1))


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


@pytest.mark.parametrize("arch", sorted(MODELS))
@pytest.mark.parametrize("ratio", [0.3, 0.7])
def test_unstructured_reaches_requested_sparsity(arch: str, ratio: float) -> None:
    model, columns = prune(MODELS[arch](), f"unstructured:{ratio}")
    assert columns["prune_method"] == "unstructured" and columns["prune_ratio"] == ratio
    assert columns["sparsity"] == pytest.approx(ratio, abs=0.01)
    assert 0 < columns["sparsity_all"] < columns["sparsity"]  # embeddings and norms are not pruned
    assert columns["kernel"] == "dense"
    assert torch.isfinite(logits(model)).all()


def test_gpt2_conv1d_is_pruned_and_equivalent_before_pruning() -> None:
    model = tiny_gpt2()
    before = logits(model)
    same, columns = prune(model, "unstructured:0.0")
    assert columns["pruned_layers"] == 8  # c_attn, c_proj, c_fc, mlp.c_proj per block, as Linear
    torch.testing.assert_close(logits(same), before, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_two_four_keeps_two_of_every_four(arch: str) -> None:
    model, columns = prune(MODELS[arch](), "2:4")
    assert columns["prune_ratio"] == 0.5
    assert columns["sparsity"] == pytest.approx(0.5, abs=0.001)
    assert columns["kernel"] == "dense"  # CPU: dense kernels multiply the zeros
    for _, layer in linear_layers(model):
        groups = (layer.weight.reshape(layer.weight.shape[0], -1, 4) != 0).sum(-1)
        assert (groups <= 2).all()
    assert torch.isfinite(logits(model)).all()


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_structured_removes_mlp_neurons(arch: str) -> None:
    model = MODELS[arch]()
    n_before = sum(p.numel() for p in model.parameters())
    model, columns = prune(model, "structured:0.25")
    assert columns["sparsity"] == pytest.approx(0.25, abs=0.02)
    n_after = sum(p.numel() for p in model.parameters())
    assert n_after < n_before
    assert columns["sparsity_all"] >= (n_before - n_after) / n_before
    assert torch.isfinite(logits(model)).all()


@pytest.mark.parametrize("method", ["fp32", "fp16", "bf16", "int8-bnb", "nf4", "fp4", "int8-dynamic"])
def test_each_quantization_runs_on_cpu(method: str) -> None:
    model = tiny_llama()
    reference = logits(model)
    model, columns = quantize(model, method)
    assert columns["quant"] == method and columns["quant_status"] == "ok", columns
    out = logits(model).float()
    assert torch.isfinite(out).all()
    assert (out - reference).abs().max() < 0.5  # close to fp32, not identical
    if method in ("int8-bnb", "nf4", "fp4", "int8-dynamic"):
        assert all(type(m) is not torch.nn.Linear or "lm_head" in n for n, m in model.named_modules()
                   if "proj" in n or "lm_head" in n)


def test_bnb_quantizes_gpt2_conv1d_too() -> None:
    model, columns = quantize(tiny_gpt2(), "nf4")
    assert columns["quant_layers"] == 8
    assert torch.isfinite(logits(model)).all()


def test_prune_then_quantize_keeps_zeros_counted() -> None:
    model, columns = compress(tiny_bert(), quant="int8-dynamic", prune_value="unstructured:0.5")
    assert columns["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert columns["quant_status"] == "ok"
    assert torch.isfinite(logits(model)).all()


def test_unsupported_combination_is_recorded_not_raised() -> None:
    import nrg.compress.quantization as q

    with torch.device("meta"):  # a model not on the CPU: dynamic int8 cannot run there
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=100))
    same, columns = quantize(model, "int8-dynamic")
    assert columns["quant_status"] == "unsupported"
    assert columns["quant_reason"] == "torch dynamic int8 quantization runs on CPU only"
    assert same is model and all(type(m) is torch.nn.Linear for _, m in linear_layers(model))
    assert q.support("int8-dynamic", "cpu") == ""


@pytest.mark.parametrize("bad", ["unstructured:1.0", "structured:-0.1", "unstructured:x", "random:0.3",
                                 "structured", 0.3])
def test_bad_prune_values_are_parameter_errors(bad: object) -> None:
    with pytest.raises(ParameterError, match="prune"):
        parse_prune(bad)  # type: ignore[arg-type]


def test_unknown_quant_lists_the_valid() -> None:
    with pytest.raises(ParameterError, match="int8-dynamic"):
        quantize(tiny_llama(), "int3")
    with pytest.raises(ParameterError, match="nf4"):
        compress(tiny_llama(), quant="int3", prune_value="none")


def test_axes_are_registered_and_validate() -> None:
    registered = axes.registered()
    assert {"quant", "prune"} <= set(registered)
    registered["prune"].validate(["none", "2:4", "structured:0.25"])
    with pytest.raises(ParameterError):
        registered["quant"].validate(["none", "int2"])
    model, columns = registered["prune"].transform(tiny_llama(), "unstructured:0.3")
    assert {"prune_method", "prune_ratio", "sparsity", "kernel"} <= set(columns)
    model, columns = registered["quant"].transform(model, "fp32")
    assert {"quant", "quant_status"} <= set(columns)


def test_the_quant_axis_ends_a_cell_it_cannot_run_as_unsupported() -> None:
    with torch.device("meta"):  # a model not on the CPU: dynamic int8 cannot run there
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=100))
    with pytest.raises(NotImplementedError, match="quant='int8-dynamic' is not supported here: torch dynamic"):
        axes.registered()["quant"].transform(model, "int8-dynamic")
