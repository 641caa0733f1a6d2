"""A warm book build reuses a chapter's kept execution while everything it read is unchanged.

Executing a notebook (papermill, a kernel) and rendering (jupyter-book) are the
expensive, process-starting parts; here they are stand-ins that record each
call and write what papermill would (the executed notebook and the data beside
it). What is under test is the bookkeeping: when a kept page is reused and when
the chapter is executed again. tests/test_book.py builds the real book.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from nrg.book import build as book

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ["00_how_energy_is_measured", "02_sequence_length"]


@pytest.fixture
def executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Chapters executed, in order (papermill's and jupyter-book's stand-ins)."""
    calls: list[str] = []
    monkeypatch.setenv("NRG_RUNS_DIR", str(tmp_path / "runs"))

    def execute(root: Path, chapter: str, output: Path, params: Any, progress: bool = False) -> Path:
        calls.append(chapter)
        output.write_text(json.dumps({"cells": [], "execution": len(calls), "params": params}))
        data = output.parent / "data" / output.stem
        data.mkdir(parents=True, exist_ok=True)
        (data / "table.csv").write_text(f"execution\n{len(calls)}\n")
        return output

    monkeypatch.setattr(book, "execute_chapter", execute)
    monkeypatch.setattr(book, "_jupyter_book", lambda stage, out, strict: True)
    return calls


def build(tmp_path: Path, **kw: Any) -> book.BuildReport:
    return book.build(ROOT, profile=kw.pop("profile", "tiny"), only=CHAPTERS, out=tmp_path / "out", **kw)


def staged(tmp_path: Path, chapter: str) -> Path:
    return tmp_path / "out" / "_build" / "src" / "notebooks" / f"{chapter}.ipynb"


def test_unchanged_chapters_are_reused_with_their_data_and_file_times(tmp_path: Path, executed: list[str]) -> None:
    first = build(tmp_path)
    assert executed == CHAPTERS and first.reused == [] and first.ok
    pages = {c: (staged(tmp_path, c).read_text(), staged(tmp_path, c).stat().st_mtime_ns) for c in CHAPTERS}
    second = build(tmp_path)
    assert executed == CHAPTERS and second.reused == CHAPTERS and second.ok
    for chapter in CHAPTERS:
        page = staged(tmp_path, chapter)
        assert (page.read_text(), page.stat().st_mtime_ns) == pages[chapter]   # Sphinx sees no change
        assert (page.parent / "data" / chapter / "table.csv").is_file()


def test_a_changed_run_folder_parameter_or_rerun_executes_again(tmp_path: Path, executed: list[str]) -> None:
    build(tmp_path)
    run = tmp_path / "runs" / CHAPTERS[1]
    run.mkdir(parents=True, exist_ok=True)
    (run / "cell.parquet").write_bytes(b"a new cell")            # e.g. `nrg sweep` added a cell
    assert build(tmp_path).reused == [CHAPTERS[0]] and executed[-1] == CHAPTERS[1]
    profile = tmp_path / "profile.yaml"
    profile.write_text(f"{CHAPTERS[0]}: {{idle_s: 0.3}}\n{CHAPTERS[1]}: {{repeats: 2}}\n")
    assert build(tmp_path, profile=str(profile)).reused == []
    assert build(tmp_path, profile=str(profile)).reused == CHAPTERS
    assert build(tmp_path, profile=str(profile), rerun=True).reused == []
    assert len(executed) == 2 + 1 + 2 + 2


def test_nrg_variables_change_the_key(tmp_path: Path, executed: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    key = book.execution_key(ROOT, CHAPTERS[0], {})
    monkeypatch.setenv("NRG_SOMETHING", "1")
    assert book.execution_key(ROOT, CHAPTERS[0], {}) != key
    monkeypatch.delenv("NRG_SOMETHING")
    monkeypatch.setenv("NRG_PAGE", os.fspath(tmp_path / "page.ipynb"))     # set by the build itself: not a key
    assert book.execution_key(ROOT, CHAPTERS[0], {}) == key


def test_a_failed_chapter_is_executed_again(tmp_path: Path, executed: list[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    build(tmp_path)
    working = book.execute_chapter

    def fail(root: Path, chapter: str, output: Path, params: Any, progress: bool = False) -> Path:
        raise RuntimeError("kernel died")

    monkeypatch.setattr(book, "execute_chapter", fail)
    report = build(tmp_path, rerun=True)
    assert set(report.failed) == set(CHAPTERS) and not report.ok
    monkeypatch.setattr(book, "execute_chapter", working)
    assert build(tmp_path).reused == []                          # nothing kept from the failed build
