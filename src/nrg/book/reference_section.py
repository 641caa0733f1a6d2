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


#: The chapter 3 clock sweep a consenting GPU owner runs: the gpu-paper profile's paper models over the
#: GPU's supported clocks (``gpu_clocks_mhz: auto``), written where the chapters read reference data.
CLOCK_SWEEP_COMMAND = ("nrg book run 03_dvfs dvfs-run.ipynb --profile gpu-paper -p allow_hardware_settings true "
                       "-p run_dir results/reference/<gpu-slug>/03_dvfs")


def gpu_owner_commands() -> tuple[str, str]:
    """The two commands of a GPU owner, as README, ``book/reproduce.md`` and chapter 3 give them.

    First ``nrg reference`` (every chapter's data, no setting changed), then,
    only with the owner's consent, the clock sweep. Both write
    ``results/reference/<gpu-slug>/<chapter>/``, the folders the chapters read.
    """
    return common.reference_command(), CLOCK_SWEEP_COMMAND


def gpu_owner_text() -> str:
    """Markdown: the two commands, what each writes and changes, and how the book then shows it."""
    reference, sweep = gpu_owner_commands()
    return (f"On a machine with an NVIDIA GPU, `{reference}` measures every chapter's data within the time "
            "budget and changes no GPU setting (clocks, power limit and cpufreq are only observed); "
            "`<gpu-slug>` is the GPU's name in lower case with dashes (e.g. `nvidia-h200`). Only if the GPU's "
            f"owner agrees to its clocks being locked (each restored after its cell): `{sweep}` sweeps the "
            "GPU's supported clocks with the paper's models into the same folder. Commit "
            "`results/reference/<gpu-slug>/` and rebuild the book: each chapter reads "
            "`results/reference/<gpu-slug>/<chapter>/`.")


def no_reference_text(chapter: str) -> str:
    """Markdown: no reference run of ``chapter`` is committed, and the commands that would produce one."""
    return (f"No GPU reference data has been committed for this chapter "
            f"(`results/reference/<gpu-slug>/{chapter}/`). " + gpu_owner_text())


# ------------------------------------------------------------------ the key table of each chapter


def _ok_phase(rows: pd.DataFrame, phase: str) -> pd.DataFrame:
    from nrg.stats import ok_rows

    if "phase" not in rows.columns:
        raise ParameterError("the run holds no measured rows")
    good = ok_rows(rows)
    return good[good["phase"] == phase]


def _model_comparison(rows: pd.DataFrame, params: Mapping[str, Any]) -> list[Any]:
    from nrg.stats import summarize

    gen = _ok_phase(rows, "generate")
    if gen.empty:
        raise ParameterError("no successful generation rows")
    measures = ["energy_per_token_j", "ttft_s", "tpot_s", "tokens_per_s", "avg_power_w"]
    table = summarize(gen, by=["model", "task", "input_tokens", "output_tokens"], measures=measures)
    return [table.pivot_table(index=["model", "task", "input_tokens", "output_tokens"], columns="measure",
                              values="mean")[measures]]


def _sequence_length(rows: pd.DataFrame, params: Mapping[str, Any]) -> list[Any]:
    from nrg.stats import per_token_costs

    gen = _ok_phase(rows, "generate")
    if gen.empty:
        raise ParameterError("no successful generation rows")
    return [Text("Fitted energy per input and per output token (OLS of the generation's energy on both "
                 "lengths, per model):"), per_token_costs(gen, response="energy_j", by=["model"])]


def _setting(value: Any, unit: str) -> str:
    import pandas as pd

    return "default" if pd.isna(value) else f"{float(value):g} {unit}"


def _dvfs(rows: pd.DataFrame, params: Mapping[str, Any]) -> list[Any]:
    gen = _ok_phase(rows, "generate")
    if gen.empty:
        raise ParameterError("no successful generation rows")
    swept = {a: a in gen.columns and bool(gen[a].notna().any()) for a in ("gpu_clock_mhz", "power_limit_w")}
    axis, unit = ("power_limit_w", "W") if swept["power_limit_w"] and not swept["gpu_clock_mhz"] \
        else ("gpu_clock_mhz", "MHz")
    values = gen[axis] if axis in gen.columns else [None] * len(gen)
    gen = gen.assign(setting=[_setting(v, unit) for v in values])
    measures = [c for c in ("energy_per_token_j", "time_s", "avg_power_w", "gpu_clock_mhz_observed_mean",
                            "gpu_power_w_observed_mean") if c in gen.columns]
    return [gen.groupby(["model", "setting"], sort=True)[measures].mean()]


