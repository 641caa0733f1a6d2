"""The book's answer in one page: which configuration costs least, under a quality floor and a latency target.

Why a module: the summary page reads every chapter's stored rows and must
answer only what they carry. A "lowest-energy configuration" is named as
such only when its 95% interval lies below every other eligible
configuration's; when intervals overlap the page says the leaders are not
distinguishable. A configuration without a task score cannot meet a quality
floor above zero. The published GPU figures (ML.ENERGY, ``data/published``)
are read and shown beside this machine's rows, labelled with their source,
and never concatenated with them.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.book import common
from nrg.book.params import ChapterParams
from nrg.errors import ParameterError, check_choice

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

CHAPTER = "summary"
SWEEP_CHAPTERS: tuple[str, ...] = ("01_model_comparison", "02_sequence_length", "03_dvfs", "04_network_tickets",
                                   "05_batch_size")
LATENCY_MEASURES: tuple[str, ...] = ("tpot_s", "ttft_s", "time_s")
#: The task score a configuration is judged by, per task (higher is better, 0 to 1).
METRIC_BY_TASK: dict[str, str] = {"qa": "f1", "summarization": "rouge_l", "generation": "exact_match",
                                  "root_cause": "macro_f1", "response": "rouge_l"}
PUBLISHED = Path("data") / "published" / "mlenergy_v3_lm_arena_chat.csv"
PUBLISHED_SOURCE = ("ML.ENERGY Leaderboard v3.0 (Chung et al., 2025, arXiv 2505.06371; data: github.com/ml-energy/"
                    "leaderboard, commit 0cd52da), task lm-arena-chat, vLLM 0.11.1, GPU energy only (NVML via Zeus) "
                    "over the steady-state window")
#: Columns that make one configuration (besides the chapter and the cell).
FACTORS: tuple[str, ...] = ("model", "task", "input_tokens", "output_tokens", "batch_size", "dtype", "quant",
                            "prune", "gpu_clock_mhz", "power_limit_w")


@dataclass(frozen=True)
class Params(ChapterParams):
    """The summary page's parameters: what counts as good enough, and where the chapters' rows are."""

    quality_floor: float = 0.0          # minimum task score, 0 to 1
    latency_measure: str = "tpot_s"     # one of LATENCY_MEASURES
    latency_target_s: float = 1.0       # seconds of latency_measure
    runs_dir: Path | None = None        # None: runs/ or $NRG_RUNS_DIR (resolved when built)
    chapters: tuple[str, ...] = SWEEP_CHAPTERS
    region: str = "USA"
    price_per_kwh: float | None = None
    pue: float = 1.0

    def __post_init__(self) -> None:
        from nrg.book import carbon

        put = functools.partial(object.__setattr__, self)
        for name, value in carbon.check_params(self.region, self.price_per_kwh, self.pue).items():
            put(name, value)
        put("quality_floor", common.as_fraction("quality_floor", self.quality_floor, 0.0, 1.0))
        check_choice("latency_measure", self.latency_measure, list(LATENCY_MEASURES))
        put("latency_target_s", common.as_number("latency_target_s", self.latency_target_s, inclusive=False))
        wanted = tuple(str(c) for c in common.as_list("chapters", self.chapters))
        for name in wanted:
            check_choice("chapters", name, list(SWEEP_CHAPTERS))
        put("chapters", wanted)
        put("runs_dir", Path(self.runs_dir).expanduser().resolve() if self.runs_dir else common.runs_root())


def load_rows(params: Params) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Each chapter's stored rows, and for each chapter without rows the reason."""
    from nrg.book.labels import with_model_labels
    from nrg.sweep.runfolder import store

    rows: dict[str, pd.DataFrame] = {}
    missing: dict[str, str] = {}
    for chapter in params.chapters:
        folder = (params.runs_dir or common.runs_root()) / chapter
        if not (folder / "manifest.json").is_file():
            missing[chapter] = f"no run folder `{folder.name}/` under the runs directory: the chapter was not executed"
            continue
        frame = store.load(folder)
        if frame.empty or "status" not in frame.columns or not (frame["status"] == "ok").any():
            missing[chapter] = "its run holds no successful rows"
            continue
        rows[chapter] = with_model_labels(frame)   # every name says what ran: "gpt2 [random, 124 M params]"
    return rows, missing


