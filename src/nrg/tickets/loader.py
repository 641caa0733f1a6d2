"""Tickets of your own from a CSV or JSONL file, checked before anything is trained.

Kept apart from the generator: a reader bringing real tickets needs only this
module, and its errors name the file, the row and the column.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nrg.errors import ParameterError
from nrg.tickets.generator import Ticket


def _read_csv(path: Path, name: str) -> tuple[list[dict[str, Any]], list[str]]:
    import csv

    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader, [])
            rows = []
            for values in reader:
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    raise ParameterError(
                        f"{name}={str(path)!r} is not valid: line {reader.line_num} has {len(values)} "
                        f"field(s), the header has {len(header)} ({', '.join(header)})")
                rows.append(dict(zip(header, values, strict=True)))
        except csv.Error as exc:
            raise ParameterError(f"{name}={str(path)!r} is not valid CSV: line {reader.line_num}: "
                                 f"{exc}") from None
    return rows, list(header)


def _read_jsonl(path: Path, name: str) -> tuple[list[dict[str, Any]], list[str]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ParameterError(f"{name}={str(path)!r} is not valid JSON Lines: line {number}, "
                                 f"column {exc.colno}: {exc.msg}") from None
        if not isinstance(row, dict):
            raise ParameterError(f"{name}={str(path)!r} is not valid: line {number} is a "
                                 f"{type(row).__name__}, each line must be one JSON object")
        rows.append(row)
    return rows, sorted({key for row in rows for key in row})


def _read_rows(path: Path, name: str) -> tuple[list[dict[str, Any]], list[str]]:
    try:
        if path.suffix.lower() == ".csv":
            return _read_csv(path, name)
        return _read_jsonl(path, name)
    except UnicodeDecodeError as exc:
        raise ParameterError(f"{name}={str(path)!r} is not valid: not UTF-8 text (byte {exc.start}: "
                             f"{exc.reason})") from None
    except OSError as exc:
        raise ParameterError(f"{name}={str(path)!r} cannot be read: {exc.strerror or exc}") from None


def load_tickets(path: str | Path, text_column: str = "text", label_column: str = "label",
                 response_column: str | None = "response", name: str = "tickets_path") -> list[Ticket]:
    """Tickets from a CSV or JSONL file of your own; ``response_column=None`` when there is none.

    A file that does not parse, a missing column, or a column with an empty
    value is a :class:`ParameterError` naming the parameter (``name``), the
    file, the line or row and the column, raised before anything is trained.
    """
    if not isinstance(path, (str, Path)):
        raise ParameterError(f"{name}={path!r} is not valid; give the path of a .csv or .jsonl file")
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".jsonl", ".json"):
        raise ParameterError(f"{name}={str(path)!r} is not valid; use a .csv or .jsonl file")
    if not path.is_file():
        raise ParameterError(f"{name}={str(path)!r} does not exist")
    rows, columns = _read_rows(path, name)
    wanted = {"text_column": text_column, "label_column": label_column}
    if response_column is not None:
        wanted["response_column"] = response_column
    missing = [f"{param}={name!r}" for param, name in wanted.items() if name not in columns]
    if missing or not rows:
        why = f"missing column(s) {', '.join(missing)}" if missing else "no rows"
        raise ParameterError(f"{name}: {path}: {why}; columns present: {columns}")
    tickets = []
    for i, row in enumerate(rows):
        values = {name: str(row.get(name) or "").strip() for name in wanted.values()}
        empty = [name for name, value in values.items() if not value]
        if empty:
            raise ParameterError(f"{name}: {path}: row {i + 1} has an empty value in column(s) {empty}")
        tickets.append(Ticket(str(row.get("ticket_id") or f"row-{i + 1}"), values[text_column],
                              values[label_column], values.get(response_column or "", ""),
                              {k: str(v) for k, v in row.items()}))
    return tickets
