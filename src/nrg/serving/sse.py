"""Server-sent events: the ``data:`` lines an OpenAI-compatible server streams.

Why our own parser: the standard library has none, and the format is small
(https://html.spec.whatwg.org/multipage/server-sent-events.html): lines
``field: value``, an empty line ends an event, ``data`` lines of one event are
joined with newlines, lines starting with ``:`` are comments. OpenAI's API ends
the stream with ``data: [DONE]``.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

DONE = "[DONE]"


def events(lines: Iterable[bytes | str]) -> Iterator[str]:
    """The data of each event in ``lines`` (bytes or text, with or without line endings)."""
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        line = line.rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:   # a stream cut without its final empty line still delivers its last event
        yield "\n".join(data)


def chunks(lines: Iterable[bytes | str]) -> Iterator[dict[str, Any]]:
    """The JSON objects of a completion stream, up to ``[DONE]``; an error object raises."""
    for data in events(lines):
        if data.strip() == DONE:
            return
        obj = json.loads(data)
        if isinstance(obj, dict) and "error" in obj and "choices" not in obj:
            raise StreamError(f"the server sent an error in the stream: {obj['error']}")
        yield obj


class StreamError(RuntimeError):
    """The server reported an error inside the stream."""


def chunk_text(obj: dict[str, Any]) -> str:
    """The text a completion or chat-completion chunk adds (empty for a usage-only chunk)."""
    out = []
    for choice in obj.get("choices") or ():
        if "text" in choice:
            out.append(choice.get("text") or "")
        else:
            out.append((choice.get("delta") or {}).get("content") or "")
    return "".join(out)
