"""A tiny OpenAI-compatible server standing in for a serving engine where the real one is not needed.

In process (:func:`serve`, a ``ThreadingHTTPServer`` on a free loopback port) or as
a process (``python -m fakes.openai_server --port P --model NAME``, the engine's
command line shape: unknown arguments are ignored), it answers ``/health``,
``/v1/models``, ``/version``, ``/metrics`` (``vllm:num_requests_running`` and
``vllm:kv_cache_usage_perc``) and streamed ``/v1/completions``: ``max_tokens``
chunks, one every ``token_s`` seconds, then a usage chunk and ``[DONE]``.
``--die-after N`` exits the process (status 7) when the N-th request starts: an
engine crashing mid-run. ``FAKE_PID_DIR``: write ``<pid>.pid`` (holding the port) there.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class State:
    def __init__(self, model: str, token_s: float, die_after: int | None, start_delay_s: float) -> None:
        self.model, self.token_s, self.die_after = model, token_s, die_after
        self.ready_at = time.monotonic() + start_delay_s
        self.running = 0
        self.seen = 0
        self.lock = threading.Lock()


def handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if time.monotonic() < state.ready_at:
                self._send(503, b"starting")
            elif self.path == "/health":
                self._send(200, b"")
            elif self.path == "/v1/models":
                self._send(200, json.dumps({"data": [{"id": state.model}]}).encode())
            elif self.path == "/version":
                self._send(200, b'{"version": "0.0-fake"}')
            elif self.path == "/metrics":
                text = (f"# HELP x\nvllm:num_requests_running{{model_name=\"{state.model}\"}} {state.running}\n"
                        f"vllm:kv_cache_usage_perc{{model_name=\"{state.model}\"}} {0.01 * state.running}\n")
                self._send(200, text.encode(), "text/plain")
            else:
                self._send(404, b"{}")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if self.path != "/v1/completions" or body.get("model") != state.model:
                self._send(404, b'{"error": "no such model or path"}')
                return
            with state.lock:
                state.seen += 1
                if state.die_after is not None and state.seen >= state.die_after:
                    os._exit(7)
                state.running += 1
            try:
                self._stream(int(body.get("max_tokens", 16)), str(body.get("prompt", "")))
            finally:
                with state.lock:
                    state.running -= 1

        def _stream(self, n: int, prompt: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def chunk(obj: Any) -> None:
                data = f"data: {obj}\n\n".encode() if isinstance(obj, str) else \
                    f"data: {json.dumps(obj)}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            for i in range(n):
                time.sleep(state.token_s)
                chunk({"choices": [{"index": 0, "text": f" {i}" if i else " 42",
                                    "finish_reason": "length" if i == n - 1 else None}]})
            chunk({"choices": [], "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": n}})
            chunk("[DONE]")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler


def serve(model: str = "fake-model", token_s: float = 0.002, port: int = 0, die_after: int | None = None,
          start_delay_s: float = 0.0) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; ``server.server_address[1]`` is the port. Call ``shutdown()``."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler(State(model, token_s, die_after, start_delay_s)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--served-model-name", default="fake-model")
    parser.add_argument("--token-s", type=float, default=float(os.environ.get("FAKE_TOKEN_S", "0.002")))
    parser.add_argument("--die-after", type=int, default=None)
    parser.add_argument("--start-delay-s", type=float, default=float(os.environ.get("FAKE_START_DELAY_S", "0")))
    ns, _ = parser.parse_known_args()
    die = ns.die_after if ns.die_after is not None else (int(os.environ["FAKE_DIE_AFTER"])
                                                         if os.environ.get("FAKE_DIE_AFTER") else None)
    if os.environ.get("FAKE_PID_DIR"):   # so a test can check no server is left behind
        with open(os.path.join(os.environ["FAKE_PID_DIR"], f"{os.getpid()}.pid"), "w") as f:
            f.write(str(ns.port))
    if os.environ.get("FAKE_EXIT_AT_START"):
        raise SystemExit(int(os.environ["FAKE_EXIT_AT_START"]))
    server = serve(ns.served_model_name, ns.token_s, ns.port, die, ns.start_delay_s)
    try:
        while True:
            time.sleep(3600)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