def _energy_rows(chapter: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows that measure energy per generated token: whole generations (ch. 4: response inference)."""
    ok = frame[(frame["status"] == "ok") & frame["energy_per_token_j"].notna()]
    phase = "inference" if chapter == "04_network_tickets" else "generate"
    return ok[ok["phase"] == phase]


def _quality(chapter: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Per cell: the task score by its task's metric (ch. 1: the ``inference`` rows of real-weight models)."""
    import pandas as pd

    scored = frame[(frame["status"] == "ok") & frame["phase"].isin(["inference"])]
    out = []
    for cell, part in scored.groupby("cell_id"):
        metric = METRIC_BY_TASK.get(str(part["task"].iloc[0]))
        if metric and metric in part.columns and part[metric].notna().any():
            out.append({"cell_id": cell, "quality": float(part[metric].mean()), "quality_metric": metric})
    return pd.DataFrame(out, columns=["cell_id", "quality", "quality_metric"])


def _label(row: Mapping[str, Any]) -> str:
    import pandas as pd

    parts = [str(row["model"])] + ([str(row["task"])] if str(row.get("task")) not in ("none", "None", "nan") else [])
    if pd.notna(row.get("input_tokens")) and pd.notna(row.get("output_tokens")):
        parts.append(f"in {int(row['input_tokens'])}/out {int(row['output_tokens'])} tokens")
    if pd.notna(row.get("batch_size")):
        parts.append(f"batch {int(row['batch_size'])}")
    for key, unit in (("quant", ""), ("prune", " prune"), ("gpu_clock_mhz", " MHz"), ("power_limit_w", " W")):
        value = row.get(key)
        if value is not None and not (isinstance(value, float) and math.isnan(value)) and str(value) not in ("none", ""):
            parts.append(f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}")
    return " · ".join(parts)


#: Factor columns that may tell apart two cells whose :func:`_label` is the same (in this order).
DISTINGUISHING: tuple[str, ...] = ("dtype", "device", "dataset", "cpu_max_freq_khz", "weights", "layers", "tiny")


def _distinct_labels(labels: list[str], firsts: list[Mapping[str, Any]], chapters: list[str]) -> list[str]:
    """``labels`` where two cells of one chapter share one: each then names the factors that differ.

    Why: the summary names its answer by this label; two rows reading
    "gpt2 · in 32/out 8 tokens · batch 1" (e.g. a CPU-frequency cap or a
    dtype apart) would leave a reader unable to say which one was meant. The
    factors that differ within the group are added (``dtype bfloat16``,
    ``cpu_max_freq_khz 800000``); cells that still read alike get their
    cell id.
    """
    import pandas as pd

    out = list(labels)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(chapters, labels, strict=True)):
        groups.setdefault(key, []).append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        def shown(i: int, column: str) -> str:
            value = firsts[i].get(column)
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                return "none"
            return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        differing = [c for c in DISTINGUISHING if len({shown(i, c) for i in members}) > 1]
        for i in members:
            extra = [f"{c} {shown(i, c)}" for c in differing]
            out[i] = " · ".join([labels[i], *extra])
        alike = [i for i in members if sum(out[j] == out[i] for j in members) > 1]
        for i in alike:
            out[i] += f" · cell {firsts[i]['cell_id']}"
    return out