def _tickets(rows: pd.DataFrame, params: Mapping[str, Any]) -> list[Any]:
    """Ranked like the live run when the rows are chapter 4's fine-tuning cells, else inference by quant x prune."""
    from nrg.book.chapters.c04_network_tickets import analysis as tickets_analysis

    if {"finetune", "inference"} & set(rows["phase"].dropna()):
        shown: list[Any] = []
        for task in sorted(set(rows["task"].dropna()) & set(params["metrics"])):
            for phase in tickets_analysis.PHASES:
                if not _ok_phase(rows[rows["task"] == task], phase).empty:
                    shown += [Text(f"**{task}, {phase}**"),
                              tickets_analysis.ranking(rows, task, phase, params["metrics"][task], params["w"])]
        return shown
    gen = _ok_phase(rows, "generate")
    if gen.empty:
        raise ParameterError("no successful generation or inference rows")
    keys = ["quant", "prune"]
    gen = gen.assign(**{k: gen[k].astype("string").fillna("none") for k in keys})
    table = gen.groupby(keys, sort=True).agg(
        energy_per_token_j=("energy_per_token_j", "mean"), time_s=("time_s", "mean"),
        tpot_s=("tpot_s", "mean"), kernel=("kernel", "first"), sparsity=("sparsity", "mean")).reset_index()
    dense = table[table["prune"] == "none"].set_index("quant")
    table["energy_vs_unpruned"] = table["energy_per_token_j"] / table["quant"].map(dense["energy_per_token_j"])
    table["time_vs_unpruned"] = table["time_s"] / table["quant"].map(dense["time_s"])
    return [Text("Inference (generation) per quantization x pruning; `*_vs_unpruned` is the ratio to the "
                 "unpruned model of the same quantization (task quality is not measured with random weights):"),
            table]


def _batch_size(rows: pd.DataFrame, params: Mapping[str, Any]) -> list[Any]:
    """Chapter 5: per model and batch size, energy per token, latency, throughput and their change from the smallest."""
    from nrg.book.chapters.c05_batch_size import driver as batch_size

    gen = _ok_phase(rows, "generate")
    if gen.empty:
        raise ParameterError("no successful generation rows")
    shown: list[Any] = [batch_size.change_table(gen)]
    if gen["batch_size"].nunique() < 2:
        shown.append(Text(f"Only batch size {int(gen['batch_size'].iloc[0])} was measured (the run's budget "
                          "stopped before the others): there is no batch size to compare it with."))
    else:
        shown.append(Text(str(batch_size.batch_findings(gen))))
    return shown


KEY_TABLES: dict[str, Callable[[pd.DataFrame, Mapping[str, Any]], list[Any]]] = {
    "01_model_comparison": _model_comparison,
    "02_sequence_length": _sequence_length,
    "03_dvfs": _dvfs,
    "04_network_tickets": _tickets,
    "05_batch_size": _batch_size,
}


def load(params: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """The committed reference rows of a chapter's ``params["reference"]``, by GPU folder."""
    from nrg.book.sweeps import load_reference

    return load_reference(params.get("reference") or {})


def section(chapter: str, params: Mapping[str, Any]) -> list[Any]:
    """What the reference section shows: per committed GPU its label and key table; else how to get one."""
    check_choice("chapter", chapter, list(KEY_TABLES))
    runs: Mapping[str, Path] = params.get("reference") or {}
    if not runs:
        return [Text(no_reference_text(chapter))]
    shown: list[Any] = []
    for folder, rows in load(params).items():
        shown.append(Text(label(folder, rows, Path(runs[folder]))))
        try:
            shown += KEY_TABLES[chapter](rows, params)
        except ParameterError as exc:
            shown.append(Text(f"*No table from this run: {exc}.*"))
    return shown
