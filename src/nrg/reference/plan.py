"""``nrg reference --plan``: what a budget would buy on a given GPU, without running or writing anything.

Why: a lent GPU comes for a few minutes, each start and each idle wait
counted. Whoever holds one chooses the budget *before* starting it: this
walks the run's rounds (:mod:`nrg.reference.run`: cells the budget stopped last
time, one cell per part, then everything in priority order) with the
estimator's predictions -- from the GPU's data-sheet bandwidth, and from the
corrections an earlier run left in ``--out`` when there is one -- and says
which cells would start, which would not fit, and what everything would take.
Only files are read (``--out``'s cells and ``reference-state.json``); no model
is loaded, no measurement taken, nothing written. GPU name and memory default
to the local GPU (NVML), else to the lent default (an H100 80GB); the
bandwidth to the data sheet of that name.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nrg.errors import ParameterError
from nrg.reference.estimate import Estimator, peak_bandwidth

if TYPE_CHECKING:
    from nrg.meters.nvml import Nvml

DEFAULT_GPU = ("NVIDIA H100 80GB HBM3", 80.0)
#: Share of the GPU's memory the weights may take before a cell is flagged (activations, KV cache, CUDA context).
MEMORY_SHARE = 0.9


@dataclass(frozen=True)
class Gpu:
    """The GPU planned for; ``source`` says where each figure came from."""

    name: str
    memory_gib: float
    bandwidth_bytes_per_s: float | None
    source: str


def local_gpu(index: int = 0, nvml_module: Nvml | None = None) -> tuple[str, float] | None:
    """Name and memory (GiB) of this machine's GPU ``index`` through NVML (reads only), None without one."""
    from nrg.meters.nvml import load_nvml

    try:
        pynvml = load_nvml(nvml_module)
        pynvml.nvmlInit()
    except Exception:  # no library, no driver: no local GPU
        return None
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        total = pynvml.nvmlDeviceGetMemoryInfo(handle).total
        return (name.decode() if isinstance(name, bytes) else str(name)), total / 2**30
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()