def _interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval (NaN bounds with fewer than two values)."""
    from scipy import stats as st

    n = len(values)
    mean = float(sum(values) / n)
    if n < 2:
        return mean, math.nan, math.nan
    sd = float((sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5)
    half = float(st.t.ppf(0.975, n - 1)) * sd / n ** 0.5
    return mean, mean - half, mean + half


def configurations(rows: Mapping[str, pd.DataFrame], latency_measure: str = "tpot_s") -> pd.DataFrame:
    """One row per measured configuration of every chapter: energy per token with its interval, latency, quality."""
    import pandas as pd

    records = []
    firsts: list[Mapping[str, Any]] = []       # each configuration's first row: its factors
    for chapter, frame in rows.items():
        energy = _energy_rows(chapter, frame)
        quality = _quality(chapter, frame).set_index("cell_id")
        for cell, part in energy.groupby("cell_id"):
            first = part.iloc[0]
            mean, low, high = _interval(part["energy_per_token_j"].astype(float).tolist())
            latency = part[latency_measure].astype(float).mean() if latency_measure in part.columns else math.nan
            record = {"chapter": chapter, "configuration": _label(first), "n": len(part),
                      "energy_per_token_j": mean, "ci_low": low, "ci_high": high, latency_measure: latency,
                      "quality": quality["quality"].get(cell, math.nan),
                      "quality_metric": quality["quality_metric"].get(cell, ""),
                      "energy_method": ", ".join(sorted(map(str, part["energy_method"].dropna().unique()))),
                      "cell_id": cell}
            records.append(record)
            firsts.append(first.to_dict())
    labels = _distinct_labels([r["configuration"] for r in records], firsts, [r["chapter"] for r in records])
    for record, label in zip(records, labels, strict=True):
        record["configuration"] = label
    columns = ["chapter", "configuration", "n", "energy_per_token_j", "ci_low", "ci_high", latency_measure,
               "quality", "quality_metric", "energy_method", "cell_id"]
    return pd.DataFrame.from_records(records, columns=columns).sort_values("energy_per_token_j", ignore_index=True)


@dataclass(frozen=True)
class Choice:
    """The answer to "which configuration costs least under the constraints", with its guard."""

    eligible: pd.DataFrame          # meeting both constraints, cheapest mean first
    tied: pd.DataFrame              # eligible rows whose interval overlaps the cheapest one's
    sentence: str


def _overlaps(best: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether two 95% intervals overlap; a missing interval (one repeat) counts as overlapping."""
    bounds = (best["ci_low"], best["ci_high"], other["ci_low"], other["ci_high"])
    if any(math.isnan(float(b)) for b in bounds):
        return True
    return float(other["ci_low"]) <= float(best["ci_high"])


def choose(configs: pd.DataFrame, quality_floor: float, latency_measure: str, latency_target_s: float) -> Choice:
    """The cheapest configuration meeting the floor and the target; "not distinguishable" when intervals overlap."""
    from nrg.book.findings import num

    fast = configs[configs[latency_measure] <= latency_target_s]
    eligible = fast if quality_floor <= 0 else fast[fast["quality"] >= quality_floor]
    eligible = eligible.sort_values("energy_per_token_j", ignore_index=True)
    rule = (f"{latency_measure} ≤ {latency_target_s:g} s" +
            (f" and task score ≥ {quality_floor:g}" if quality_floor > 0 else " (no quality floor)"))
    if eligible.empty:
        why = (f"{len(fast)} meet the latency target, none of them with a task score ≥ {quality_floor:g}"
               if len(fast) else "none meets the latency target")
        return Choice(eligible, eligible, f"No measured configuration meets {rule}: of {len(configs)}, {why}.")
    best = eligible.iloc[0]
    tied = eligible.iloc[1:][[_overlaps(best, row) for _, row in eligible.iloc[1:].iterrows()]]
    what = (f"**{best['configuration']}** ({best['chapter']}; {num(best['energy_per_token_j'])} J/token, "
            f"95% CI {num(best['ci_low'])}–{num(best['ci_high'])}, n = {best['n']})")
    if len(eligible) == 1:
        text = f"Of {len(configs)} configurations, only {what} meets {rule}."
    elif tied.empty:
        text = (f"Of {len(eligible)} configurations meeting {rule}, {what} uses the least energy per token: its "
                "95% interval lies below every other's.")
    else:
        names = "; ".join(tied["configuration"].head(5)) + (f" and {len(tied) - 5} more" if len(tied) > 5 else "")
        text = (f"Of {len(eligible)} configurations meeting {rule}, {what} has the lowest mean, but it is **not "
                f"distinguishable** from {len(tied)} other(s) whose 95% intervals overlap its own: {names}.")
    if "estimated" in " ".join(eligible["energy_method"]):
        text += (" Energy here is estimated (time × an assumed power), so this ranking is close to a ranking by "
                 "time.")
    return Choice(eligible, tied, text)


