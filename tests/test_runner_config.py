"""Sweep configs: parsing, grid expansion, cell ids, and bad input refused before any write."""
from __future__ import annotations

from dataclasses import replace

import pytest

from nrg.errors import ParameterError
from nrg.sweep.config import KEYS, SweepConfig, parse_config
from nrg.sweep.run import run_sweep

TINY = {"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}


def base(**changes):
    cfg = {"name": "t", "models": [TINY], "input_tokens": [8], "output_tokens": [4],
           "repeats": 2, "warmup": 0, "idle_s": 0, "isolate": False}
    cfg.update(changes)
    return cfg


def test_yaml_text_file_and_dict_agree(tmp_path):
    text = "name: t\nmodels: [{name: gpt2, weights: random, layers: 1, tiny: true}]\n" \
           "input_tokens: [8]\noutput_tokens: 4\nrepeats: 2\nwarmup: 0\nidle_s: 0\nisolate: false\n"
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert parse_config(path) == parse_config(str(path)) == parse_config(text) == parse_config(base())


def test_round_trip_through_to_dict():
    cfg = parse_config(base(tasks=["none", {"name": "qa", "dataset": "x.jsonl"}],
                            repeats={"min": 3, "max": 7, "ci_rel": 0.1}, quality={"items": 2}))
    assert parse_config(cfg.to_dict()) == cfg


def test_grid_is_the_product_of_all_axes():
    cfg = parse_config(base(batch_sizes=[1, 2], input_tokens=[8, 16, 32], output_tokens=[4, 8],
                            dtypes=["float32", "bfloat16"]))
    cells = cfg.cells()
    assert len(cells) == 2 * 3 * 2 * 2
    assert len({c.cell_id for c in cells}) == len(cells)
    assert {(c.batch_size, c.input_tokens) for c in cells} == {(b, i) for b in (1, 2) for i in (8, 16, 32)}


def test_extra_axes_multiply_the_grid_and_become_factors():
    cfg = parse_config(base(axes={"quant": ["none", "int8-dynamic"]}))
    cells = cfg.cells()
    assert [c.factors()["quant"] for c in cells] == ["none", "int8-dynamic"]
    top = parse_config(base(quant=["none", "int8-dynamic"]))   # an axis name as a top-level key
    assert [c.cell_id for c in top.cells()] == [c.cell_id for c in cells]


def test_cell_id_is_stable_and_changes_with_what_affects_numbers():
    cell = parse_config(base()).cells()[0]
    assert cell.cell_id == parse_config(base(name="other", chapter="09", isolate=True)).cells()[0].cell_id
    changed = [
        base(input_tokens=[9]), base(output_tokens=[5]), base(batch_sizes=[2]),
        base(dtypes=["bfloat16"]), base(repeats=3), base(repeats={"min": 2, "max": 9}),
        base(warmup=1), base(seed=1), base(quality={"items": 3}), base(meters=["estimate"]),
        base(models=[{**TINY, "layers": 2}]), base(tasks=["qa"]), base(idle_s=1),
    ]
    ids = {parse_config(c).cells()[0].cell_id for c in changed}
    assert cell.cell_id not in ids and len(ids) == len(changed)
    device = replace(cell, settings=replace(cell.settings, device="cuda"))
    assert device.cell_id != cell.cell_id


@pytest.mark.parametrize("changes, message", [
    ({"bogus": 1}, "valid keys: name, chapter, models"),
    ({"input_tokens": [0]}, "input_tokens"),
    ({"output_tokens": [-3]}, "output_tokens"),
    ({"batch_sizes": []}, "batch_sizes"),
    ({"dtypes": ["int3"]}, "'float32', 'float16', 'bfloat16'"),
    ({"device": "tpu"}, "'cpu', 'cuda', 'cuda:N'"),
    ({"repeats": {"mn": 3}}, "min, max, ci_rel"),
    ({"models": [{"name": "gpt2", "layer": 1}]}, "'name', 'weights', 'layers'"),
    ({"idle_s": -1}, "idle_s"),
])
def test_bad_config_values_raise_before_anything_is_written(tmp_path, changes, message):
    out = tmp_path / "run"
    with pytest.raises(ParameterError, match=message):
        run_sweep(base(**changes), out, progress=False)
    assert not out.exists()


@pytest.mark.parametrize("changes, message", [
    ({"models": ["gpt-5-turbo"]}, "known models: 'smollm2-135m'"),
    ({"device": "cuda"}, "CUDA is not available"),
    ({"input_tokens": [1000], "output_tokens": [100]}, r"exceeds the context of 'gpt2' \(1024"),
    ({"tasks": ["translation"]}, "'generation', 'qa', 'summarization'"),
    ({"meters": ["wattmeter"]}, "'nvml', 'rapl', 'estimate'"),
    ({"axes": {"warp_drive": [1]}}, "axis='warp_drive'"),
    ({"axes": {"quant": ["int3"]}}, "quant"),
    ({"models": [{"name": "minilm-l6", "weights": "random", "layers": 1}]}, "cannot generate"),
])
def test_bad_input_against_the_machine_raises_before_anything_is_written(tmp_path, changes, message):
    out = tmp_path / "run"
    with pytest.raises(ParameterError, match=message):
        run_sweep(base(**changes), out, progress=False)
    assert not out.exists()


def test_dataset_file_with_missing_fields_is_refused(tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text('{"id": "1", "question": "Why?"}\n')     # no context, no answer
    out = tmp_path / "run"
    with pytest.raises(ParameterError, match="missing fields"):
        run_sweep(base(tasks=[{"name": "qa", "dataset": str(data)}]), out, progress=False)
    assert not out.exists()


def test_every_config_key_is_documented():
    import nrg.sweep.config

    for key in KEYS:
        assert f"\n    {key}:" in nrg.sweep.config.__doc__, key
    assert isinstance(parse_config(base()), SweepConfig)


def test_shared_rules_are_the_same_everywhere():
    """One rule per check (nrg.errors): whole numbers, finite numbers, strict bools, device syntax."""
    from nrg.errors import check_device, check_int, check_number, parse_bool

    assert check_int("n", 3) == 3 and check_number("t", 0) == 0.0
    for bad in (True, 2.0, "2", 0):
        with pytest.raises(ParameterError, match=r"^n=.* must be an integer >= 1"):
            check_int("n", bad)
    for bad in (float("inf"), float("nan"), -1, "1", None):
        with pytest.raises(ParameterError, match=r"^t=.* must be a finite number >= 0"):
            check_number("t", bad)
    assert [parse_bool("b", v) for v in (True, "false", "TRUE", "no", " on ")] == [True, False, True, False, True]
    for bad in ("maybe", 1, 0, None, ""):
        with pytest.raises(ParameterError, match="choose one of: True, False"):
            parse_bool("b", bad)
    assert [check_device("d", v) for v in ("cpu", "cuda", "cuda:12")] == ["cpu", "cuda", "cuda:12"]
    for bad in ("gpu", "cuda:", "cuda:-1", "CUDA", "cuda:1 ", 0):
        with pytest.raises(ParameterError, match="'cpu', 'cuda', 'cuda:N'"):
            check_device("d", bad)


def test_allow_download_lets_real_weights_from_the_hub_pass_the_check():
    from nrg.sweep.check import check

    cfg = base(models=[{"name": "gpt2", "weights": "real", "layers": 1}])
    with pytest.raises(ParameterError, match="allow_download: true"):
        check(parse_config(cfg))
    assert check(parse_config({**cfg, "allow_download": True}))   # checked offline, fetched by the cell
