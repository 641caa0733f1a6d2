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


def _read_rows(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    if path.suffix.lower() == ".csv":
        import pandas as pd

        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        return frame.to_dict("records"), list(frame.columns)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    columns = sorted({key for row in rows for key in row})
    return rows, columns


def load_tickets(path: str | Path, text_column: str = "text", label_column: str = "label",
                 response_column: str | None = "response") -> list[Ticket]:
    """Tickets from a CSV or JSONL file of your own; ``response_column=None`` when there is none.

    A missing column, or a column with an empty value, is a :class:`ParameterError`
    naming the column and the file, raised before anything is trained.
    """
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".jsonl", ".json"):
        raise ParameterError(f"path={str(path)!r} is not valid; use a .csv or .jsonl file")
    if not path.is_file():
        raise ParameterError(f"path={str(path)!r} does not exist")
    rows, columns = _read_rows(path)
    wanted = {"text_column": text_column, "label_column": label_column}
    if response_column is not None:
        wanted["response_column"] = response_column
    missing = [f"{param}={name!r}" for param, name in wanted.items() if name not in columns]
    if missing or not rows:
        why = f"missing column(s) {', '.join(missing)}" if missing else "no rows"
        raise ParameterError(f"{path}: {why}; columns present: {columns}")
    tickets = []
    for i, row in enumerate(rows):
        values = {name: str(row.get(name) or "").strip() for name in wanted.values()}
        empty = [name for name, value in values.items() if not value]
        if empty:
            raise ParameterError(f"{path}: row {i + 1} has an empty value in column(s) {empty}")
        tickets.append(Ticket(str(row.get("ticket_id") or f"row-{i + 1}"), values[text_column],
                              values[label_column], values.get(response_column or "", ""),
                              {k: str(v) for k, v in row.items()}))
    return tickets
