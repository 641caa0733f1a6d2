"""Progress bars in an executed notebook are text, never ipywidgets (the book renders offline)."""
from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

CODE_BEFORE_NRG = """
from transformers.utils import logging
for _ in logging.tqdm(range(3), desc="before nrg"):
    pass
"""
CODE_AFTER_NRG = """
import nrg.chapters
from transformers.utils import logging
from transformers import modeling_gguf_pytorch_utils as gguf
for _ in logging.tqdm(range(3), desc="loading"):
    pass
for _ in gguf.tqdm(range(2), desc="converting"):
    pass
"""


def _run(code: str) -> list[dict]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code)]
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    return nb.cells[0].outputs


def _mime_types(outputs: list[dict]) -> set[str]:
    return {mime for out in outputs for mime in out.get("data", {})}


@pytest.mark.slow
def test_transformers_bars_are_widgets_without_nrg() -> None:
    """The premise: in a kernel with ipywidgets, transformers' bars become widgets."""
    assert "application/vnd.jupyter.widget-view+json" in _mime_types(_run(CODE_BEFORE_NRG))


@pytest.mark.slow
def test_importing_the_chapters_makes_third_party_bars_text() -> None:
    outputs = _run(CODE_AFTER_NRG)
    assert not any("widget" in mime for mime in _mime_types(outputs))
    text = "".join(out.get("text", "") for out in outputs if out.get("output_type") == "stream")
    assert "loading: 100%" in text and "3/3" in text
    assert "converting: 100%" in text
