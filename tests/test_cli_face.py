"""What a user sees of the CLI: help without reST, exit codes everywhere, the right usage, one-line env errors."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nrg.commands.cli import EXIT_CODES, _subparsers, build_parser, environment_problem, main
from nrg.errors import ParameterError
from nrg.meters import hardware
from nrg.sweep.schedule import executors

SRC = Path(__file__).resolve().parents[1] / "src"


def _help(parser) -> str:
    return parser.format_help()


def test_top_level_help_has_no_restructured_text():
    text = _help(build_parser())
    assert "``" not in text and ":mod:" not in text and "exit status" in text


def test_every_command_help_gives_the_exit_codes():
    parsers = _subparsers(build_parser())
    assert len(parsers) >= 8     # meters, models, sweep, dvfs, book (build, run, params), reference
    for parser in parsers:
        assert "exit status: 0" in " ".join(_help(parser).split()), parser.prog
    assert EXIT_CODES.startswith("exit status")


@pytest.mark.parametrize("argv, usage", [(["meters", "--bogus"], "usage: nrg meters"),
                                         (["book", "params", "x", "--bogus"], "usage: nrg book params")])
def test_a_bad_flag_prints_the_sub_commands_usage(argv, usage, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith(usage) and "--bogus" in err


@pytest.mark.parametrize("argv", [["book", "params"], ["book", "run"], ["book", "params", "nope"]])
def test_a_missing_or_wrong_chapter_lists_the_chapters(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "01_model_comparison" in err and "03_dvfs" in err


def test_book_help_lists_the_chapters():
    book = next(p for p in _subparsers(build_parser()) if p.prog.endswith("book run"))
    assert "chapters: 00_" in _help(book)


def test_a_missing_package_is_an_environment_problem_exit_2(monkeypatch, capsys):
    from nrg.commands import models

    def missing():
        raise ModuleNotFoundError("No module named 'transformers'", name="transformers")

    monkeypatch.setattr(models, "model_rows", missing)
    assert main(["models"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "environment problem" in err and "'transformers'" in err and "Traceback" not in err


def test_an_error_inside_nrg_stays_exit_3():
    assert environment_problem(ModuleNotFoundError("x", name="nrg.nothing")) is None
    assert environment_problem(KeyError("x")) is None
    assert "Read-only" in environment_problem(OSError(30, "Read-only file system", "/x"))


def test_nrg_models_says_it_is_working_before_the_long_wait(monkeypatch, capsys):
    from nrg.commands import models

    monkeypatch.setattr(models, "model_rows", lambda: [])
    monkeypatch.setattr(models, "_format_table", lambda rows: "")
    assert main(["models"]) == 0
    assert "nrg models: loading" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
@pytest.mark.process
def test_git_sha_does_not_write_the_index(tmp_path):
    """``git status`` refreshed .git/index: a write outside --out on every sweep."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["init", "-q"], ["add", "f"], ["commit", "-qm", "x"]):
        if cmd[0] == "add":
            (tmp_path / "f").write_text("a")
        subprocess.run(["git", "-C", str(tmp_path), *cmd], check=True, env=env)
    index = tmp_path / ".git" / "index"
    time.sleep(0.05)
    later = time.time() + 5
    os.utime(tmp_path / "f", (later, later))           # stat data stale: git status would rewrite the index
    before = index.stat().st_mtime_ns
    sha = hardware.git_sha(tmp_path)
    assert sha is not None and len(sha.split("+")[0]) == 40
    assert index.stat().st_mtime_ns == before


def test_an_explicit_ray_address_with_nothing_listening_fails_at_once():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                      # bound, not listening: refused
    start = time.monotonic()
    with pytest.raises(ParameterError, match="nothing answers there"):
        executors.check_explicit_address(f"127.0.0.1:{port}", {})
    assert time.monotonic() - start < 5


def test_an_explicit_ray_address_with_the_token_here_gets_token_mode(tmp_path, monkeypatch):
    # set, then delete: monkeypatch then restores the variable's absence after the test (a bare delenv of
    # an absent variable records nothing, and the "token" nrg sets would leak into the Ray cluster tests)
    monkeypatch.setenv("RAY_AUTH_MODE", "unset-by-this-test")
    monkeypatch.delenv("RAY_AUTH_MODE")
    token = tmp_path / "auth_token"
    token.write_text("secret")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        executors.check_explicit_address(f"127.0.0.1:{server.getsockname()[1]}",
                                         {"RAY_AUTH_TOKEN_PATH": str(token)})
    assert os.environ["RAY_AUTH_MODE"] == "token"


def test_ray_hints_name_the_repository_install():
    assert "pip install -c constraints.txt -e '.[ray]'" in executors.INSTALL_HINT
    assert "nrg[ray]" not in executors.INSTALL_HINT


@pytest.mark.process
def test_probing_bitsandbytes_prints_nothing():
    """On an AVX512-BF16 CPU bitsandbytes logged 'Failed to load CPU gemm_4bit_forward ...' at every start."""
    pytest.importorskip("bitsandbytes")
    code = "from nrg.compress.quantization import support; print(repr(support('nf4', 'cpu')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(SRC)})
    assert done.returncode == 0 and "Failed to load" not in done.stderr, done.stderr[-500:]
