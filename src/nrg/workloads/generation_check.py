"""The generation workload's checks: its models, lengths and tasks against this machine, before any work.

Found through the workload registry (:func:`nrg.workloads.registry.check`),
like every workload's ``check`` hook: known models (listed when unknown),
device and dtype support, model size against free memory, lengths against
each model's context (and, for real-weight models whose tokenizer is on this
machine, against the room each task's prompt template needs), batch x length
against free memory, ``layers`` against each model's depth, override keys
and shapes, ``weights: real`` only where the weights are on this machine
(unless ``allow_download``), and task names and dataset files. Models are
planned on the meta device, so checking a sweep of 7B models costs seconds,
not gigabytes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from nrg.errors import ParameterError
from nrg.sweep.config import NO_TASK, SweepConfig

if TYPE_CHECKING:
    from nrg.models.load import Plan
    from nrg.models.spec import ModelSpec


def check(cfg: SweepConfig) -> None:
    """Raise :class:`ParameterError` on the first problem with the config's tasks or models."""
    _check_tasks(cfg)
    for entry in cfg.models:
        planned = None
        for dtype in cfg.dtypes:
            planned = _check_model(entry, dtype, cfg)
        assert planned is not None
        _check_weights_local(entry, planned, cfg.allow_download)
        _check_lengths(entry, planned, cfg)
        _check_prompt_room(entry, planned, cfg)


def _check_model(entry: ModelSpec, dtype: str, cfg: SweepConfig) -> Plan:
    """Name, device/dtype, shapes and memory; returns what loading the model will do.

    Under ``executor: ray`` the cells run on other machines, so this machine's
    devices and memory are not checked (the executor checks the cluster's
    resources; a cell that does not fit its node is a failed row).
    """
    from nrg.models import build, check_device_support, plan
    from nrg.models.load import sharded_free_bytes

    here = cfg.executor == "local"
    spec = entry.for_cell(dtype, cfg.settings.device, cfg.settings.devices)
    if here:
        check_device_support(spec)
    _check_hub_config(entry.name, cfg.allow_download)
    try:
        p = plan(spec)
    except ParameterError as exc:
        raise ParameterError(f"models[{entry.name}]: {exc}") from None
    except OSError as exc:  # a hub id whose config could not be fetched (no network, no such repo)
        raise ParameterError(f"models[{entry.name}]: its config could not be fetched from the Hugging "
                             f"Face hub ({' '.join(str(exc).split())[:300]}); check the id and the "
                             "network, or use a known model (nrg models) or a local folder") from None
    if p.head not in ("causal-lm", "seq2seq-lm"):
        raise ParameterError(f"models: {entry.name!r} is an encoder-only model ({p.head}) and cannot "
                             "generate; choose a causal or seq2seq model")
    if here:
        free = sharded_free_bytes(spec)
        build.check_fits(spec, p.n_params, free)
        tokens = max(cfg.input_tokens) + max(cfg.output_tokens)
        build.check_workload_fits(spec, p.config, p.n_params, max(cfg.batch_sizes), tokens, free)
    return p


def _check_hub_config(name: str, allow_download: bool) -> None:
    """A hub id must have its config in the local cache unless downloads are allowed.

    Without this, an unknown or offline hub id costs half a minute of network
    retries inside transformers and ends in a raw ``OSError``.
    """
    from nrg.models.registry import resolve

    resolved = resolve(name)
    if resolved.kind != "hub" or allow_download or resolved.hub_id is None:
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(resolved.hub_id, "config.json"), str):
        raise ParameterError(
            f"models: {name!r} is not a known model (nrg models), a local folder, or a hub id in this "
            "machine's Hugging Face cache; with allow_download: true it is fetched from the hub")


def _check_weights_local(entry: ModelSpec, planned: Plan, allow_download: bool) -> None:
    """``weights: real`` must not turn into minutes of hub retries inside a cell.

    Weights that are on this machine but need a missing package to be read
    (the embedded GGUF without ``gguf``) pass: the cell then says so as an
    ``unsupported`` row naming the package.
    """
    from nrg.models import real_available_offline
    from nrg.models.registry import package_folder

    if planned.weights != "real" or allow_download or real_available_offline(planned.resolved):
        return
    info = planned.resolved.info
    if info is not None and info.gguf_file and (folder := package_folder(info)) is not None \
            and (folder / info.gguf_file).is_file():
        return
    raise ParameterError(
        f"models[{entry.name}].weights='real' is not valid here: no weights for {entry.name!r} on this "
        "machine (embedded package, local folder or Hugging Face cache); choose weights: random or "
        "auto, or set allow_download: true to fetch them from the hub")


def _check_lengths(entry: ModelSpec, planned: Plan, cfg: SweepConfig) -> None:
    from nrg.models import build

    limit = build.context_limit(planned.config)
    encoder_decoder = bool(getattr(planned.config, "is_encoder_decoder", False))
    longest_in = max(cfg.input_tokens)
    longest_out = max(cfg.output_tokens)
    if encoder_decoder:
        if longest_in > limit:
            raise ParameterError(f"input_tokens={longest_in} exceeds the context of {entry.name!r} "
                                 f"({limit} tokens)")
        return
    if longest_in + longest_out > limit:
        raise ParameterError(
            f"input_tokens + output_tokens = {longest_in} + {longest_out} exceeds the context of "
            f"{entry.name!r} ({limit} tokens); lower input_tokens or output_tokens")


def _check_prompt_room(entry: ModelSpec, planned: Plan, cfg: SweepConfig) -> None:
    """``input_tokens`` must hold each task's instruction and chat template plus some text.

    Only the items a cell feeds (one per batch row) are checked, exactly as
    :func:`nrg.workloads.generation.task_input_ids` picks them.
    """
    tasks = [t for t in cfg.tasks if t.name != NO_TASK]
    if not tasks:
        return
    from nrg.models.load import local_tokenizer
    from nrg.tasks import get_task

    tokenizer = local_tokenizer(planned)
    if tokenizer is None:
        return
    shortest = min(cfg.input_tokens)
    for t in tasks:
        task = get_task(t.name, t.dataset)
        items = task.items(None, seed=cfg.settings.seed)
        used = [items[b % len(items)] for b in range(max(cfg.batch_sizes))]
        need = max(task.min_input_tokens(item, tokenizer) for item in used)
        if shortest < need:
            raise ParameterError(
                f"input_tokens={shortest} is too small for task {t.name!r} on {entry.name!r}: its "
                f"instruction and prompt template alone take {need - 1} tokens; choose "
                f"input_tokens >= {need}")


def _check_tasks(cfg: SweepConfig) -> None:
    names = [t.name for t in cfg.tasks]
    if all(n == NO_TASK for n in names):
        return
    from nrg.tasks import TASKS, get_task

    for entry in cfg.tasks:
        if entry.name == NO_TASK:
            continue
        if entry.name not in TASKS:
            raise ParameterError(f"tasks={entry.name!r} is not valid; choose one of: "
                                 + ", ".join(repr(t) for t in (*TASKS, NO_TASK)))
        task = get_task(entry.name, entry.dataset)
        try:
            task.items(None, seed=cfg.settings.seed)  # reads (and checks) the dataset file
        except ParameterError:
            raise
        except (ValueError, OSError, KeyError, TypeError) as exc:  # malformed JSON/CSV, missing field
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            raise ParameterError(f"tasks[{entry.name}].dataset={entry.dataset!r} is not valid: {detail}") from None
