"""Progress bars in an executed notebook are text, never ipywidgets (the book renders offline)."""
from __future__ import annotations

import re
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

CODE_BEFORE_NRG = """
from transformers.utils import logging
for _ in logging.tqdm(range(3), desc="before nrg"):
    pass
"""
CODE_AFTER_NRG = """
import nrg.book.chapters
from transformers.utils import logging
from transformers import modeling_gguf_pytorch_utils as gguf
for _ in logging.tqdm(range(3), desc="loading"):
    pass
for _ in gguf.tqdm(range(2), desc="converting"):
    pass
"""


class _Recording(NotebookClient):
    """A notebook client that also keeps every text a display output showed while the cell ran."""

    shown: list[str]

    def process_message(self, msg: dict, cell: Any, cell_index: int) -> Any:
        if msg["msg_type"] in ("display_data", "update_display_data"):
            self.shown.append(msg["content"]["data"].get("text/plain", ""))
        return super().process_message(msg, cell, cell_index)


def _run(code: str, shown: list[str] | None = None) -> list[dict]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code)]
    client = _Recording(nb, kernel_name="python3", timeout=120)
    client.shown = shown if shown is not None else []
    client.execute()
    return nb.cells[0].outputs


def _page_text(outputs: list[dict]) -> str:
    """A cell's outputs as the book shows them: merged streams, then text/plain of display outputs."""
    from myst_nb.core.utils import coalesce_streams

    merged = coalesce_streams([nbformat.from_dict(out) for out in outputs])
    return "\n".join(out["text"] if out["output_type"] == "stream" else out.get("data", {}).get("text/plain", "")
                     for out in merged)


def _mime_types(outputs: list[dict]) -> set[str]:
    return {mime for out in outputs for mime in out.get("data", {})}


@pytest.mark.slow
@pytest.mark.process
def test_transformers_bars_are_widgets_without_nrg() -> None:
    """The premise: in a kernel with ipywidgets, transformers' bars become widgets."""
    assert "application/vnd.jupyter.widget-view+json" in _mime_types(_run(CODE_BEFORE_NRG))


@pytest.mark.slow
@pytest.mark.process
def test_importing_the_chapters_makes_third_party_bars_text() -> None:
    shown: list[str] = []
    outputs = _run(CODE_AFTER_NRG, shown)
    assert not any("widget" in mime for mime in _mime_types(outputs))
    assert any("loading:   0%|" in text and "0/3" in text for text in shown)   # drawn as text while running
    assert any("converting:   0%|" in text for text in shown)


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
@pytest.mark.process
def test_third_party_bars_leave_a_summary_in_the_page() -> None:
    page = _page_text(_run(CODE_AFTER_NRG))
    assert "%|" not in page
    assert "loading: 3 its in" in page and "converting: 2 its in" in page


# A sweep as chapter 1 runs it: transformers' "Loading weights" bar nested inside the
# sweep's bar, and a warning on stderr between two redraws. Written to the kernel's
# stderr, either one ended the sweep bar's first line and kept "0%|" in the page.
CODE_SWEEP_IN_A_KERNEL = """
import sys, warnings
import nrg.book.chapters
from nrg.progress import bar
from transformers.utils import logging
with bar(range(2), "sweep-z", unit="cell", done_before=1) as cells:
    for _ in cells:
        for _ in logging.tqdm(range(272), desc="Loading weights"):
            pass
        warnings.warn("a warning between two redraws")
print("after the sweep")
"""


@pytest.mark.slow
@pytest.mark.process
def test_a_sweep_in_a_kernel_leaves_only_its_summary_in_the_page() -> None:
    shown: list[str] = []
    outputs = _run(CODE_SWEEP_IN_A_KERNEL, shown)
    page = _page_text(outputs)
    assert not re.search(r"\d+%\||\?(?:cell|it)/s\]|it/s\]|\x1b\[", page), page
    assert re.search(r"^sweep-z: 2 cells in \d\d:\d\d \(1 done before\)$", page, re.M), page
    assert "Loading weights" not in page                    # a nested bar leaves no line
    assert "a warning between two redraws" in page and "after the sweep" in page
    assert any("sweep-z:   0%|" in text for text in shown)  # shown while it ran
    assert any("Loading weights:" in text and "%|" in text for text in shown)
    bars = [out for out in outputs if out["output_type"] in ("display_data", "update_display_data")]
    assert len(bars) == 1, bars                            # one output for all bars of the cell


def test_in_a_kernel_bars_draw_on_one_board_and_end_as_one_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    from nrg import progress

    shown: list[str] = []
    board = progress._Board(cell=1, show=shown.append)
    monkeypatch.setattr(progress, "_kernel_board", lambda file: board)
    with progress.bar(range(2), "outer", unit="cell") as cells:
        for _ in cells:
            for _ in progress.SummaryBar(range(3), desc="inner"):
                pass
    assert "outer:   0%|" in shown[0]                                   # drawn while running
    assert any("outer:" in text and "\ninner:" in text for text in shown)  # the nested bar below it
    assert re.fullmatch(r"outer: 2 cells in \d\d:\d\d", shown[-1]), shown[-1]


def test_a_nested_bar_alone_on_the_board_still_leaves_a_line() -> None:
    from nrg import progress

    shown: list[str] = []
    board = progress._Board(cell=1, show=shown.append)
    board.draw(1, "inner:  50%|")
    board.finish(1, "inner: 3 its in 00:00", keep=False)
    assert shown[-1] == "inner: 3 its in 00:00"                         # never a blank output


def test_outside_a_kernel_there_is_no_board() -> None:
    import io

    from nrg import progress

    assert progress._kernel_board(None) is None                        # pytest is no kernel
    assert progress._kernel_board(io.StringIO()) is None


@pytest.mark.slow
@pytest.mark.process
def test_each_cell_keeps_its_own_summary() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"import nrg.book.chapters\nfrom nrg.progress import bar\n"
                                          f"for _ in bar(range({n}), 'cell-{n}'):\n    pass")
                for n in (2, 3)]
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    first, second = (_page_text(cell.outputs) for cell in nb.cells)
    assert re.fullmatch(r"cell-2: 2 its in \d\d:\d\d", first), first
    assert re.fullmatch(r"cell-3: 3 its in \d\d:\d\d", second), second
