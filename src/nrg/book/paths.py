"""Where the book lives on disk, and what a chapter's kernel inherits from the process that starts it.

Its own module, below both :mod:`nrg.book.build` and :mod:`nrg.book.chapters`, so a
chapter driver can find its runs folder without importing the book builder.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nrg.errors import ParameterError


def find_root(start: str | Path | None = None) -> Path:
    """The book's root: the nearest folder upwards holding ``_toc.yml``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "notebooks").is_dir():
            return folder
    source_root = Path(__file__).resolve().parents[3]
    if (source_root / "_toc.yml").is_file():
        return source_root
    raise ParameterError(f"no book found: no _toc.yml with notebooks/ above {here}")


@contextmanager
def environment(name: str, value: str) -> Iterator[None]:
    """``$name`` set to ``value`` inside the block, as it was after (unset stays unset).

    Why a block: papermill's kernel and a sweep's cell processes inherit the
    environment, so values meant for one chapter's run must not outlive it.
    """
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
