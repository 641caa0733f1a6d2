"""Every bad input is refused before any work: a ParameterError naming the parameter, no file written.

Three ways in, as a user meets them:

* ``nrg sweep CONFIG --out DIR`` (``nrg.commands.cli.main`` in-process): exit status 2,
  one line on stderr naming the parameter, no traceback, nothing written;
* ``nrg book run CHAPTER OUT -p NAME VALUE``: values parsed as that command
  parses them (YAML), checked by :func:`nrg.book.build.check_parameters` -- what
  runs before papermill, which is not started here;
* papermill ``-p NAME VALUE``: values as papermill's own command line
  converts them (``papermill.cli._resolve_type``: ``false`` stays the string
  ``"false"``, ``nan`` becomes a float NaN) given to the chapter's ``check``,
  which each notebook calls first; unknown names through
  :func:`nrg.book.chapters.reject_unknown_injected`.

Each case names the text its message must contain (the parameter); the work
folder (cwd, ``NRG_RUNS_DIR``, the ``--out`` parent) must stay empty.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from fault_helpers import config

from nrg.book import build as book
from nrg.book.chapters import DRIVERS, driver, reject_unknown_injected, validate
from nrg.commands.cli import main
from nrg.errors import ParameterError

ROOT = Path(__file__).resolve().parents[2]
G = {"name": "gpt2", "weights": "random", "tiny": True}

# --------------------------------------------------------------------- nrg sweep
# (id, config changes or a callable(tmp) -> (config path, out dir), text the message must name)
SWEEP: list[tuple[str, Any, str]] = [
    ("models-empty", {"models": []}, "models"),
    ("models-missing", {"models": None}, "models"),
    ("model-unknown", {"models": ["llama-9000"]}, "llama-9000"),
    ("model-no-name", {"models": [{"weights": "random"}]}, "name"),
    ("model-bad-key", {"models": [{**G, "colour": "red"}]}, "models[].key"),
    ("model-bad-type", {"models": [3]}, "models"),
    ("weights-bad", {"models": [{**G, "weights": "realz"}]}, "weights"),
    ("weights-real-not-local", {"models": [{"name": "gpt2", "weights": "real"}]}, "weights"),
    ("layers-zero", {"models": [{**G, "layers": 0}]}, "layers"),
    ("layers-beyond-depth", {"models": [{**G, "layers": 1000}]}, "layers"),
    ("layers-string", {"models": [{**G, "layers": "two"}]}, "layers"),
    ("layers-bool", {"models": [{**G, "layers": True}]}, "layers"),
    ("tiny-string", {"models": [{**G, "tiny": "yes"}]}, "tiny"),
    ("overrides-list", {"models": [{**G, "overrides": [1, 2]}]}, "overrides"),
    ("overrides-unknown-key", {"models": [{**G, "overrides": {"colour": 1}}]}, "overrides"),
    ("overrides-heads-do-not-divide", {"models": [{**G, "overrides": {"n_embd": 65}}]}, "overrides"),
    ("overrides-kv-heads", {"models": [{"name": "mistral-7b-v0.1", "weights": "random", "tiny": True,
                                        "overrides": {"num_key_value_heads": 3}}]}, "overrides"),
    ("overrides-rotary-wider-than-head", {"models": [{"name": "gpt-j-6b", "weights": "random", "tiny": True,
                                                   "overrides": {"rotary_dim": 1000}}]}, "rotary_dim"),
    ("overrides-falcon-kv-heads", {"models": [{"name": "falcon-7b", "weights": "random", "tiny": True,
                                               "overrides": {"new_decoder_architecture": True,
                                                             "num_kv_heads": 3}}]}, "overrides"),
    ("overrides-bad-activation", {"models": [{**G, "overrides": {"activation_function": "nope"}}]},
     "overrides"),
    ("task-unknown", {"tasks": ["poetry"]}, "tasks"),
    ("task-bad-key", {"tasks": [{"name": "qa", "colour": 1}]}, "tasks[].key"),
    ("task-dataset-missing", {"tasks": [{"name": "qa", "dataset": "missing.jsonl"}]}, "missing.jsonl"),
    ("batch-zero", {"batch_sizes": [0]}, "batch_sizes"),
    ("batch-huge", {"batch_sizes": [10_000_000]}, "batch_sizes"),
    ("batch-float", {"batch_sizes": [1.5]}, "batch_sizes"),
    ("batch-string", {"batch_sizes": ["2"]}, "batch_sizes"),
    ("batch-empty", {"batch_sizes": []}, "batch_sizes"),
    ("input-zero", {"input_tokens": [0]}, "input_tokens"),
    ("input-beyond-context", {"input_tokens": [5000]}, "input_tokens"),
    ("output-negative", {"output_tokens": [-1]}, "output_tokens"),
    ("output-bool", {"output_tokens": [True]}, "output_tokens"),
    ("dtype-unknown", {"dtypes": ["float64"]}, "dtypes"),
    ("device-gpu", {"device": "gpu"}, "device"),
    ("device-cuda-x", {"device": "cuda:x"}, "device"),
    ("device-absent", {"device": "cuda:7"}, "device"),
    ("device-number", {"device": 0}, "device"),
    ("axis-unknown", {"axes": {"warp": [1]}}, "warp"),
    ("axes-list", {"axes": [1, 2]}, "axes"),
    ("axis-empty", {"axes": {"quant": []}}, "quant"),
    ("gpu-clock-no-gpu", {"axes": {"gpu_clock_mhz": [1410]}}, "gpu_clock_mhz"),
    ("quant-unknown", {"quant": ["int3"]}, "quant"),
    ("prune-unknown", {"prune": ["random:0.5"]}, "prune"),
    ("repeats-zero", {"repeats": 0}, "repeats"),
    ("repeats-min-over-max", {"repeats": {"min": 5, "max": 2}}, "repeats"),
    ("repeats-ci-out-of-range", {"repeats": {"min": 2, "max": 3, "ci_rel": 2}}, "ci_rel"),
    ("repeats-string", {"repeats": "many"}, "repeats"),
    ("warmup-negative", {"warmup": -1}, "warmup"),
    ("warmup-float", {"warmup": 1.5}, "warmup"),
    ("idle-negative", {"idle_s": -1}, "idle_s"),
    ("idle-inf", {"idle_s": float("inf")}, "idle_s"),
    ("idle-nan", {"idle_s": float("nan")}, "idle_s"),
    ("idle-string", {"idle_s": "two"}, "idle_s"),
    ("meters-unknown", {"meters": ["teleport"]}, "teleport"),
    ("isolate-string", {"isolate": "false"}, "isolate"),
    ("isolate-int", {"isolate": 1}, "isolate"),
    ("quality-negative", {"quality": {"items": -1}}, "quality.items"),
    ("quality-bad-key", {"quality": {"itmes": 2}}, "quality.key"),
    ("quality-string", {"quality": "lots"}, "quality"),
    ("seed-negative", {"seed": -1}, "seed"),
    ("roofline-string", {"roofline": "yes"}, "roofline"),
    ("timeout-zero", {"cell_timeout_s": 0}, "cell_timeout_s"),
    ("timeout-nan", {"cell_timeout_s": float("nan")}, "cell_timeout_s"),
    ("timeout-inf", {"cell_timeout_s": float("inf")}, "cell_timeout_s"),
    ("timeout-string", {"cell_timeout_s": "10"}, "cell_timeout_s"),
    ("allow-download-string", {"allow_download": "yes"}, "allow_download"),
    ("name-space", {"name": "a b"}, "name"),
    ("name-slash", {"name": "a/b"}, "name"),
    ("unknown-key", {"colour": "blue"}, "colour"),
    ("input-duplicate", {"input_tokens": [8, 8]}, "input_tokens"),
    ("batch-duplicate", {"batch_sizes": [1, 2, 1]}, "batch_sizes"),
    ("dtypes-duplicate", {"dtypes": ["float32", "float32"]}, "dtypes"),
    ("models-duplicate", {"models": [G, dict(G)]}, "models"),
    ("models-duplicate-spelled-differently", {"models": ["gpt2", {"name": "gpt2"}]}, "models"),
    ("axis-duplicate", {"axes": {"quant": ["none", "none"]}}, "quant"),
    ("timeout-inline", {"cell_timeout_s": 5}, "cell_timeout_s"),     # config(isolate=False)
    ("hub-id-not-cached", {"models": ["nrg-test-org/no-such-model"]}, "nrg-test-org/no-such-model"),
]


def _write(tmp: Path, text: str | bytes, name: str = "c.yaml") -> Path:
    path = tmp / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _valid_yaml() -> str:
    return yaml.safe_dump(config(isolate=False))


# cases about the config file and --out: (id, make(tmp, work) -> argv tail, name)
FILES: list[tuple[str, Callable[[Path, Path], list[str]], str]] = [
    ("yaml-syntax", lambda t, w: [str(_write(t, "models: [gpt2\n")), "--out", str(w / "run")], "YAML"),
    ("yaml-tab-indent", lambda t, w: [str(_write(t, "models:\n\t- gpt2\n")), "--out", str(w / "run")],
     "YAML"),
    ("config-missing", lambda t, w: [str(t / "absent.yaml"), "--out", str(w / "run")], "config"),
    ("config-directory", lambda t, w: [str(t), "--out", str(w / "run")], "directory"),
    ("config-txt-scalar", lambda t, w: [str(_write(t, "just some words\n", "conf.txt")), "--out",
                                        str(w / "run")], "config"),
    ("config-empty", lambda t, w: [str(_write(t, "")), "--out", str(w / "run")], "config"),
    ("config-list", lambda t, w: [str(_write(t, "- gpt2\n")), "--out", str(w / "run")], "config"),
    ("config-binary", lambda t, w: [str(_write(t, b"\xff\xfe\x00models")), "--out", str(w / "run")],
     "config"),
    ("out-is-a-file", lambda t, w: [str(_write(t, _valid_yaml())), "--out", str(_write(t, "x", "f"))],
     "--out"),
    ("out-under-a-file", lambda t, w: [str(_write(t, _valid_yaml())), "--out",
                                       str(_write(t, "x", "f") / "run")], "--out"),
]
DUPLICATE_KEY = _valid_yaml() + "repeats: 3\n"     # repeats is already in the config: the last would win
FILES += [
    ("yaml-duplicate-key", lambda t, w: [str(_write(t, DUPLICATE_KEY)), "--out", str(w / "run")], "repeats"),
    ("yaml-too-large", lambda t, w: [str(_write(t, _valid_yaml() + "# " + "x" * 1_100_000 + "\n")), "--out",
                                     str(w / "run")], "1,000,000"),
    ("yaml-alias-bomb", lambda t, w: [str(_write(t, ALIAS_BOMB)), "--out", str(w / "run")], "alias"),
    ("out-foreign-manifest", lambda t, w: [str(_write(t, _valid_yaml())), "--out", str(_foreign(t, True))],
     "manifest.json"),
    ("out-not-a-run", lambda t, w: [str(_write(t, _valid_yaml())), "--out", str(_foreign(t, False))],
     "not an nrg run"),
    ("task-file-malformed", lambda t, w: [str(_write(t, yaml.safe_dump(config(isolate=False, tasks=[
        {"name": "qa", "dataset": str(_write(t, '{"question": "x"\n{"oops"\n', "bad.jsonl"))}])))),
        "--out", str(w / "run")], "tasks[qa].dataset"),
    ("out-in-proc", lambda t, w: [str(_write(t, _valid_yaml())), "--out", "/proc/nrg-run"], "--out"),
]
if os.geteuid() != 0:  # root may write anywhere
    FILES.append(("out-unwritable", lambda t, w: _unwritable(t), "--out"))


def _alias_bomb() -> str:
    """Nine levels of nine aliases: 9**9 values once expanded, a few hundred bytes of YAML."""
    levels = ["&a [" + ", ".join(["lol"] * 9) + "]"]
    for i in range(1, 9):
        levels.append(f"&{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]")
    return "models: [gpt2]\nname: [" + ", ".join(levels) + "]\n"


ALIAS_BOMB = _alias_bomb()


def _foreign(tmp: Path, with_manifest: bool) -> Path:
    """Someone else's folder: their files, and maybe their own manifest.json."""
    folder = tmp / "theirs"
    folder.mkdir(exist_ok=True)
    (folder / "notes.txt").write_text("mine\n")
    if with_manifest:
        (folder / "manifest.json").write_text('{"project": "theirs", "files": []}')
    return folder


