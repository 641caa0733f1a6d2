"""The engine's lifecycle through real sweeps, with a fake engine process (fast, no vLLM).

The fake (:mod:`fakes.openai_server`) is started exactly as the engine is --
``<engine_python> -m <module> ... --port P`` in a process group of its own --
through a wrapper standing in for the engine's Python. Each test checks that
no server is left and its port is free, however the sweep ended.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from nrg.errors import ParameterError
from nrg.serving.engine import free_port
from nrg.sweep.run import run_sweep
from nrg.sweep.runfolder import store

pytestmark = [pytest.mark.slow, pytest.mark.faults]
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def fake_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An "engine Python": ``-m anything`` runs the fake server; ``-I -c`` answers the version query."""
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("FAKE_PID_DIR", str(pids))
    script = tmp_path / "engine-python"
    script.write_text(f"""#!/bin/sh
export PYTHONPATH={TESTS}
case "$1" in
  -m) shift 2; exec {sys.executable} -m fakes.openai_server "$@";;
  -I) echo "vllm-fake 0.0"; exit 0;;
esac
exec {sys.executable} "$@"
""")
    script.chmod(0o755)
    return script


def config(python: Path, **serving: object) -> dict[str, object]:
    return {"name": "serve", "workload": "serving", "models": ["fake-model"], "tasks": ["generation"],
            "output_tokens": [4], "repeats": 1, "idle_s": 0, "warmup": 0,
            "serving": {"engine_python": str(python), "concurrency": [1, 2], "requests_per_client": 2,
                        "min_requests": 4, "warmup_requests": 1, "start_timeout_s": 30, **serving}}


def servers(python: Path) -> dict[int, int]:
    """pid -> port of every fake server started in this test."""
    return {int(p.stem): int(p.read_text()) for p in (python.parent / "pids").glob("*.pid")}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]


