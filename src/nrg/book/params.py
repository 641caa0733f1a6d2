"""A chapter's parameters as one frozen dataclass: the one source of their defaults and types.

Each chapter folder defines ``Params(ChapterParams)``: its fields are exactly the
notebook's parameters cell (a test compares the two, and every profile key
with the fields), each default is the cell's value, and ``__post_init__``
parses what papermill or ``nrg book run -p`` give (``-p models '[gpt2]'`` is a
string) into the field's type and checks it, raising
:class:`nrg.errors.ParameterError` naming the parameter before any work.

Checking against the machine (devices, memory, model depth) happens once per
run: ``nrg book run`` checks in its own process, then runs the notebook with
:func:`checked_env`, so the kernel's ``Params`` -- built from the same values --
trusts that check instead of repeating it (:meth:`ChapterParams.checked_elsewhere`).

A ``Params`` is also a read-only mapping of its parameters (plus the derived
names in ``EXTRA``), which is how the book's shared modules that take
``Mapping[str, Any]`` (findings, claims, the reference section) read it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

from nrg.book.paths import environment

#: Set by ``nrg book run`` for the notebook's kernel: the digest of the parameters it checked.
CHECKED_ENV = "NRG_CHECKED_PARAMS"


class ChapterParams(Mapping[str, Any]):
    """Base of every chapter's frozen ``Params`` dataclass."""

    #: Derived attributes also readable by name (e.g. ``reference``), beside the fields.
    EXTRA: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The parameters: the fields a caller gives (exactly the notebook's parameters cell)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.init)  # type: ignore[arg-type]

    def __getitem__(self, key: str) -> Any:
        if key not in self.names() and key not in self.EXTRA:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter((*self.names(), *self.EXTRA))

    def __len__(self) -> int:
        return len(self.names()) + len(self.EXTRA)

    def digest(self) -> str:
        """A hash of the parsed parameters: the same values give the same digest in any process."""
        text = repr([(name, getattr(self, name)) for name in self.names()])
        return hashlib.sha256(f"{type(self).__module__}:{text}".encode()).hexdigest()

    def checked_elsewhere(self) -> bool:
        """True when ``nrg book run`` checked exactly these parameters against this machine already."""
        return os.environ.get(CHECKED_ENV) == self.digest()


@contextmanager
def checked_env(params: Mapping[str, Any]) -> Iterator[None]:
    """While a chapter's notebook runs: tell its kernel that ``params`` were checked here."""
    if not isinstance(params, ChapterParams):
        yield
        return
    with environment(CHECKED_ENV, params.digest()):
        yield
