"""Serving under load: a real engine behind an OpenAI-compatible API (chapter 6).

* :mod:`nrg.serving.sse` -- server-sent events, as the streaming API sends them;
* :mod:`nrg.serving.client` -- one streamed completion over the standard library's
  ``http.client``: the send time, the first token's time and every later token's;
* :mod:`nrg.serving.trace` -- a request trace (fixed concurrency or Poisson arrivals) and its run;
* :mod:`nrg.serving.window` -- the steady-state window and latency percentiles;
* :mod:`nrg.serving.prom` -- the engine's Prometheus ``/metrics`` (achieved batch, KV-cache use);
* :mod:`nrg.serving.engine` -- the engine's lifecycle: free loopback port, health, stop on every exit;
* :mod:`nrg.serving.options` -- the ``serving:`` section of a sweep config;
* :mod:`nrg.serving.workload` -- ``workload: serving`` of :mod:`nrg.sweep`.
"""
from __future__ import annotations