def assert_no_server_left(python: Path, wait_s: float = 10.0) -> None:
    started = servers(python)
    assert started, "the fake engine never started"
    deadline = time.monotonic() + wait_s
    while any(alive(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in started if alive(p)], "an engine process outlived its sweep"
    assert not any(_listeners_of(port, set(started)) for port in started.values()), "a server's port is still held"


def _listeners_of(port: int, servers_started: set[int]) -> list[int]:
    """Processes listening on ``port`` that are the fake servers or in their process groups.

    Not :func:`port_free`: with two test workers, an unrelated process (a Jupyter kernel's
    channels, another test's server) may listen on the same ephemeral port a moment after
    the dead server freed it.
    """
    import psutil

    held = {c.pid for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid}
    ours = []
    for pid in held:
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            continue
        if pid in servers_started or group in servers_started:
            ours.append(pid)
    return ours


def test_a_sweep_starts_the_engine_measures_two_levels_and_stops_it(tmp_path: Path, fake_python: Path) -> None:
    rows = run_sweep(config(fake_python), tmp_path / "run", progress=False)
    assert set(rows["status"]) == {"ok"} and sorted(set(rows["concurrency"])) == [1, 2]
    assert sorted(rows["phase"]) == ["run", "run", "steady", "steady"]
    assert not rows.duplicated(["phase", "repeat"]).any() and set(rows["block"]) == {0}   # one block, two levels
    assert set(rows["engine"]) == {"vllm-fake"} and "--served-model-name fake-model" in rows["engine_args"].iloc[0]
    assert (rows["tokens"][rows["phase"] == "run"] == 16).all()   # 4 requests x 4 tokens, all counted
    logs = list((tmp_path / "run" / "logs").glob("*.engine.log"))   # the server's log stays in the run
    assert len(logs) == 1 and logs[0].read_text().startswith(f"$ {fake_python} -m vllm.entrypoints")
    assert_no_server_left(fake_python)


def test_each_level_records_the_ci_target_it_stopped_by(tmp_path: Path, fake_python: Path) -> None:
    """Levels stop by the sweep's adaptive rule, so their rows carry its target (a fixed count: none)."""
    cfg = config(fake_python) | {"repeats": {"min": 2, "max": 3, "ci_rel": 0.5}}
    rows = run_sweep(cfg, tmp_path / "run", progress=False)
    steady = rows[rows["phase"] == "steady"]
    assert (steady["ci_rel_target"] == 0.5).all() and steady["repeats_n"].between(2, 3).all()
    fixed = run_sweep(config(fake_python), tmp_path / "fixed", progress=False)
    assert fixed["ci_rel_target"].isna().all()
    assert_no_server_left(fake_python)


def test_an_engine_dying_mid_run_is_a_failure_row_with_the_log_tail(tmp_path: Path, fake_python: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_DIE_AFTER", "3")
    rows = run_sweep(config(fake_python), tmp_path / "run", progress=False)
    assert list(rows["status"]) == ["failed"]
    assert "exited with status 7" in rows["error"].iloc[0] and "engine.log" in rows["error"].iloc[0]
    assert_no_server_left(fake_python)


def test_a_health_check_timeout_is_a_failure_row_and_the_engine_is_stopped(
        tmp_path: Path, fake_python: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_START_DELAY_S", "60")
    rows = run_sweep(config(fake_python, start_timeout_s=2), tmp_path / "run", progress=False)
    assert list(rows["status"]) == ["failed"] and "start_timeout_s=2" in rows["error"].iloc[0]
    assert_no_server_left(fake_python)


def test_an_engine_that_exits_at_start_is_a_failure_row(tmp_path: Path, fake_python: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_EXIT_AT_START", "5")
    rows = run_sweep(config(fake_python), tmp_path / "run", progress=False)
    assert list(rows["status"]) == ["failed"] and "exited with status 5 before it was ready" in rows["error"].iloc[0]


@pytest.mark.parametrize("serving, match", [
    ({"engine_python": "/no/such/python"}, "engine_python"),
    ({"engine_python": None, "base_url": "http://127.0.0.1:{port}"}, "does not answer"),
    ({"engine_python": None, "base_url": "127.0.0.1:8000"}, "base_url"),
])
def test_a_bad_engine_or_url_is_refused_before_any_file(tmp_path: Path, fake_python: Path,
                                                        serving: dict[str, object], match: str) -> None:
    serving = {k: (v.format(port=free_port()) if isinstance(v, str) else v) for k, v in serving.items()}
    with pytest.raises(ParameterError, match=match):
        run_sweep(config(fake_python, **serving), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_the_cli_exits_2_on_a_bad_url_with_nothing_written(tmp_path: Path, fake_python: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config(fake_python, engine_python=None,
                                          base_url=f"http://127.0.0.1:{free_port()}")))
    out = subprocess.run([sys.executable, "-m", "nrg", "sweep", str(path), "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 2 and "base_url" in out.stderr
    assert not (tmp_path / "run").exists()


def _sweep_process(tmp_path: Path, python: Path) -> subprocess.Popen[bytes]:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config(python)))
    return subprocess.Popen([sys.executable, "-m", "nrg", "sweep", str(path), "--out", str(tmp_path / "run"),
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_server(python: Path, proc: subprocess.Popen[bytes], timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not servers(python) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        time.sleep(0.1)
    time.sleep(1.0)   # serving now


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_sweep_leaves_no_server_and_a_rerun_resumes(tmp_path: Path, fake_python: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                sig: signal.Signals) -> None:
    monkeypatch.setenv("FAKE_TOKEN_S", "0.5")   # slow enough to be killed while serving
    proc = _sweep_process(tmp_path, fake_python)
    _wait_for_server(fake_python, proc)
    live = servers(fake_python)
    assert any(_listeners_of(port, set(live)) for port in live.values())    # the check sees a live server
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert_no_server_left(fake_python, wait_s=20.0)
    assert not store.load(tmp_path / "run").get("status", []).__len__()   # nothing finished
    monkeypatch.setenv("FAKE_TOKEN_S", "0.002")
    rows = run_sweep(config(fake_python), tmp_path / "run", progress=False)
    assert set(rows["status"]) == {"ok"} and len(rows) == 4
