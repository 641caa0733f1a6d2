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
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import tqdm.std


class SummaryBar(tqdm.std.tqdm):
    """A ``tqdm.std`` bar that never stays on screen and leaves a one-line summary.

    Args:
        *args: as for :class:`tqdm.std.tqdm`.
        note: appended to the summary, e.g. "(3 done before)".
        **kwargs: as for :class:`tqdm.std.tqdm`; ``leave`` is always False.
    """

    def __init__(self, *args: Any, note: str = "", **kwargs: Any) -> None:
        kwargs["leave"] = False
        self.note = note
        super().__init__(*args, **kwargs)

    def summary(self) -> str:
        """The line that replaces the bar: description, count, unit, elapsed time, note."""
        total = f"/{self.total:g}" if self.total and self.n != self.total else ""
        unit = self.unit if self.n == 1 or self.unit.endswith("s") else f"{self.unit}s"
        elapsed = self.format_interval(self._time() - self.start_t) if hasattr(self, "start_t") else "00:00"
        head = f"{self.desc.rstrip(': ')}: " if self.desc else ""
        return f"{head}{self.n:g}{total} {unit} in {elapsed}" + (f" {self.note}" if self.note else "")

    def close(self) -> None:
        """Clear the bar and write the summary line (top-level bars that were enabled only)."""
        enabled = not getattr(self, "disable", True)
        top = abs(getattr(self, "pos", 0)) == 0
        line = self.summary() if enabled else ""
        super().close()
        if enabled and top:
            self.fp.write("\r" + line + "\n")
            self.fp.flush()


def bar(iterable: Iterable[Any], desc: str, unit: str = "it", enabled: bool = True,
        done_before: int = 0) -> SummaryBar:
    """A :class:`SummaryBar` over ``iterable`` (nothing at all when not ``enabled``).

    ``done_before`` counts items skipped because an earlier run finished them;
    it appears in the summary, not in the description, so the bar stays short.
    """
    note = f"({done_before} done before)" if done_before else ""
    return SummaryBar(iterable, desc=desc, unit=unit, disable=not enabled, note=note)


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
            setattr(module, "tqdm", SummaryBar)  # a module attribute unknown to the type checker