def frontier(configs: pd.DataFrame) -> pd.DataFrame:
    """The accuracy-constrained energy frontier, per task metric.

    A configuration is on it when no other configuration scored by the same
    metric is both cheaper and better; scores of different metrics are not
    compared, and a score of 0 (a model that learned nothing) is no point of a trade-off.
    """
    import pandas as pd

    positive = configs[configs["quality"] > 0]   # a score of 0 learned nothing: no point of a trade-off
    scored = positive.sort_values(["energy_per_token_j", "quality"], ascending=[True, False])
    keep = []
    for _, part in scored.groupby("quality_metric", sort=True):
        best_quality = -math.inf
        for index, row in part.iterrows():
            if row["quality"] > best_quality:
                keep.append(index)
                best_quality = row["quality"]
    columns = ["quality_metric", "configuration", "chapter", "energy_per_token_j", "ci_low", "ci_high", "quality", "n"]
    if not keep:
        return pd.DataFrame(columns=columns)
    return scored.loc[keep, columns].sort_values(["quality_metric", "energy_per_token_j"], ignore_index=True)


def not_measured(rows: Mapping[str, pd.DataFrame], missing: Mapping[str, str], configs: pd.DataFrame) -> list[str]:
    """What this machine's data cannot say, and why: missing chapters, estimated energy, no GPU, no scores."""
    sentences = [f"**{chapter}**: {why}." for chapter, why in missing.items()]
    if not rows:
        return [*sentences, "Nothing was measured, so no configuration can be compared."]
    import pandas as pd

    every = pd.concat([f for f in rows.values()], ignore_index=True)
    ok = every[every["status"] == "ok"]
    methods = set(ok["energy_method"].dropna().astype(str))
    if methods and methods <= {"estimated"}:
        sentences.append("**Measured energy**: no energy counter was read here (no RAPL, no NVML); every joule is "
                         "estimated from time and an assumed power (chapter 0 gives the sources and powers).")
    gpus = {str(g) for g in ok["gpu"].dropna() if str(g) not in ("", "none")} if "gpu" in ok.columns else set()
    if not gpus:
        sentences.append("**GPU energy and GPU clocks (DVFS)**: this machine has no GPU, so neither the papers' "
                         "GPU energy nor a clock sweep was measured (chapter 3 says why in detail).")
    locked = ok["gpu_clock_mhz"].notna().any() if "gpu_clock_mhz" in ok.columns else False
    if gpus and not locked:
        sentences.append("**GPU clocks (DVFS)**: no clock was locked (no consent or no permission), so chapter 3 "
                         "measured the default clock only.")
    unscored = int(configs["quality"].isna().sum())
    if unscored:
        sentences.append(f"**Task quality**: {unscored} of {len(configs)} configurations have no task score "
                         "(random-weight models produce no meaningful text), so they cannot meet a quality floor "
                         "above zero.")
    return sentences


def published(root: Path) -> pd.DataFrame:
    """The published ML.ENERGY rows (``data/published``), as published: never mixed with nrg's rows."""
    import pandas as pd

    path = root / PUBLISHED
    if not path.is_file():
        raise ParameterError(f"the published figures are missing: {path} (copied from ../shared/data/published)")
    return pd.read_csv(path)


def published_by_batch(pub: pd.DataFrame, gpus: Sequence[str] = ("H100", "B200")) -> pd.DataFrame:
    """One GPU: each model's published energy per token at its smallest ``max_num_seqs`` and at its lowest."""
    import pandas as pd

    one = pub[(pub["num_gpus"] == 1) & pub["gpu_model"].isin(gpus)]
    records = []
    for (model, gpu), part in one.groupby(["model_id", "gpu_model"], sort=True):
        part = part.sort_values("max_num_seqs")
        first, low = part.iloc[0], part.loc[part["energy_per_token_j"].idxmin()]
        records.append({"model": model, "gpu": gpu, "batch_smallest": int(first["max_num_seqs"]),
                        "energy_per_token_j_at_smallest": first["energy_per_token_j"],
                        "batch_lowest": int(low["max_num_seqs"]), "energy_per_token_j_lowest": low["energy_per_token_j"],
                        "batches_published": len(part)})
    return pd.DataFrame.from_records(records)


