"""nrg.models: specs, the known-model table, random / folder / embedded loading, CLI listing."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from nrg.commands.cli import main as cli_main
from nrg.errors import ParameterError
from nrg.models import EMBEDDED_MODELS, PAPER_MODELS, ModelSpec, known_models, load, param_count, resolve
from nrg.models.build import check_fits
from nrg.models.registry import hub_cached, package_folder

# Published parameter counts of the transformers implementations of the paper's models.
PUBLISHED_PARAMS = {
    "gpt2": 124_439_808, "gpt-neo-2.7b": 2_651_307_520, "gpt-j-6b": 6_050_882_784,
    "t5-3b": 2_851_598_336, "falcon-7b": 6_921_720_704, "mistral-7b-v0.1": 7_241_732_096,
    "smollm2-135m": 134_515_008, "minilm-l6": 22_713_216,
}


@pytest.mark.parametrize("kwargs, word", [
    ({"dtype": "float8"}, "dtype"), ({"weights": "pretrained"}, "weights"),
    ({"device": "gpu"}, "device"), ({"layers": 0}, "layers"), ({"head": "mlm"}, "head"),
])
def test_spec_rejects_bad_parameters(kwargs: dict, word: str) -> None:
    with pytest.raises(ParameterError, match=word):
        ModelSpec("gpt2", **kwargs)


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(ParameterError) as info:
        load(ModelSpec("gpt5-ultra", weights="random"))
    for name in ("smollm2-135m", "gpt-j-6b", "mistral-7b-v0.1"):
        assert name in str(info.value)


@pytest.mark.parametrize("alias, name", [
    ("openai-community/gpt2", "gpt2"), ("EleutherAI/gpt-j-6b", "gpt-j-6b"),
    ("EleutherAI/gpt-j-6B", "gpt-j-6b"), ("tiiuae/falcon-7b", "falcon-7b"),
    ("mistralai/Mistral-7B-v0.1", "mistral-7b-v0.1"), ("google-t5/t5-3b", "t5-3b"),
    ("EleutherAI/gpt-neo-2.7B", "gpt-neo-2.7b"), ("HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2-135m"),
])
def test_hub_ids_are_aliases(alias: str, name: str) -> None:
    resolved = resolve(alias)
    assert resolved.kind == "known" and resolved.info is not None and resolved.info.name == name


def test_other_hub_ids_and_folders_resolve(tmp_path: Path) -> None:
    assert resolve("someone/some-model").kind == "hub"
    with pytest.raises(ParameterError, match=r"config\.json"):
        resolve(str(tmp_path))


@pytest.mark.parametrize("name", list(PUBLISHED_PARAMS))
def test_full_size_parameter_counts_match_published(name: str) -> None:
    assert param_count(ModelSpec(name, weights="random")) == PUBLISHED_PARAMS[name]


def test_every_known_model_has_a_shipped_config() -> None:
    assert set(known_models()) == set(PAPER_MODELS) | set(EMBEDDED_MODELS)
    for info in known_models().values():
        assert json.loads(info.config_path.read_text())["model_type"]


@pytest.mark.parametrize("name", PAPER_MODELS + EMBEDDED_MODELS)
def test_tiny_random_model_runs(name: str) -> None:
    spec = ModelSpec(name, weights="random", layers=1, tiny=True)
    loaded = load(spec)
    assert loaded.weights == "random" and loaded.tokenizer is None
    assert loaded.n_params == param_count(spec)
    inputs = loaded.synthetic_inputs(batch_size=2, input_tokens=7, seed=3)
    assert inputs["input_ids"].shape == (2, 7)
    if loaded.can_generate:
        new = loaded.generate(inputs, new_tokens=3)
        assert tuple(new.shape) == (2, 3)
    else:
        with torch.inference_mode():
            hidden = loaded.model(**inputs).last_hidden_state
        assert hidden.shape[:2] == (2, 7)


def test_t5_is_encoder_decoder_with_practical_context() -> None:
    loaded = load(ModelSpec("t5-3b", weights="random", layers=1, tiny=True))
    assert loaded.is_encoder_decoder and loaded.max_context_tokens == 512
    assert len(loaded.model.encoder.block) == 1 and len(loaded.model.decoder.block) == 1


def test_layers_truncate_depth_including_odd_gpt_neo() -> None:
    loaded = load(ModelSpec("gpt-neo-2.7b", weights="random", layers=3, tiny=True))
    assert len(loaded.model.transformer.h) == 3
    full = param_count(ModelSpec("gpt-neo-2.7b", weights="random", tiny=True, layers=4))
    assert loaded.n_params < full


def test_overrides_change_the_config() -> None:
    loaded = load(ModelSpec("gpt2", weights="random", layers=1, overrides={"hidden_size": 32, "n_head": 2}))
    assert loaded.model.config.n_embd == 32


def test_synthetic_inputs_are_seeded_and_bounded() -> None:
    loaded = load(ModelSpec("gpt2", weights="random", layers=1, tiny=True))
    a = loaded.synthetic_inputs(1, 16, seed=1)["input_ids"]
    b = loaded.synthetic_inputs(1, 16, seed=1)["input_ids"]
    c = loaded.synthetic_inputs(1, 16, seed=2)["input_ids"]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert int(a.max()) < loaded.vocab_size
    with pytest.raises(ParameterError, match="context"):
        loaded.synthetic_inputs(1, 1025)


def test_weights_that_do_not_fit_are_refused_with_layers_hint() -> None:
    spec = ModelSpec("gpt-j-6b", weights="random")
    with pytest.raises(ParameterError, match="layers"):
        check_fits(spec, param_count(spec), available_bytes=16 * 2**30)
    small = ModelSpec("gpt-j-6b", weights="random", layers=1)
    assert check_fits(small, param_count(small), available_bytes=16 * 2**30) > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_cuda_is_a_parameter_error() -> None:
    with pytest.raises(ParameterError, match="CUDA"):
        load(ModelSpec("gpt2", weights="random", device="cuda", layers=1, tiny=True))


def test_hub_cache_detection(tmp_path: Path) -> None:
    repo = tmp_path / "models--openai-community--gpt2"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    (snapshot / "config.json").write_text("{}")
    assert not hub_cached("openai-community/gpt2", cache_dir=tmp_path)
    (snapshot / "model.safetensors").write_bytes(b"")
    assert hub_cached("openai-community/gpt2", cache_dir=tmp_path)


@pytest.fixture(scope="module")
def local_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 saved with the MiniLM tokenizer: a 'real' model in a local folder."""
    from transformers import GPT2Config, GPT2LMHeadModel
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=30522,
                               n_positions=128)).save_pretrained(folder)
    minilm = package_folder(known_models()["minilm-l6"])
    assert minilm is not None
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm / name, folder / name)
    return folder


