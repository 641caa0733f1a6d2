"""The "Reference: measured on a GPU" section of every sweep chapter, the same way in each.

Why one function: the book's subject is GPU energy and the machine that builds
it usually has no GPU, so the GPU numbers come from runs committed under
``results/reference/<gpu-slug>/<chapter>/`` (what ``nrg reference --out
results/reference/<gpu-slug>`` writes). A reader must see at once *where*
such numbers come from -- which GPU, which driver, how the energy was
obtained (a hardware counter, integrated power samples, or an estimate) and
when -- before any table. :func:`section` returns, per committed GPU, that
label line and the chapter's key table computed from the reference rows; with
no reference data, a sentence that says so and the one command that would
produce it. Nothing here measures or models a number.

The key table is the chapter's: ``key_table(rows, params)`` of the
``reference`` module in its folder (``nrg/book/chapters/c<stem>/reference.py``);
a chapter whose reference module also has an ``OWNER_CONSENT`` (a command that
changes a GPU setting, and the sentence saying so) adds it to the GPU owner's
commands (:func:`gpu_owner_commands`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.book import common
from nrg.book.common import Text
from nrg.errors import ParameterError, check_choice

if TYPE_CHECKING:
    import pandas as pd




def _distinct(rows: pd.DataFrame, column: str) -> str:
    if column not in rows.columns:
        return "not recorded"
    values = sorted({str(v) for v in rows[column].dropna()})
    return ", ".join(values) if values else "not recorded"


def _when(rows: pd.DataFrame) -> str:
    import pandas as pd

    if "started_at" not in rows.columns:
        return "at an unrecorded time"
    times = pd.to_datetime(rows["started_at"], utc=True, errors="coerce").dropna()
    if times.empty:
        return "at an unrecorded time"
    first, last = times.min().date().isoformat(), times.max().date().isoformat()
    return f"on {first}" if first == last else f"from {first} to {last}"


def _where(path: Path, folder: str) -> str:
    parts = path.parts
    tail = parts[len(parts) - 1 - parts[::-1].index(folder):] if folder in parts else parts[-2:]
    return "results/reference/" + "/".join(tail)


def describe(rows: pd.DataFrame) -> str:
    """Short: the GPU, its driver and the energy method of the rows (for labels of other tables)."""
    ok = rows[rows["status"] == "ok"] if "status" in rows.columns else rows
    return f"{_distinct(rows, 'gpu')}, driver {_distinct(rows, 'driver')}, energy {_distinct(ok, 'energy_method')}"


def label(folder: str, rows: pd.DataFrame, path: Path) -> str:
    """One line: the GPU, its driver, the device the cells ran on, the energy method and source, when.

    ``energy_method`` is the weakest method over a row's energy domains (an
    estimated CPU share makes the whole row "estimated"); ``energy_source``
    names each domain's source, so a GPU counter stays visible beside it.
    """
    ok = rows[rows["status"] == "ok"] if "status" in rows.columns else rows
    cells = rows["cell_id"].nunique() if "cell_id" in rows.columns else 0
    ok_cells = ok["cell_id"].nunique() if "cell_id" in ok.columns else 0
    return (f"**Reference data: {_distinct(rows, 'gpu')}** (driver {_distinct(rows, 'driver')}; cells ran on "
            f"`{_distinct(rows, 'device')}`). Energy method: {_distinct(ok, 'energy_method')} "
            f"(sources: {_distinct(ok, 'energy_source')}). Measured {_when(rows)}; {ok_cells} of {cells} "
            f"cells ok; from `{_where(path, folder)}`.")


def _consents() -> list[tuple[str, str]]:
    """(command, sentence) of every chapter whose ``reference`` module has an ``OWNER_CONSENT``, in book order.

    Such a command changes a GPU setting, so only the GPU's owner may run it,
    and only after ``nrg reference``; the sentence says what it changes.
    """
    from nrg.book import chapters

    hooks = (chapters.part(c, "reference") for c in chapters.with_part("reference"))
    return [h.OWNER_CONSENT for h in hooks if hasattr(h, "OWNER_CONSENT")]


def gpu_owner_commands() -> tuple[str, ...]:
    """The commands of a GPU owner, as README, ``book/reproduce.md`` and the chapters give them.

    First ``nrg reference`` (every chapter's data, no setting changed), then,
    only with the owner's consent, each chapter's ``OWNER_CONSENT`` command.
    All write ``results/reference/<gpu-slug>/<chapter>/``, the folders the chapters read.
    """
    return common.reference_command(), *(command for command, _ in _consents())


def gpu_owner_text() -> str:
    """Markdown: the commands, what each writes and changes, and how the book then shows it."""
    reference = common.reference_command()
    consents = "".join(f"{sentence} " for _, sentence in _consents())
    return (f"On a machine with an NVIDIA GPU, `{reference}` measures every chapter's data within the time "
            "budget and changes no GPU setting (clocks, power limit and cpufreq are only observed); "
            "`<gpu-slug>` is the GPU's name in lower case with dashes (e.g. `nvidia-h200`). " + consents
            + "Commit `results/reference/<gpu-slug>/` and rebuild the book: each chapter reads "
            "`results/reference/<gpu-slug>/<chapter>/`.")


def no_reference_text(chapter: str) -> str:
    """Markdown: no reference run of ``chapter`` is committed, and the commands that would produce one."""
    return (f"No GPU reference data has been committed for this chapter "
            f"(`results/reference/<gpu-slug>/{chapter}/`). " + gpu_owner_text())


# ------------------------------------------------------------------ the key table of each chapter


def ok_phase(rows: pd.DataFrame, phase: str) -> pd.DataFrame:
    """The successful rows of ``phase``; rows without a phase column are refused (the run measured nothing)."""
    from nrg.stats import ok_rows

    if "phase" not in rows.columns:
        raise ParameterError("the run holds no measured rows")
    good = ok_rows(rows)
    return good[good["phase"] == phase]


def _key_table(chapter: str) -> Callable[[pd.DataFrame, Mapping[str, Any]], list[Any]]:
    """``key_table`` of ``chapter``'s ``reference`` module; a chapter without one is refused, naming those with one."""
    from nrg.book import chapters

    with_table = [c for c in chapters.with_part("reference") if hasattr(chapters.part(c, "reference"), "key_table")]
    check_choice("chapter", chapter, with_table)
    table: Callable[[pd.DataFrame, Mapping[str, Any]], list[Any]] = chapters.part(chapter, "reference").key_table
    return table


def load(params: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """The committed reference rows of a chapter's ``params["reference"]``, by GPU folder."""
    from nrg.book.sweeps import load_reference

    return load_reference(params.get("reference") or {})


def section(chapter: str, params: Mapping[str, Any]) -> list[Any]:
    """What the reference section shows: per committed GPU its label and key table; else how to get one."""
    key_table = _key_table(chapter)
    runs: Mapping[str, Path] = params.get("reference") or {}
    if not runs:
        return [Text(no_reference_text(chapter))]
    shown: list[Any] = []
    for folder, rows in load(params).items():
        shown.append(Text(label(folder, rows, Path(runs[folder]))))
        try:
            shown += key_table(rows, params)
        except ParameterError as exc:
            shown.append(Text(f"*No table from this run: {exc}.*"))
    return shown
