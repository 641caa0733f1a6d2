"""Opening a chapter in JupyterLab and closing it without edits leaves its file byte-identical.

JupyterLab reads a notebook through nbformat and saves it in the current
minor version with an id on every cell; it validates it, sets the kernelspec of
the kernel it starts, and saves through ``nbformat.writes`` (sorted keys,
one-space indent, a final newline). A source that is not already in that form
is marked modified and rewritten by autosave. The test applies the same
normalization and compares bytes.
"""
from __future__ import annotations

import copy
import json
import platform
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL_DISPLAY = re.search(r'--display-name "([^"]+)"', (ROOT / "Makefile").read_text()).group(1)  # type: ignore[union-attr]


def jupyter_normalized(text: str) -> str:
    """What Jupyter's contents manager writes back for a notebook it read and did not change."""
    nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    nb = nbformat.convert(nb, 4)
    if nb.nbformat_minor < nbformat.current_nbformat_minor:   # JupyterLab saves the current minor, with cell ids
        nb = nbformat.v4.upgrade(nb, from_version=4, from_minor=nb.nbformat_minor)
    nbformat.validate(nb)                     # raises on a notebook Jupyter would repair
    spec = nb.metadata.get("kernelspec", {})
    nb.metadata["kernelspec"] = {**spec, "name": "python3", "display_name": KERNEL_DISPLAY, "language": "python"}
    text_out: str = nbformat.writes(nb, version=nbformat.NO_CONVERT)
    return text_out if text_out.endswith("\n") else text_out + "\n"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_round_trip_through_jupyter_leaves_the_bytes(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert jupyter_normalized(text) == text, (
        f"{path.name} is not in the form Jupyter saves: opening it would mark it modified. Normalize with "
        "nbformat.write(nbformat.read(path, 4), path) and the kernelspec of `make install`'s kernel")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_cell_has_a_stable_id_and_the_current_format(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert (nb["nbformat"], nb["nbformat_minor"]) == (4, nbformat.current_nbformat_minor)
    ids = [c.get("id") for c in nb["cells"]]
    assert all(ids) and len(set(ids)) == len(ids)
    assert nb["metadata"]["kernelspec"]["display_name"] == KERNEL_DISPLAY


def test_language_info_is_what_the_kernel_reports() -> None:
    """JupyterLab writes the kernel's ``language_info`` into the notebook when the kernel starts: a
    source carrying anything else is marked modified on opening. (Checked in JupyterLab 4.6: with
    these fields the tab stays clean; only ``version``, the Python patch release, is machine-specific.)"""
    from ipykernel.ipkernel import IPythonKernel

    reported = {**IPythonKernel.language_info, "version": platform.python_version()}
    for path in NOTEBOOKS:
        info = json.loads(path.read_text())["metadata"]["language_info"]
        assert {k: v for k, v in info.items() if k != "version"} == \
            {k: v for k, v in reported.items() if k != "version"}, path.name
        assert re.fullmatch(r"3\.\d+\.\d+", info["version"]), path.name


def test_the_check_catches_what_jupyter_would_rewrite() -> None:
    """A missing cell id, an old minor version or unsorted keys: each is caught."""
    text = NOTEBOOKS[0].read_text(encoding="utf-8")
    nb = json.loads(text)
    no_id = copy.deepcopy(nb)
    del no_id["cells"][0]["id"]
    old = {**copy.deepcopy(nb), "nbformat_minor": 4}
    for cell in old["cells"]:
        cell.pop("id", None)
    for broken in (json.dumps(no_id, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                   json.dumps(old, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                   json.dumps(dict(reversed(list(nb.items()))), indent=1, ensure_ascii=False) + "\n",
                   text.replace(KERNEL_DISPLAY, "Python 3")):
        assert jupyter_normalized(broken) != broken


def test_citations_read_as_author_and_year_in_jupyterlab() -> None:
    """A MyST {cite} role shows its raw key in JupyterLab: the notebooks write author-year links instead."""
    for path in NOTEBOOKS:
        source = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
        assert "{cite" not in source, path.name
