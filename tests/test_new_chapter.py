"""Adding a chapter is a folder, a notebook, a line in ``_toc.yml`` and its profiles: nothing else is edited.

The test builds a book beside the real one (a copy of its skeleton: ``_toc.yml``,
``_config.yml``, ``book/``, the notebooks and their profiles) and adds a
chapter ``07_minimal`` to it the way a contributor would: its notebook
(a parameters cell, a driver call, the shared "What this chapter found" box and
claims table), a line in ``_toc.yml``, an entry in every profile, and its
folder ``c07_minimal/`` (``driver.py``, ``found.py``, ``claims.py``,
``reference.py``) in a temporary folder that ``NRG_CHAPTERS_PATH`` adds to
:mod:`nrg.book.chapters` (ARCHITECTURE.md, "Adding a chapter"). Nothing under
``src/`` changes. The real ``nrg`` command line then lists the chapter, checks
its parameters, runs it through papermill with a profile, and ``nrg
reference`` plans its part in its priority order.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEM = "07_minimal"

DRIVER = '''"""The minimal chapter: one parameter checked, one sentence computed from it."""
from __future__ import annotations

from dataclasses import dataclass

from nrg.book.params import ChapterParams
from nrg.errors import ParameterError, check_int

CHAPTER = "07_minimal"


@dataclass(frozen=True)
class Params(ChapterParams):
    """The parameters cell's values, checked when built (a bad value fails before any work)."""

    EXTRA = ("reference",)

    message: str = "hello"
    times: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.message, str) or not self.message:
            raise ParameterError(f"message={self.message!r} is not valid; give a non-empty string")
        object.__setattr__(self, "times", check_int("times", self.times, minimum=1))

    @property
    def reference(self) -> dict[str, str]:
        """No reference runs: the chapter measures nothing."""
        return {}


def page(params: Params) -> str:
    """What the page shows: the message, as often as asked."""
    return " ".join([params.message] * params.times)
'''

FOUND = '''"""The minimal chapter's "What this chapter found" sentence."""
from __future__ import annotations

from typing import Any


def findings(params: dict[str, Any]) -> list[str]:
    """One sentence from the checked parameters."""
    return [f"The minimal chapter said {params['message']!r} {params['times']} times."]
'''

CLAIMS = '''"""The minimal chapter checks one claim the other chapters share."""
from __future__ import annotations

from nrg.book.claims import Claim, decode_share_claim

CLAIMS: tuple[Claim, ...] = (decode_share_claim("07_minimal"),)
'''

REFERENCE = '''"""The minimal chapter's place in ``nrg reference``: between chapters 4 (priority 3) and 3 (priority 4)."""
from __future__ import annotations

from nrg.reference.parts import Part

PRIORITY = 3.5


def reference_part(device: str) -> Part:
    """Nothing to measure, and why."""
    return Part("minimal", "07_minimal", "nothing", left_out=(("minimal", "a test chapter measures nothing"),))
'''


def _notebook() -> dict:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A minimal chapter"),
        nbformat.v4.new_code_cell('message = "hello"\ntimes = 1', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "from nrg.book.chapters import driver, reject_unknown_injected\n\n"
            f'chapter = driver("{STEM}")\nreject_unknown_injected(chapter)\n'
            "params = chapter.Params(message=message, times=times)\nprint(chapter.page(params))"),
        nbformat.v4.new_code_cell(f'from nrg.book import found\n\nfound.block("{STEM}", params)'),
        nbformat.v4.new_code_cell(f'from nrg.book import claims\n\nclaims.section("{STEM}", None, params)'),
    ]
    return dict(nb)


def _add_chapter(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The book copy with chapter 07 added, and the environment that finds its folder."""
    book = tmp_path / "book"
    book.mkdir()
    for name in ("_toc.yml", "_config.yml"):
        shutil.copy2(ROOT / name, book / name)
    shutil.copytree(ROOT / "book", book / "book")
    shutil.copytree(ROOT / "notebooks", book / "notebooks")
    # 1. the notebook
    (book / "notebooks" / f"{STEM}.ipynb").write_text(json.dumps(_notebook(), indent=1))
    # 2. its line in _toc.yml
    toc = (book / "_toc.yml").read_text()
    assert "      - file: notebooks/06_serving\n" in toc
    (book / "_toc.yml").write_text(toc.replace("      - file: notebooks/06_serving\n",
                                               f"      - file: notebooks/06_serving\n      - file: notebooks/{STEM}\n"))
    # 3. its profiles
    for profile in (book / "notebooks" / "params").glob("*.yaml"):
        message = f"from-the-{profile.stem}-profile"
        profile.write_text(profile.read_text() + f"\n{STEM}:\n  message: {message}\n  times: 2\n")
    # 4. its folder, outside the source tree
    folder = tmp_path / "chapters" / f"c{STEM}"
    folder.mkdir(parents=True)
    for name, text in (("__init__.py", '"""A chapter added from outside the source tree."""\n'), ("driver.py", DRIVER),
                       ("found.py", FOUND), ("claims.py", CLAIMS), ("reference.py", REFERENCE)):
        (folder / name).write_text(text)
    env = {**os.environ, "NRG_CHAPTERS_PATH": str(tmp_path / "chapters"), "NRG_RUNS_DIR": str(tmp_path / "runs"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return book, env


def _nrg(book: Path, env: dict[str, str], *args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nrg", *args], cwd=book, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.process
def test_a_chapter_from_a_folder_is_listed_checked_and_planned(tmp_path):
    book, env = _add_chapter(tmp_path)
    listed = _nrg(book, env, "book", "params", STEM)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert listed.stdout.split() == ["message", "=", "hello", "times", "=", "1"]
    bad = _nrg(book, env, "book", "run", STEM, str(tmp_path / "bad.ipynb"), "-p", "times", "0")
    assert bad.returncode == 2 and "times" in bad.stderr and not (tmp_path / "bad.ipynb").exists()
    planned = subprocess.run([sys.executable, "-c", "from nrg.reference.parts import parts\n"
                              "print(' '.join(p.chapter for p in parts('cpu')))"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert planned.returncode == 0, planned.stderr[-2000:]
    assert planned.stdout.split() == ["00_how_energy_is_measured", "02_sequence_length", "01_model_comparison",
                                      "04_network_tickets", STEM, "03_dvfs", "06_serving"]   # by its PRIORITY
    without = {k: v for k, v in env.items() if k != "NRG_CHAPTERS_PATH"}
    unknown = _nrg(book, without, "book", "run", STEM, str(tmp_path / "x.ipynb"))
    assert unknown.returncode == 2 and "chapter" in unknown.stderr    # the folder is what makes it a chapter


@pytest.mark.slow
@pytest.mark.process
@pytest.mark.timeout(900)
def test_a_chapter_from_a_folder_runs_through_nrg_book_run(tmp_path):
    book, env = _add_chapter(tmp_path)
    out = tmp_path / "page" / f"{STEM}.ipynb"
    done = _nrg(book, env, "book", "run", STEM, str(out), "--profile", "tiny", timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    outputs = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])]
    text = json.dumps(outputs)
    assert "from-the-tiny-profile from-the-tiny-profile" in text                  # the driver, with the profile
    assert "The minimal chapter said 'from-the-tiny-profile' 2 times." in text     # its found box
    assert "Decode dominates inference time" in text and "not measured" in text    # its claims table
    assert not any(o.get("output_type") == "error" for o in outputs)
