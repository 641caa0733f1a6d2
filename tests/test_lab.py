"""A chapter opened in JupyterLab reads as in the book: MyST roles render, the nrg kernel starts.

A user who edits a chapter opens it in JupyterLab (``.venv/bin/jupyter lab
notebooks/``). Without jupyterlab-myst the Markdown cells show MyST roles as
raw text ("{cite:t}`maliakel2025dvfs`"). The test serves a copy of the
notebooks on loopback, opens one chapter in headless Chromium and stops the
server afterwards.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHAPTER = "02_sequence_length.ipynb"   # its first cell cites with {cite:t}
TOKEN = "nrg-test-token"
pytestmark = [pytest.mark.slow, pytest.mark.process,
              pytest.mark.skipif(not Path(CHROMIUM).exists() and os.environ.get("CI") != "true",
                                 reason="Debian's chromium is not installed (make test installs it)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    """JupyterLab on a free loopback port serving a copy of the notebooks; stopped after the test."""
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    port = _free_port()
    jupyter = Path(sys.executable).with_name("jupyter")
    cmd = [str(jupyter), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={tmp_path / 'notebooks'}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    with open(tmp_path / "lab.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
                try:
                    _get(f"{base}/api/status?token={TOKEN}")
                    break
                except OSError:
                    assert time.monotonic() < deadline, "JupyterLab did not start within 120 s"
                    time.sleep(0.5)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_a_chapter_in_jupyterlab_renders_myst_and_starts_the_nrg_kernel(lab: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{lab}/lab/tree/{CHAPTER}?token={TOKEN}")
            page.wait_for_selector(".jp-Notebook .jp-MarkdownCell", timeout=120_000)
            page.wait_for_function("() => document.body.innerText.includes('Python 3 (nrg) | Idle')",
                                   timeout=120_000)
            first_cell = page.inner_text(".jp-Notebook .jp-Cell:first-child")
            shots = ROOT / "_build" / "test-artefacts" / "screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "jupyterlab-02_sequence_length.png"))
            text = page.inner_text(".jp-Notebook")
        finally:
            browser.close()
    assert first_cell.startswith("Input and output sequence length")   # the markdown renders
    assert "Maliakel et al. (2025)" in text            # the citation is there, as a readable author-year ...
    assert "{cite:t}" not in text and "{cite" not in text   # ... rendered, not as a raw role
    sessions = _get(f"{lab}/api/sessions?token={TOKEN}")
    assert isinstance(sessions, list) and len(sessions) == 1
    kernel = sessions[0]["kernel"]
    assert kernel["name"] == "python3" and kernel["execution_state"] == "idle"
    spec = _get(f"{lab}/api/kernelspecs?token={TOKEN}")
    assert isinstance(spec, dict) and spec["kernelspecs"]["python3"]["spec"]["display_name"] == "Python 3 (nrg)"