def test_local_folder_loads_real_weights_and_tokenizer(local_model_dir: Path) -> None:
    from transformers import GPT2LMHeadModel
    loaded = load(ModelSpec(str(local_model_dir)))
    assert loaded.weights == "real" and loaded.tokenizer is not None
    saved = GPT2LMHeadModel.from_pretrained(local_model_dir)
    assert torch.equal(loaded.model.transformer.wte.weight, saved.transformer.wte.weight)
    assert loaded.max_context_tokens == 128
    ids = loaded.tokenizer("the router lost its bgp session", return_tensors="pt")
    assert loaded.generate(dict(ids), new_tokens=4).shape == (1, 4)


def test_local_folder_random_weights_use_its_config(local_model_dir: Path) -> None:
    loaded = load(ModelSpec(str(local_model_dir), weights="random"))
    assert loaded.weights == "random" and loaded.tokenizer is None
    assert loaded.model.config.n_embd == 32


def test_minilm_embedded_real_weights() -> None:
    loaded = load(ModelSpec("all-MiniLM-L6-v2"))
    assert loaded.weights == "real" and loaded.name == "minilm-l6"
    assert loaded.n_params == PUBLISHED_PARAMS["minilm-l6"] and loaded.head == "base"
    batch = loaded.tokenizer(["fibre cut on span 4", "bgp session down"], padding=True,
                             return_tensors="pt")
    with torch.inference_mode():
        hidden = loaded.model(**batch).last_hidden_state
    assert hidden.shape[-1] == 384
    clf = load(ModelSpec("minilm-l6", head="sequence-classification", overrides={"num_labels": 4}))
    assert type(clf.model).__name__ == "BertForSequenceClassification"
    assert clf.model.config.num_labels == 4


@pytest.mark.slow
def test_smollm2_converts_once_then_loads_from_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    monkeypatch.setenv("NRG_CACHE_DIR", str(tmp_path))
    first = load(ModelSpec("smollm2-135m"))
    assert first.weights == "real" and not first.from_cache
    assert first.n_params == PUBLISHED_PARAMS["smollm2-135m"]
    cache = tmp_path / "models" / "smollm2-135m"
    assert (cache / "model.safetensors").is_file() and not any(
        p.name.startswith(".") for p in cache.parent.iterdir())
    second = load(ModelSpec("smollm2-135m"))
    assert second.from_cache and Path(second.source) == cache
    assert second.load_time_s < first.load_time_s
    assert torch.equal(first.model.model.embed_tokens.weight, second.model.model.embed_tokens.weight)
    text = second.tokenizer.apply_chat_template([{"role": "user", "content": "What is BGP?"}],
                                                add_generation_prompt=True, tokenize=False)
    ids = second.tokenizer(text, return_tensors="pt")
    assert second.generate(dict(ids), new_tokens=5).shape == (1, 5)


def test_cli_lists_known_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(known_models())
    assert rows["gpt2"]["n_params"] == PUBLISHED_PARAMS["gpt2"]
    assert rows["gpt2"]["context_tokens"] == 1024
    assert rows["minilm-l6"]["offline_weights"] == "real"
    assert rows["mistral-7b-v0.1"]["class"] == "MistralForCausalLM"


def test_a_shape_is_built_on_the_meta_device_once_and_a_bad_one_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning the same shape again reuses its parameter count; a config that does not build stays refused."""
    from nrg.models import build
    from nrg.models.load import plan

    built: list[str] = []
    count = build._count_on_meta
    monkeypatch.setattr(build, "_count_on_meta", lambda config, head: built.append(config.model_type)
                        or count(config, head))
    monkeypatch.setattr(build, "_PARAM_COUNTS", {})
    spec = ModelSpec("gpt2", weights="random", tiny=True, layers=1)
    first, again = plan(spec), plan(spec)
    assert first.n_params == again.n_params > 0 and built == ["gpt2"]
    assert plan(ModelSpec("gpt2", weights="random", tiny=True, layers=2)).n_params > first.n_params
    assert built == ["gpt2", "gpt2"]                                  # another shape: built
    bad = ModelSpec("gpt2", weights="random", tiny=True, overrides=(("activation_function", "nope"),))
    for _ in range(2):
        with pytest.raises(ParameterError, match="does not build"):
            plan(bad)
    assert built == ["gpt2"] * 4