def beside_figure(pub: pd.DataFrame, this_machine: pd.DataFrame | None, gpus: Sequence[str] = ("H100", "B200")) -> Figure:
    """Energy per token against batch: one panel per published GPU, and this machine's chapter-5 rows in its own."""
    from matplotlib.figure import Figure

    panels = list(gpus) + (["this machine"] if this_machine is not None and not this_machine.empty else [])
    fig = Figure(figsize=(7.0, 4.0 * len(panels)), layout="constrained")   # stacked: legible on a phone
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, gpu in zip(axes[:len(gpus)], gpus, strict=True):   # a last axis shows this machine
        part = pub[(pub["num_gpus"] == 1) & (pub["gpu_model"] == gpu)]
        for model, rows in part.groupby("model_id", sort=True):
            rows = rows.sort_values("max_num_seqs")
            ax.plot(rows["max_num_seqs"], rows["energy_per_token_j"], marker="o", label=model.split("/")[-1])
        ax.set(xscale="log", yscale="log", title=f"{gpu} (ML.ENERGY v3, published)", xlabel="max_num_seqs (batch)",
               ylabel="GPU energy per token (J)")
    if this_machine is not None and len(panels) > len(gpus):
        ax = axes[-1]
        means = this_machine.groupby(["model", "batch_size"])["energy_per_token_j"].mean().reset_index()
        for model, rows in means.groupby("model", sort=True):
            ax.plot(rows["batch_size"], rows["energy_per_token_j"], marker="s", label=str(model))
        from nrg.book.labels import energy_axis_label

        ax.set(xscale="log", yscale="log", title="this machine (nrg, chapter 5)", xlabel="batch size",
               ylabel=energy_axis_label("energy_per_token_j", this_machine))   # "Estimated ..." where it is
        ax.legend(fontsize="small")
    axes[0].legend(fontsize="x-small", ncols=1)
    return fig


def _published_sentence(pub: pd.DataFrame, model: str = "meta-llama/Llama-3.1-8B-Instruct") -> str:
    """The published batch effect of one model on one H100 and one B200, as published."""
    from nrg.book.findings import num

    table = published_by_batch(pub)
    if table.empty:
        return ""
    name = model if model in set(table["model"]) else str(table["model"].iloc[0])
    parts = [f"on one {r['gpu']} from {num(r['energy_per_token_j_at_smallest'])} J at max_num_seqs "
             f"{r['batch_smallest']} to its lowest, {num(r['energy_per_token_j_lowest'])} J, at {r['batch_lowest']}"
             for _, r in table[table["model"] == name].iterrows()]
    return (f"Published beside this machine (ML.ENERGY v3, GPU energy only, not nrg's data): the energy per token "
            f"of {name.split('/')[-1]} falls {'; '.join(parts)}.")


def _carbon_sentence(choice: Choice, params: Params) -> str:
    from nrg.book import carbon
    from nrg.book.findings import num

    if choice.eligible.empty:
        return ""
    conv = carbon.conversion(params.region, params.price_per_kwh, params.pue)
    per_1000_j = float(choice.eligible["energy_per_token_j"].iloc[0]) * 1000
    return (f"At that configuration's mean, 1,000 tokens take {num(per_1000_j)} J: {num(conv.gco2e(per_1000_j))} g "
            f"CO₂e and {num(conv.cost_usd(per_1000_j))} USD on the grid of {conv.intensity.name} "
            f"(PUE {conv.pue:g}, {conv.price_usd_per_kwh:g} USD/kWh).")


def answer(choice: Choice, front: pd.DataFrame, gaps: Sequence[str], pub: pd.DataFrame,
           params: Params) -> list[str]:
    """The sentences of the page's box: the choice, the frontier, what is missing, the published figures."""
    out = [choice.sentence, _carbon_sentence(choice, params)]
    if front.empty:
        out.append("No measured configuration has a task score, so no accuracy-constrained frontier exists here.")
    else:
        metrics = ", ".join(f"{m} ({n})" for m, n in front.groupby("quality_metric").size().items())
        out.append(f"The accuracy-constrained energy frontier holds {len(front)} configuration(s), by metric: "
                   f"{metrics} (table below).")
    if gaps:
        out.append(f"Not measured here ({len(gaps)} item(s), listed below): "
                   + "; ".join(g.split("**")[1] for g in gaps if g.count("**") >= 2) + ".")
    out.append(_published_sentence(pub))
    return [s for s in out if s]
