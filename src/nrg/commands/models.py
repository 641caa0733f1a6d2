"""``nrg models``: the known models, what weights load offline, size and context."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def model_rows() -> list[dict[str, Any]]:
    """One row per known model; parameter counts come from the config on the meta device."""
    from nrg.models import ModelSpec, known_models, plan, real_available_offline, resolve
    from nrg.models.build import context_limit
    rows = []
    for name, info in known_models().items():
        p = plan(ModelSpec(name, weights="random"))
        offline = "real" if real_available_offline(resolve(name)) else "random"
        rows.append({"name": name, "class": info.model_class, "hub_id": info.hub_id,
                     "offline_weights": offline, "n_params": p.n_params,
                     "context_tokens": context_limit(p.config), "note": info.note})
    return rows


def _format_table(rows: list[dict[str, Any]]) -> str:
    columns = ("name", "class", "offline_weights", "n_params", "context_tokens", "hub_id")
    cells = [[f"{r[c] / 1e6:,.1f}M" if c == "n_params" else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def run(ns: argparse.Namespace) -> int:
    """Print the known models as a table (or JSON with ``--json``); exit status 0.

    A line on stderr first: importing transformers and reading every config
    takes about 10 s, which looked like a hang (stdout stays clean for ``--json``).
    """
    print("nrg models: loading transformers and reading each model's config (about 10 s) ...",
          file=sys.stderr, flush=True)
    rows = model_rows()
    print(json.dumps(rows, indent=2) if ns.json else _format_table(rows))
    return 0


def add_command(subparsers: Any) -> None:
    """Register ``nrg models`` on the CLI's subparsers."""
    parser = subparsers.add_parser(
        "models", help="list known models",
        description="List known models: class, weights loadable offline (real or random), "
                    "parameter count and context length. Any hub id or local folder also works "
                    "as a model name.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)
