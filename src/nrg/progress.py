"""Progress bars as text that leave one summary line, so an executed chapter reads well offline.

Inside a Jupyter kernel ``tqdm.auto`` picks ipywidgets bars. An executed
notebook then stores widget state instead of the bar's text, and the rendered
page loads require.js and the widget manager from a CDN: a reader offline
sees console errors and an empty bar. nrg's own bars use ``tqdm.std``; the
bars of transformers (loading weights, converting GGUF) go through
``tqdm.auto``, so :func:`use_text_bars` points that module at
:class:`SummaryBar`.

A text bar left in a page is residue ("0cell [00:00, ?cell/s]"): the page is
read after the run, when nothing moves. :class:`SummaryBar` shows while it
runs, clears itself when it closes and writes one line in its place
("sweep-x: 4 cells in 00:12 (3 done before)"). The line starts with a carriage
return, so a notebook's stream (which keeps every redraw) renders as that line
alone: Jupyter and Jupyter Book drop the text before a carriage return.

That holds in a terminal, not in a notebook kernel's stream. A nested bar
(transformers' "Loading weights" inside a sweep) moves down a line with a
newline and back up with an ANSI escape, and any warning written to stderr
between two redraws ends the line too: the newline keeps the bar's earlier
text ("sweep-x:   0%| 0/2") in the stored stream for good. In a kernel a bar
therefore never writes to the stream: all bars of one cell draw into one
display output (:class:`_Board`), updated in place while they run, that ends
as the finished top-level bars' summary lines. Papermill stores the last
update, so the page shows the summary only.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, cast

import tqdm.std


class _Discard:
    """A text stream that drops what it is given: a kernel's bars write nothing to stderr."""

    def write(self, text: str) -> int:
        """Drop ``text``; report it written."""
        return len(text)

    def flush(self) -> None:
        """Nothing to flush."""


class _Board:
    """One display output per notebook cell: finished bars' summaries, then the running bars.

    Args:
        cell: the kernel request (cell execution) the board was made in; a new
            cell gets a new board (and a new output).
        show: called with the board's text on every change (a display handle
            in a kernel; a recorder in tests).
    """

    def __init__(self, cell: object, show: Any) -> None:
        self.cell = cell
        self.show = show
        self.done: list[str] = []
        self.live: dict[int, str] = {}

    def text(self) -> str:
        """What the output shows now: one line per finished or running bar."""
        return "\n".join([*self.done, *self.live.values()])

    def draw(self, key: int, line: str) -> None:
        """A running bar's current line."""
        self.live[key] = line
        self.show(self.text())

    def finish(self, key: int, summary: str, keep: bool) -> None:
        """Replace a bar's line by its summary (``keep``) or drop it; never leave the output blank."""
        self.live.pop(key, None)
        if keep or not (self.done or self.live):
            self.done.append(summary)
        self.show(self.text())


_BOARD: _Board | None = None


def _kernel_board(file: Any) -> _Board | None:
    """The current cell's board when running in a Jupyter kernel and writing to stdout/stderr.

    None in a terminal, under pytest, or for a bar given its own ``file``: those
    keep tqdm's carriage-return drawing.
    """
    global _BOARD
    if file is not None and file not in (sys.stdout, sys.stderr):
        return None
    if "ipykernel" not in sys.modules:  # never import IPython here: the CLI starts without it
        return None
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return None
    cell = _cell(shell)
    if _BOARD is None or _BOARD.cell != cell:
        _BOARD = _Board(cell, _DisplayHandle().show)
    return _BOARD


def _cell(shell: Any) -> object:
    """The request the kernel is executing (its message id; else the execution count)."""
    try:
        return shell.kernel.get_parent()["header"]["msg_id"]
    except (AttributeError, KeyError, TypeError):
        return shell.execution_count


class _DisplayHandle:
    """A text/plain display output made on first show and updated in place afterwards."""

    def __init__(self) -> None:
        self.handle: Any = None

    def show(self, text: str) -> None:
        """Create the output, or update it (papermill keeps the last update)."""
        from IPython.display import display

        data = {"text/plain": text}
        if self.handle is None:
            self.handle = display(data, raw=True, display_id=True)
        else:
            self.handle.update(data, raw=True)