def test_a_foreign_out_folder_is_left_exactly_as_it_was(tmp_path, work, capsys) -> None:
    """Today's bug: nrg renamed their manifest.json and wrote its cells beside their files."""
    for with_manifest in (True, False):
        (tmp_path / str(with_manifest)).mkdir()
        folder = _foreign(tmp_path / str(with_manifest), with_manifest)
        before = sorted((p.name, p.read_bytes()) for p in folder.iterdir())
        assert main(["sweep", str(_write(tmp_path, _valid_yaml())), "--out", str(folder)]) == 2
        assert sorted((p.name, p.read_bytes()) for p in folder.iterdir()) == before
    capsys.readouterr()


def test_an_nrg_run_folder_is_still_accepted_with_a_lost_or_damaged_manifest(tmp_path) -> None:
    from nrg.sweep.runfolder.files import check_run_dir

    run = tmp_path / "run"
    (run / "cells").mkdir(parents=True)
    assert check_run_dir("--out", run) == run                     # manifest lost: rebuilt from the cells
    (run / "manifest.json").write_text("{cut short")
    assert check_run_dir("--out", run) == run                     # nrg's own, damaged: kept aside, rebuilt
    (run / "manifest.json").write_text('{"run_id": "r1", "sessions": []}')
    assert check_run_dir("--out", tmp_path / "new") == tmp_path / "new"
    assert check_run_dir("--out", run) == run


