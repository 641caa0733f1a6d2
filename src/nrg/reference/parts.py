"""What ``nrg reference`` measures, in priority order, on a GPU (``cuda``) or, scaled down, on a CPU.

Each chapter says what it needs measured: the ``reference`` module of its
folder (``nrg/book/chapters/c<stem>/reference.py``) has ``reference_part(device)``,
which returns a :class:`Part` (or None where the chapter has nothing to run on
that device), and ``PRIORITY``, its place in the order (lowest first; equal
priorities keep book order). A part writes what its chapter reads, under
``<out>/<chapter>/``: sweep configs built with :func:`config`, or the meters
plan. The order matters: a short turn on a GPU measures the first parts first
(the meters, then what the most chapters rest on); ``nrg reference --plan``
lists it.

Every sweep also carries the DVFS axes at ``None`` (leave as is): the clocks
and power the GPU chose by itself are sampled in every cell, and nothing is
ever set (no ``allow_hardware_settings``). On ``cpu`` the same parts run with
the models' tiny shapes, so the whole path is tested without a GPU.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nrg.errors import choice_error
from nrg.reference.meters import MetersPlan

PAPER_MODELS: tuple[str, ...] = ("gpt2", "gpt-neo-2.7b", "t5-3b", "gpt-j-6b", "falcon-7b", "mistral-7b-v0.1")
OBSERVE_ONLY: dict[str, list[Any]] = {"gpu_clock_mhz": [None], "mem_clock_mhz": [None], "power_limit_w": [None]}


@dataclass(frozen=True)
class Part:
    """One chapter's share of the run: sweep configs (run in order), or the meters plan."""

    name: str
    chapter: str
    what: str
    configs: tuple[dict[str, Any], ...] = ()
    meters: MetersPlan | None = None
    left_out: tuple[tuple[str, str], ...] = field(default_factory=tuple)   # (what, why it cannot run here)


def _settings(device: str) -> dict[str, Any]:
    if device.startswith("cuda"):
        return {"device": device, "dtypes": ["bfloat16"], "repeats": 3, "warmup": 1, "idle_s": 1.0,
                "roofline": True, "isolate": True, "quality": {"items": 0}}
    return {"device": "cpu", "dtypes": ["float32"], "repeats": 2, "warmup": 0, "idle_s": 0,
            "roofline": False, "isolate": True, "quality": {"items": 0}}


def _model(name: str, device: str) -> dict[str, Any]:
    return {"name": name, "weights": "random"} if device.startswith("cuda") else \
        {"name": name, "weights": "random", "tiny": True}


def by_size(names: list[str], device: str) -> list[str]:
    """Smallest first, by the parameter count of the shape that will run."""
    from nrg.models import ModelSpec
    from nrg.models.load import plan

    tiny = not device.startswith("cuda")
    return sorted(names, key=lambda n: plan(ModelSpec(n, weights="random", tiny=tiny)).n_params)


def config(name: str, chapter: str, device: str, models: list[str], **keys: Any) -> dict[str, Any]:
    """A sweep config of ``chapter`` on ``device``: random weights (tiny on a CPU), the DVFS axes only observed."""
    axes = {**keys.pop("axes", {}), **OBSERVE_ONLY}
    return {"name": name, "chapter": chapter, "models": [_model(m, device) for m in models],
            **_settings(device), "axes": axes, **keys}


def parts(device: str = "cuda", chapters: Sequence[str] | None = None) -> list[Part]:
    """The run's parts in priority order for ``device`` ("cuda", "cuda:N" or "cpu"): every chapter's that has one.

    ``chapters`` (stems): only those chapters' parts, e.g. to fill in one chapter on a GPU
    without spending the budget on the others; a stem without a part on ``device`` is refused,
    naming those with one, before anything runs.
    """
    from nrg.book import chapters as book_chapters

    hooks = [book_chapters.part(c, "reference") for c in book_chapters.with_part("reference")]
    ordered = sorted((h for h in hooks if hasattr(h, "reference_part")), key=lambda h: h.PRIORITY)
    planned = [p for p in (h.reference_part(device) for h in ordered) if p is not None]
    if chapters is None:
        return planned
    valid = [p.chapter for p in planned]
    for chapter in chapters:
        if chapter not in valid:
            raise choice_error("chapters", chapter, valid)
    return [p for p in planned if p.chapter in chapters]
