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
    assert "loading:   0%|" in text and "0/3" in text       # drawn as text while running
    assert "converting:   0%|" in text


def _as_page(text: str) -> str:
    """The stream as Jupyter Book renders it (myst-nb merges streams and applies carriage returns)."""
    from myst_nb.core.utils import coalesce_streams

    out = coalesce_streams([nbformat.v4.new_output("stream", name="stderr", text=text)])
    return out[0]["text"]


def test_a_bar_leaves_one_summary_line_in_the_page(capsys: pytest.CaptureFixture[str]) -> None:
    from nrg.progress import bar

    with bar(range(3), "sweep-x", unit="cell", done_before=2) as cells:
        for _ in cells:
            cells.refresh()
    written = capsys.readouterr().err                # what the bar wrote, as a notebook stores it
    assert "sweep-x:   0%|" in written               # the bar was drawn while it ran
    assert _as_page(written) == "sweep-x: 3 cells in 00:00 (2 done before)\n"


def test_an_empty_sweep_says_so_in_one_line() -> None:
    import io

    from nrg.progress import SummaryBar

    stream = io.StringIO()
    SummaryBar([], desc="sweep-y", unit="cell", file=stream, note="(4 done before)").close()
    assert _as_page(stream.getvalue()) == "sweep-y: 0 cells in 00:00 (4 done before)\n"
    assert "?cell/s" in stream.getvalue() and "?cell/s" not in _as_page(stream.getvalue())


def test_a_disabled_bar_writes_nothing() -> None:
    import io

    from nrg.progress import SummaryBar

    stream = io.StringIO()
    for _ in SummaryBar(range(2), desc="off", file=stream, disable=True):
        pass
    assert stream.getvalue() == ""


@pytest.mark.slow
def test_third_party_bars_leave_a_summary_in_the_page() -> None:
    outputs = _run(CODE_AFTER_NRG)
    text = "".join(out.get("text", "") for out in outputs if out.get("output_type") == "stream")
    page = _as_page(text)
    assert "%|" not in page
    assert "loading: 3 its in" in page and "converting: 2 its in" in page