def _positive(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ParameterError(f"{name}={value!r} is not valid; it must be a number > 0")
    return float(value)


def resolve_gpu(device: str, name: str | None = None, memory_gib: Any = None, bandwidth_gbs: Any = None) -> Gpu:
    """The GPU to plan for: given figures first, then the local GPU, then the lent default."""
    memory, bandwidth = _positive("memory_gib", memory_gib), _positive("bandwidth_gbs", bandwidth_gbs)
    local = local_gpu(int(device.split(":")[1]) if ":" in device else 0) if name is None or memory is None else None
    origin = "the local GPU (NVML)" if local else f"the lent default ({DEFAULT_GPU[0]})"
    found_name, found_memory = local or DEFAULT_GPU
    sources = [f"name: {'given' if name else origin}", f"memory: {'given' if memory else origin}"]
    name = name or found_name
    memory = memory or found_memory
    if bandwidth is None:
        peak = peak_bandwidth(name)
        sources.append("bandwidth: " + ("data sheet of the name" if peak else "unknown name, the estimator's prior"))
    else:
        peak = bandwidth * 1e9
        sources.append("bandwidth: given")
    return Gpu(name, memory, peak, "; ".join(sources))


@dataclass
class _Clock:
    """The simulated budget: seconds planned so far against the budget minus the margin."""

    available_s: float
    used_s: float = 0.0

    def take(self, estimate_s: float) -> bool:
        if self.used_s + estimate_s > self.available_s:
            return False
        self.used_s += estimate_s
        return True


def _row(part: str, name: str, decision: str, estimate_s: float | None, clock: _Clock, why: str = "") -> dict[str, Any]:
    return {"part": part, "name": name, "decision": decision, "estimate_s": estimate_s,
            "ends_at_s": clock.used_s if decision == "would run" else None, "reason": why}


def plan(budget_s: Any, device: str = "cuda", out: str | Path | None = None, margin_s: Any = None,
         gpu_name: str | None = None, memory_gib: Any = None, bandwidth_gbs: Any = None,
         retry_failed: bool = False, chapters: Sequence[str] | None = None) -> dict[str, Any]:
    """What ``nrg reference`` with these options would start, in order, and what would not fit."""
    from nrg.reference import run as reference
    from nrg.reference import state as reference_state
    from nrg.reference.parts import parts

    params = reference.check(budget_s, out, device, margin_s, need_device=False)
    gpu = resolve_gpu(device, gpu_name, memory_gib, bandwidth_gbs) if device.startswith("cuda") else None
    machine = reference_state.machine_key(device, gpu.name if gpu else None)
    folder: Path | None = params["out"]
    state = (reference_state.load(folder, machine) if folder is not None and folder.is_dir()
             else reference_state.State(machine, note="no earlier run: the estimator's priors"))
    estimator = Estimator(device, peak_bandwidth_bytes_per_s=gpu.bandwidth_bytes_per_s if gpu else None)
    estimator.restore(state.corrections)
    clock = _Clock(params["budget_s"] - params["margin_s"])
    rows = _walk(parts(device, chapters), folder, state, estimator, clock, gpu, bool(retry_failed))
    everything_s = sum(r["estimate_s"] or 0.0 for r in rows if r["decision"] in ("would run", "not run: budget"))
    return {"device": device, "gpu": None if gpu is None else vars(gpu), "budget_s": params["budget_s"],
            "margin_s": params["margin_s"], "out": None if folder is None else str(folder),
            "estimator_from": state.note, "chapters": None if chapters is None else list(chapters), "rows": rows, "would_run_s": clock.used_s, "everything_s": everything_s}


def _walk(planned: list[Any], folder: Path | None, state: Any, estimator: Estimator, clock: _Clock,
          gpu: Gpu | None, retry_failed: bool) -> list[dict[str, Any]]:
    """The run's rounds, simulated: stopped cells, one cell per part, then the rest (see nrg.reference.run)."""
    from nrg.sweep.config import parse_config
    from nrg.sweep.runfolder.store import RunStore

    rows: list[dict[str, Any]] = []
    cells: dict[str, list[Any]] = {}
    for part in planned:
        rows += [_row(part.name, what, "not possible here", None, clock, why) for what, why in part.left_out]
        done = RunStore.at(folder / part.chapter).finished() if folder is not None else {}
        todo = []
        for config in part.configs:
            for cell in parse_config(config).cells():
                status = done.get(cell.cell_id)
                stopped = f"{part.chapter}/{cell.cell_id}" in state.stopped
                if status == "ok" or (status is not None and not retry_failed and not stopped):
                    rows.append(_row(part.name, _label(cell), "reused", None, clock, f"{status} in an earlier run"))
                else:
                    todo.append(cell)
        cells[part.name] = todo
    decided: set[str] = set()
    first = [(p, c) for p in planned for c in cells[p.name] if f"{p.chapter}/{c.cell_id}" in state.stopped]
    for part, cell in first:
        rows.append(_decide(part.name, cell, estimator, clock, gpu, "stopped in an earlier run: first"))
        decided.add(f"{part.chapter}/{cell.cell_id}")
    for part in planned:
        if part.meters is not None:
            estimate = part.meters.estimate_s()
            rows.append(_row(part.name, part.what, "would run" if clock.take(estimate) else "not run: budget",
                             estimate, clock))
        for cell in cells[part.name][:1]:
            if f"{part.chapter}/{cell.cell_id}" not in decided:
                rows.append(_decide(part.name, cell, estimator, clock, gpu, "first round: one cell per part"))
                decided.add(f"{part.chapter}/{cell.cell_id}")
    for part in planned:
        rows += [_decide(part.name, c, estimator, clock, gpu) for c in cells[part.name]
                 if f"{part.chapter}/{c.cell_id}" not in decided]
    return rows


def _label(cell: Any) -> str:
    from nrg.reference.run import _cell_label

    return _cell_label(cell)


def _decide(part: str, cell: Any, estimator: Estimator, clock: _Clock, gpu: Gpu | None, why: str = "") -> dict[str, Any]:
    estimate = estimator.estimate(cell).total_s
    weights_gib = estimator.shape(cell).weight_bytes / 2**30
    if gpu is not None and weights_gib > MEMORY_SHARE * gpu.memory_gib:
        return _row(part, _label(cell), "not run: memory", estimate, clock,
                    f"{weights_gib:.1f} GiB of weights > {MEMORY_SHARE:.0%} of {gpu.memory_gib:.0f} GiB")
    if clock.take(estimate):
        return _row(part, _label(cell), "would run", estimate, clock, why)
    return _row(part, _label(cell), "not run: budget", estimate, clock,
                f"{clock.used_s:.0f} s planned + {estimate:.0f} s > {clock.available_s:.0f} s")


def plan_text(result: dict[str, Any]) -> str:
    """The plan as text: the GPU, one line per cell in the order the run would take them, the totals."""
    gpu = result["gpu"]
    head = (f"{gpu['name']}, {gpu['memory_gib']:.0f} GiB, "
            + (f"{gpu['bandwidth_bytes_per_s'] / 1e12:.2f} TB/s" if gpu["bandwidth_bytes_per_s"] else "bandwidth unknown")
            + f" ({gpu['source']})") if gpu else "the CPU"
    lines = [f"plan for nrg reference on {result['device']}: {head}",
             f"budget {result['budget_s']:.0f} s, margin {result['margin_s']:.0f} s; estimator: "
             f"{result['estimator_from']}; nothing is run or written", ""]
    if result.get("chapters"):
        lines[-1:-1] = [f"only the parts of {', '.join(result['chapters'])} (--chapters)"]
    for row in result["rows"]:
        estimate = "" if row["estimate_s"] is None else f"{row['estimate_s']:7.0f} s"
        ends = "" if row["ends_at_s"] is None else f"  (until {row['ends_at_s']:.0f} s)"
        reason = f"  -- {row['reason']}" if row["reason"] else ""
        lines.append(f"  {row['decision']:<17} {estimate:>9}  {row['part']}: {row['name']}{ends}{reason}")
    count = sum(r["decision"] == "would run" for r in result["rows"])
    lines += ["", f"would run {count} items in about {result['would_run_s']:.0f} s; everything that fits in "
                  f"memory would take about {result['everything_s']:.0f} s "
                  f"(a budget of {result['everything_s'] + result['margin_s']:.0f} s)"]
    return "\n".join(lines) + "\n"
