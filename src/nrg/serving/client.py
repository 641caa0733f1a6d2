"""One streamed completion over ``http.client``: when it was sent, when each token came.

Why the standard library: the client's own cost falls inside the measured
window, so it stays small (``benchmarks/bench_serving.py`` compares it with a
bare client), and nrg needs no HTTP package. Times are ``time.perf_counter()``
seconds, the clock the trace runner and the steady-state window use.
"""
from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nrg.serving.sse import chunk_text, chunks

REQUEST_TIMEOUT_S = 600.0


@dataclass
class RequestResult:
    """One request of a trace: its times (perf_counter s), text and token counts."""

    index: int
    sent_s: float
    token_times_s: list[float] = field(default_factory=list)   # arrival of each chunk with text
    end_s: float = float("nan")
    text: str = ""
    completion_tokens: int | None = None    # the server's usage count, when it sends one
    prompt_tokens: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Finished with at least one token and no error."""
        return self.error is None and bool(self.token_times_s)

    @property
    def ttft_s(self) -> float:
        """Time to first token, from the send."""
        return self.token_times_s[0] - self.sent_s if self.token_times_s else float("nan")

    @property
    def tokens(self) -> int:
        """Tokens produced: the server's count, else the chunks with text."""
        return self.completion_tokens if self.completion_tokens is not None else len(self.token_times_s)


def split_url(base_url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path prefix) of an ``http(s)://host[:port][/prefix]`` URL."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{base_url!r} is not an http(s)://host[:port] URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


class Client:
    """Requests to one server; one keep-alive connection per thread that calls :meth:`stream`."""

    def __init__(self, base_url: str, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.base_url = base_url
        self.scheme, self.host, self.port, self.prefix = split_url(base_url)
        self.timeout_s = timeout_s

    def connection(self, timeout_s: float | None = None) -> http.client.HTTPConnection:
        """A new connection to the server."""
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout_s if timeout_s is None else timeout_s)

    def get(self, path: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
        """Status and body of ``GET prefix + path`` (raises OSError when unreachable)."""
        conn = self.connection(timeout_s)
        try:
            conn.request("GET", self.prefix + path)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def models(self, timeout_s: float = 5.0) -> list[str]:
        """Model ids the server serves (``GET /v1/models``)."""
        status, body = self.get("/v1/models", timeout_s)
        if status != 200:
            raise OSError(f"GET /v1/models answered {status}")
        return [str(m.get("id")) for m in json.loads(body).get("data", [])]

    def stream(self, conn: http.client.HTTPConnection, index: int, body: Mapping[str, Any],
               path: str = "/v1/completions", on_first_token: Callable[[], None] | None = None) -> RequestResult:
        """Send one streamed request on ``conn``; an HTTP or stream error is kept in ``error``.

        ``on_first_token`` is called (in this thread) when the first token arrives.
        """
        payload = json.dumps({**body, "stream": True}).encode()
        result = RequestResult(index=index, sent_s=time.perf_counter())
        try:
            conn.request("POST", self.prefix + path, body=payload,
                         headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
            resp = conn.getresponse()
            if resp.status != 200:
                result.error = f"HTTP {resp.status}: {resp.read()[:300]!r}"
                return result
            parts: list[str] = []
            for obj in chunks(resp):
                text = chunk_text(obj)
                if text or _has_token(obj):
                    result.token_times_s.append(time.perf_counter())
                    parts.append(text)
                    if on_first_token is not None and len(result.token_times_s) == 1:
                        on_first_token()
                usage = obj.get("usage")
                if usage:
                    result.completion_tokens = usage.get("completion_tokens")
                    result.prompt_tokens = usage.get("prompt_tokens")
            resp.read()   # the rest after [DONE] (chunked trailer): the connection is reused
            result.text = "".join(parts)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            conn.close()
        finally:
            result.end_s = time.perf_counter()
        return result


def _has_token(obj: Mapping[str, Any]) -> bool:
    """A chunk with a choice but empty text still carries a token (e.g. one that detokenizes later)."""
    for choice in obj.get("choices") or ():
        if choice.get("finish_reason") is None and ("text" in choice or "delta" in choice):
            return True
    return False