def test_an_alias_bomb_is_refused_in_one_short_line(tmp_path, work, capsys) -> None:
    """Today it hung past 150 s building an ~80 MB message."""
    assert main(["sweep", str(_write(tmp_path, ALIAS_BOMB)), "--out", str(work / "run")]) == 2
    err = capsys.readouterr().err
    assert len(err) < 2500 and len(err.strip().splitlines()) == 1, err[:300]


def test_cli_messages_are_capped(capsys) -> None:
    from nrg.commands.cli import MAX_MESSAGE_CHARS, _fail

    _fail("sweep", "x" * 10_000_000, debug=False, status=2)
    err = capsys.readouterr().err
    assert len(err) < MAX_MESSAGE_CHARS + 200 and "characters left out" in err


def test_a_profile_with_a_key_given_twice_is_refused(tmp_path) -> None:
    profile = _write(tmp_path, f"{C1}:\n  idle_s: 1\n  idle_s: 2\n", "p.yaml")
    with pytest.raises(ParameterError, match=r"idle_s.*given twice"):
        book.load_profile(ROOT, str(profile))


def test_chapter_5_reads_isolate_false_from_papermill_as_false(work) -> None:
    """``papermill -p isolate false`` injects the string "false"; chapter 5 took bool("false") = True."""
    c5 = sorted(DRIVERS)[5]
    params = validate(c5, {**_declared(c5), "isolate": _papermill_value("false")})
    assert {item.config.isolate for item in params.checked} == {False}