class SummaryBar(tqdm.std.tqdm):
    """A ``tqdm.std`` bar that never stays on screen and leaves a one-line summary.

    In a terminal it draws with carriage returns on its stream; in a Jupyter
    kernel it draws into the cell's :class:`_Board` instead (see the module
    docstring for why). Nested bars leave no summary.

    Args:
        *args: as for :class:`tqdm.std.tqdm`.
        note: appended to the summary, e.g. "(3 done before)".
        **kwargs: as for :class:`tqdm.std.tqdm`; ``leave`` is always False.
    """

    def __init__(self, *args: Any, note: str = "", **kwargs: Any) -> None:
        kwargs["leave"] = False
        self.note = note
        self._board = None if kwargs.get("disable") else _kernel_board(kwargs.get("file"))
        if self._board is not None:
            kwargs["file"] = _Discard()
        super().__init__(*args, **kwargs)

    def summary(self) -> str:
        """The line that replaces the bar: description, count, unit, elapsed time, note."""
        total = f"/{self.total:g}" if self.total and self.n != self.total else ""
        unit = self.unit if self.n == 1 or self.unit.endswith("s") else f"{self.unit}s"
        elapsed = self.format_interval(self._time() - self.start_t) if hasattr(self, "start_t") else "00:00"
        head = f"{self.desc.rstrip(': ')}: " if self.desc else ""
        return f"{head}{self.n:g}{total} {unit} in {elapsed}" + (f" {self.note}" if self.note else "")

    def display(self, msg: str | None = None, pos: int | None = None) -> bool | None:
        """Draw on the stream (terminal) or on the cell's board (kernel); tqdm's clear is skipped there."""
        if self._board is None:
            return cast("bool | None", super().display(msg, pos))
        if msg != "":  # "" is tqdm clearing the line on close: close() replaces it by the summary
            self._board.draw(id(self), self.__str__() if msg is None else msg)
        return True

    def close(self) -> None:
        """Clear the bar and write the summary line (top-level bars that were enabled only)."""
        enabled = not getattr(self, "disable", True)
        top = abs(getattr(self, "pos", 0)) == 0
        line = self.summary() if enabled else ""
        super().close()
        if not enabled:
            return
        if self._board is not None:
            self._board.finish(id(self), line, keep=top)
        elif top:
            self.fp.write("\r" + line + "\n")
            self.fp.flush()


def bar(iterable: Iterable[Any] | None, desc: str, unit: str = "it", enabled: bool = True,
        done_before: int = 0, total: float | None = None, initial: float = 0) -> SummaryBar:
    """A :class:`SummaryBar` over ``iterable`` (nothing at all when not ``enabled``).

    ``done_before`` counts items skipped because an earlier run finished them;
    it appears in the summary, not in the description, so the bar stays short.
    ``iterable=None`` with ``total`` (and ``initial`` already done) is a bar the
    caller moves with ``update``.
    """
    note = f"({done_before} done before)" if done_before else ""
    return SummaryBar(iterable, desc=desc, unit=unit, disable=not enabled, note=note, total=total,
                      initial=initial)


def use_text_bars() -> None:
    """Make ``tqdm.auto`` (and modules that already took its ``tqdm``) draw :class:`SummaryBar` s.

    Idempotent. Called when a chapter driver is imported, i.e. in the notebooks;
    a terminal gets text bars from ``tqdm.auto`` anyway.
    """
    import tqdm.auto

    tqdm.auto.tqdm = SummaryBar  # a subclass of the class it replaces
    tqdm.auto.trange = lambda *args, **kwargs: SummaryBar(range(*args), **kwargs)
    for name in ("tqdm.autonotebook", "transformers.modeling_gguf_pytorch_utils"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "tqdm"):
            setattr(module, "tqdm", SummaryBar)  # noqa: B010 - a module attribute unknown to the type checker