def _unwritable(tmp: Path) -> list[str]:
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return [str(_write(tmp, _valid_yaml())), "--out", str(locked / "run")]


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """An empty folder that must stay empty: cwd, NRG_RUNS_DIR and where --out points."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("NRG_RUNS_DIR", str(folder / "runs"))
    return folder


def _refused_by_cli(argv: list[str], name: str, work: Path, capsys) -> None:
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, f"exit {status}, stderr: {err[-500:]}"
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"nrg {argv[0]}: error: ") and name in last, last
    assert not list(work.rglob("*")), f"files written: {list(work.rglob('*'))}"


@pytest.mark.parametrize("changes, name", [c[1:] for c in SWEEP], ids=[c[0] for c in SWEEP])
def test_nrg_sweep_refuses(changes, name, tmp_path, work, capsys) -> None:
    cfg = config(isolate=False)
    cfg.update(changes)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    path = _write(tmp_path, yaml.safe_dump(cfg))
    _refused_by_cli(["sweep", str(path), "--out", str(work / "run")], name, work, capsys)


@pytest.mark.parametrize("make, name", [c[1:] for c in FILES], ids=[c[0] for c in FILES])
def test_nrg_sweep_refuses_bad_files(make, name, tmp_path, work, capsys) -> None:
    _refused_by_cli(["sweep", *make(tmp_path, work)], name, work, capsys)


# --------------------------------------------------------------------- nrg book run -p
C0, C1, C2, C3, C4, *_ = sorted(DRIVERS)   # chapters 00-04; 05 has its own checks test
MISSING = "/nonexistent/tickets.csv"
# (id, chapter, {name: text as typed after -p NAME}, text the message must name)
BOOK: list[tuple[str, str, dict[str, str], str]] = [
    ("unknown-name", C1, {"output_token": "8"}, "output_token"),
    ("yaml-error-in-value", C1, {"models": "[gpt2"}, "models"),
    ("c1-isolate-word", C1, {"isolate": "maybe"}, "isolate"),
    ("c1-isolate-int", C1, {"isolate": "2"}, "isolate"),
    ("c1-idle-nan", C1, {"idle_s": ".nan"}, "idle_s"),
    ("c1-idle-inf", C1, {"idle_s": ".inf"}, "idle_s"),
    ("c1-idle-negative", C1, {"idle_s": "-1"}, "idle_s"),
    ("c1-batch-zero", C1, {"batch_size": "0"}, "batch_size"),
    ("c1-batch-float", C1, {"batch_size": "1.5"}, "batch_size"),
    ("c1-warmup-negative", C1, {"warmup": "-1"}, "warmup"),
    ("c1-device-absent", C1, {"device": "cuda:7"}, "device"),
    ("c1-device-word", C1, {"device": "gpu"}, "device"),
    ("c1-dtype", C1, {"dtype": "float64"}, "dtype"),
    ("c1-task", C1, {"tasks": "[poetry]"}, "tasks"),
    ("c1-task-lengths-short", C1, {"task_lengths": "{generation: [64]}"}, "task_lengths"),
    ("c1-task-lengths-list", C1, {"task_lengths": "[1, 2]"}, "task_lengths"),
    ("c1-quality-negative", C1, {"quality_items": "-1"}, "quality_items"),
    ("c1-repeats-word", C1, {"repeats": "many"}, "repeats"),
    ("c1-repeats-min-zero", C1, {"repeats": "{min: 0, max: 3}"}, "repeats"),
    ("c1-alpha", C1, {"alpha": "2"}, "alpha"),
    ("c1-model-unknown", C1, {"models": "[llama-9000]"}, "llama-9000"),
    ("c1-weights", C1, {"weights": "realz"}, "weights"),
    ("c1-layers-deep", C1, {"models": "[gpt2]", "weights": "random", "layers": "1000"}, "layers"),
    ("c1-layers-zero", C1, {"layers": "0"}, "layers"),
    ("c1-run-dir-file", C1, {"run_dir": "@file"}, "run_dir"),
    ("c2-input-zero", C2, {"input_tokens": "[0, 8]"}, "input_tokens"),
    ("c2-joint-one", C2, {"joint_input_tokens": "[32]"}, "joint_input_tokens"),
    ("c2-fixed-zero", C2, {"fixed_output_tokens": "0"}, "fixed_output_tokens"),
    ("c2-duplicates", C2, {"output_tokens": "[8, 8]"}, "output_tokens"),
    ("c2-isolate-word", C2, {"isolate": "nope"}, "isolate"),
    ("c2-idle-nan", C2, {"idle_s": ".nan"}, "idle_s"),
    ("c3-n-clocks", C3, {"n_clocks": "1"}, "n_clocks"),
    ("c3-clock-negative", C3, {"gpu_clocks_mhz": "[-5]"}, "gpu_clocks_mhz"),
    ("c3-power-word", C3, {"power_limits_w": "[abc]"}, "power_limits_w"),
    ("c3-default-clock-word", C3, {"include_default_clock": "maybe"}, "include_default_clock"),
    ("c3-device", C3, {"device": "cuda:x"}, "device"),
    ("c3-device-absent", C3, {"device": "cuda:1"}, "device"),
    ("c3-dtype", C3, {"dtype": "int8"}, "dtype"),
    ("c3-idle-inf", C3, {"idle_s": ".inf"}, "idle_s"),
    ("c0-idle-zero", C0, {"idle_s": "0"}, "idle_s"),
    ("c0-min-duration-nan", C0, {"min_duration_s": ".nan"}, "min_duration_s"),
    ("c0-sizes-zero", C0, {"matrix_sizes": "[0]"}, "matrix_sizes"),
    ("c0-repeats-one", C0, {"repeats": "1"}, "repeats"),
    ("c0-meters", C0, {"meters": "[teleport]"}, "teleport"),
    ("c0-power-per-core", C0, {"power_per_core_w": "-3"}, "power_per_core_w"),
    ("c4-n-tickets", C4, {"n_tickets": "1"}, "n_tickets"),
    ("c4-noise", C4, {"noise": "2"}, "noise"),
    ("c4-tickets-missing", C4, {"tickets_path": MISSING}, "tickets_path"),
    ("c4-tickets-bad-jsonl", C4, {"tickets_path": "@bad.jsonl"}, "tickets_path"),
    ("c4-tickets-bad-csv", C4, {"tickets_path": "@bad.csv"}, "tickets_path"),
    ("c4-tickets-not-utf8", C4, {"tickets_path": "@binary.csv"}, "tickets_path"),
    ("c4-tickets-not-objects", C4, {"tickets_path": "@list.jsonl"}, "tickets_path"),
    ("c4-device-absent", C4, {"device": "cuda:7"}, "device"),
    ("c4-threads", C4, {"threads": "0"}, "threads"),
    ("c4-idle-inf", C4, {"idle_s": ".inf"}, "idle_s"),
    ("c4-quant", C4, {"quant": "[int3]"}, "quant"),
    ("c4-w", C4, {"w": "1.5"}, "w"),
    ("c4-tasks", C4, {"tasks": "[poetry]"}, "tasks"),
    ("c4-classifier-epochs", C4, {"classifier": "{epochs: 0}"}, "classifier"),
    ("c4-classifier-key", C4, {"classifier": "{colour: 1}"}, "classifier"),
    ("c4-metrics", C4, {"metrics": "{root_cause: bleu}"}, "metrics"),
    ("c1-duplicate-key-in-value", C1, {"repeats": "{min: 2, min: 3}"}, "given twice"),
    ("c3-clocks-without-consent", C3, {"gpu_clocks_mhz": "[1410, 600]"}, "allow_hardware_settings"),
    ("c3-clocks-without-gpu", C3, {"gpu_clocks_mhz": "[1410]", "allow_hardware_settings": "true",
                                   "device": "cpu"}, "gpu_clocks_mhz"),
]


def _materialise(text: str, tmp: Path) -> str:
    """``@name``: a file of that kind under ``tmp`` (outside the watched work folder)."""
    files: dict[str, bytes] = {
        "file": b"not a folder",
        "bad.jsonl": b'{"text": "LOS", "label": "fibre_cut", "response": "x"}\n{"text": "oops"\n',
        "bad.csv": b'text,label,response\n"LOS on port,fibre_cut,x\n',
        "binary.csv": b"text,label,response\n\xff\xfe,\x00,\n",
        "list.jsonl": b'["text", "label"]\n',
    }
    if not text.startswith("@"):
        return text
    path = tmp / text[1:]
    path.write_bytes(files[text[1:]])
    return str(path)


def _book_value(name: str, text: str) -> Any:
    from nrg.commands.book import _parse_value

    return _parse_value(name, text)


@pytest.mark.parametrize("chapter, given, name", [c[1:] for c in BOOK], ids=[c[0] for c in BOOK])
def test_nrg_book_run_refuses(chapter, given, name, tmp_path, work) -> None:
    with pytest.raises(ParameterError) as info:
        params = {k: _book_value(k, _materialise(v, tmp_path)) for k, v in given.items()}
        book.check_parameters(ROOT, chapter, params)
    assert name in str(info.value), str(info.value)
    assert not list(work.rglob("*"))


# --------------------------------------------------------------------- papermill -p
# (id, chapter, {name: text as typed after papermill -p NAME}, text the message must name)
PAPERMILL: list[tuple[str, str, dict[str, str], str]] = [
    ("pm-isolate-word", C1, {"isolate": "maybe"}, "isolate"),
    ("pm-isolate-int", C2, {"isolate": "2"}, "isolate"),
    ("pm-default-clock-word", C3, {"include_default_clock": "sometimes"}, "include_default_clock"),
    ("pm-idle-nan", C1, {"idle_s": "nan"}, "idle_s"),
    ("pm-idle-inf", C2, {"idle_s": "inf"}, "idle_s"),
    ("pm-idle-word", C4, {"idle_s": "long"}, "idle_s"),
    ("pm-min-duration-inf", C0, {"min_duration_s": "inf"}, "min_duration_s"),
    ("pm-device-absent-c4", C4, {"device": "cuda:7"}, "device"),
    ("pm-device-absent-c1", C1, {"device": "cuda:7"}, "device"),
    ("pm-device-bad-c3", C3, {"device": "tpu"}, "device"),
    ("pm-batch-zero", C1, {"batch_size": "0"}, "batch_size"),
    ("pm-batch-float", C2, {"batch_size": "1.5"}, "batch_size"),
    ("pm-repeats-word", C2, {"repeats": "many"}, "repeats"),
    ("pm-model-unknown", C1, {"models": "llama-9000"}, "llama-9000"),
    ("pm-task-unknown", C1, {"tasks": "poetry"}, "tasks"),
    ("pm-layers-deep", C2, {"models": "gpt2", "weights": "random", "layers": "1000"}, "layers"),
    ("pm-weights-real-absent", C3, {"models": "gpt2", "weights": "real"}, "weights"),
    ("pm-alpha", C2, {"alpha": "2"}, "alpha"),
    ("pm-n-clocks", C3, {"n_clocks": "1"}, "n_clocks"),
    ("pm-tickets-missing", C4, {"tickets_path": MISSING}, "tickets_path"),
    ("pm-tickets-number", C4, {"tickets_path": "5"}, "tickets_path"),
    ("pm-warmup-float", C1, {"warmup": "0.5"}, "warmup"),
    ("pm-c3-clocks-without-consent", C3, {"gpu_clocks_mhz": "[1410, 600]"}, "allow_hardware_settings"),
    ("pm-duplicate-key-in-value", C2, {"input_tokens": "[8, 16, 8]"}, "input_tokens"),
]


def _papermill_value(text: str) -> Any:
    from papermill.cli import _resolve_type

    return _resolve_type(text)


def _declared(chapter: str) -> dict[str, Any]:
    return book.declared_parameters(book.notebook_path(ROOT, chapter))


@pytest.mark.parametrize("chapter, given, name", [c[1:] for c in PAPERMILL],
                         ids=[c[0] for c in PAPERMILL])
def test_papermill_injected_values_refused(chapter, given, name, tmp_path, work) -> None:
    injected = {k: _papermill_value(v) for k, v in given.items()}
    with pytest.raises(ParameterError) as info:
        validate(chapter, {**_declared(chapter), **injected})
    assert name in str(info.value), str(info.value)
    assert not list(work.rglob("*"))


def test_papermill_unknown_name_refused(work) -> None:
    history = ["", "# Parameters\nisolate = False\noutput_token = 8\n"]
    with pytest.raises(ParameterError, match="output_token"):
        reject_unknown_injected(driver(C1), history)
    assert not list(work.rglob("*"))


@pytest.mark.parametrize("text, expected", [("false", False), ("False", False), ("true", True),
                                            ("no", False), ("YES", True)])
def test_papermill_string_booleans_are_read_strictly(text, expected, work) -> None:
    """``papermill -p isolate false`` injects the string "false": it must mean False, not True."""
    params = validate(C2, {**_declared(C2), "isolate": _papermill_value(text),
                           "models": ["gpt2"], "weights": "random"})
    assert {item.config.isolate for item in params.checked} == {expected}


def test_at_least_100_bad_inputs_across_the_three_ways_in() -> None:
    counts = {"nrg sweep": len(SWEEP) + len(FILES), "nrg book run": len(BOOK),
              "papermill": len(PAPERMILL) + 1}
    print("bad inputs tried (each must be refused clearly):", json.dumps(counts),
          "total", sum(counts.values()))
    assert sum(counts.values()) >= 100 and all(n >= 20 for n in counts.values())
