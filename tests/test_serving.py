"""The serving workload's parts without an engine: SSE, traces, the steady-state window, /metrics.

A tiny OpenAI-compatible server (:mod:`fakes.openai_server`) stands in for the engine
where a server is needed; the engine itself is tested in ``test_serving_engine.py``.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from fakes.openai_server import serve
from nrg.errors import ParameterError
from nrg.serving import prom, sse, trace
from nrg.serving.client import Client, RequestResult, split_url
from nrg.serving.options import ServingOptions, parse_options
from nrg.serving.window import Window, in_flight, latency, steady_window, tokens_in

# ---------------------------------------------------------------- SSE


def test_sse_events_join_data_lines_skip_comments_and_keep_a_cut_last_event() -> None:
    lines = [b": keep-alive\r\n", b"data: a\r\n", b"data: b\r\n", b"\r\n", b"event: x\n", b"data:c\n", b"\n",
             b"data: last"]
    assert list(sse.events(lines)) == ["a\nb", "c", "last"]


def test_sse_chunks_stop_at_done_and_raise_on_an_error_object() -> None:
    lines = ['data: {"choices": [{"text": "hi"}]}', "", "data: [DONE]", "", 'data: {"choices": []}', ""]
    assert [sse.chunk_text(c) for c in sse.chunks(lines)] == ["hi"]
    with pytest.raises(sse.StreamError, match="overloaded"):
        list(sse.chunks(['data: {"error": {"message": "overloaded"}}', ""]))


def test_chunk_text_reads_completion_and_chat_chunks() -> None:
    assert sse.chunk_text({"choices": [{"text": "a"}, {"text": None}]}) == "a"
    assert sse.chunk_text({"choices": [{"delta": {"content": "b"}}]}) == "b"
    assert sse.chunk_text({"choices": [], "usage": {"completion_tokens": 3}}) == ""


def test_split_url_refuses_what_is_not_http() -> None:
    assert split_url("http://127.0.0.1:8000/x/") == ("http", "127.0.0.1", 8000, "/x")
    for bad in ("ftp://h:1", "127.0.0.1:8000", "http://"):
        with pytest.raises(ValueError, match="URL"):
            split_url(bad)


# ---------------------------------------------------------------- traces


def test_closed_trace_cycles_prompts_and_saturates_at_its_concurrency() -> None:
    t = trace.build(["p", "q"], 5, {"max_tokens": 2}, concurrency=3)
    assert [b["prompt"] for b in t.bodies] == ["p", "q", "p", "q", "p"]
    assert t.offsets_s is None and t.saturation_index == 3
    assert trace.build(["p"], 2, {}, concurrency=8).saturation_index == 2


def test_poisson_offsets_are_seeded_and_their_rate_is_the_asked_one() -> None:
    a = trace.build(["p"], 2000, {}, 4, trace.POISSON, rate_rps=5.0, seed=3)
    b = trace.build(["p"], 2000, {}, 4, trace.POISSON, rate_rps=5.0, seed=3)
    assert a.offsets_s == b.offsets_s and a.offsets_s is not None
    gaps = [y - x for x, y in zip(a.offsets_s, a.offsets_s[1:], strict=False)]
    assert sum(gaps) / len(gaps) == pytest.approx(0.2, rel=0.1)
    assert a.saturation_index == 200
    with pytest.raises(ValueError, match="rate"):
        trace.build(["p"], 3, {}, 1, trace.POISSON, rate_rps=0)


# ---------------------------------------------------------------- windows


def _req(i: int, sent: float, end: float, n: int = 4) -> RequestResult:
    step = (end - sent) / n
    return RequestResult(index=i, sent_s=sent, token_times_s=[sent + step * (k + 1) for k in range(n)], end_s=end)


def test_steady_window_runs_from_the_full_batchs_first_tokens_to_the_first_end_after_the_last_send() -> None:
    # concurrency 2, closed loop: 0 and 1 start together, 2 starts when 0 ends, 3 when 1 ends
    reqs = [_req(0, 0.0, 4.0), _req(1, 0.1, 5.0), _req(2, 4.0, 8.0), _req(3, 5.0, 9.5)]
    w = steady_window(reqs, 2)
    assert (w.start_s, w.end_s) == (reqs[1].token_times_s[0], 8.0)   # request 1's first token: both have one
    assert all(in_flight(reqs, t) == 2 for t in (0.5, 3.9, 4.5, 7.9))
    assert tokens_in(reqs, Window(0.0, 100.0)) == 16
    assert tokens_in(reqs, w) == 13   # request 0's first token came before; 3's last two in the drain
    assert steady_window([], 4).duration_s == 0.0 or math.isnan(steady_window([], 4).start_s)


def test_latency_percentiles_count_requests_sent_and_gaps_ending_in_the_window() -> None:
    reqs = [_req(0, 0.0, 4.0), _req(1, 0.0, 8.0)]
    whole = latency(reqs)
    assert whole["ttft_p50_s"] == pytest.approx(1.5) and whole["ttft_s"] == pytest.approx(1.5)
    assert whole["itl_p50_s"] == pytest.approx(1.5) and whole["itl_p99_s"] == pytest.approx(2.0, rel=0.02)
    late = latency(reqs, Window(5.0, 9.0))
    assert math.isnan(late["ttft_p50_s"]) and late["itl_p90_s"] == pytest.approx(2.0)


# ---------------------------------------------------------------- /metrics


METRICS = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:request_success_total{finished_reason="length"} 12
garbage line
vllm:num_requests_waiting NaN
"""


def test_prometheus_text_is_summed_over_labels_and_mapped_to_columns() -> None:
    parsed = prom.parse(METRICS)
    assert parsed["vllm:num_requests_running"] == 5.0 and "vllm:num_requests_waiting" not in parsed
    assert prom.gauges(parsed) == {"batch_mean": 5.0, "kv_cache_usage_mean": 0.25}
    assert prom.gauges(prom.parse("vllm:gpu_cache_usage_perc 0.5")) == {"kv_cache_usage_mean": 0.5}
    samples = [(1.0, {"batch_mean": 2.0}), (2.0, {"batch_mean": 4.0}), (9.0, {"batch_mean": 100.0})]
    means = prom.mean_in(samples, Window(0.0, 3.0))
    assert means["batch_mean"] == 3.0 and math.isnan(means["kv_cache_usage_mean"])


# ---------------------------------------------------------------- options


def test_options_refuse_bad_values_before_any_work() -> None:
    assert parse_options({"serving": {"concurrency": [1, 4]}})["concurrency"] == [1, 4]
    cases = [({"concurrency": [0]}, "concurrency"), ({"concurrency": []}, "concurrency"),
             ({"arrival": "burst"}, "arrival"), ({"rate_rps": 2.0}, "rate_rps"),
             ({"arrival": "poisson"}, "rate_rps"), ({"engine": "tgi"}, "engine"),
             ({"engine_python": "/x", "base_url": "http://h:1"}, "exclude"), ({"bogus": 1}, "serving.key"),
             ({"engine_args": "--x"}, "engine_args"), ({"start_timeout_s": float("inf")}, "start_timeout_s")]
    for section, word in cases:
        with pytest.raises(ParameterError, match=word):
            parse_options({"serving": section})
    assert ServingOptions(concurrency=(2,)).requests(2) == 8 and ServingOptions().requests(16) == 64


# ---------------------------------------------------------------- a run against a fake server


@pytest.fixture(scope="module")
def fake() -> Iterator[Client]:
    server = serve("fake-model", token_s=0.01)
    yield Client(f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()


def test_a_closed_loop_run_streams_every_token_and_holds_its_concurrency(fake: Client) -> None:
    marks: list[str] = []
    t = trace.build(["one two", "three"], 12, {"model": "fake-model", "max_tokens": 6}, concurrency=3)
    ran = trace.run(fake, t, trace.Hooks(lambda: marks.append("saturated"), lambda: marks.append("draining")))
    assert marks == ["saturated", "draining"]
    assert [r.index for r in ran.results] == list(range(12))
    assert all(r.ok and r.tokens == 6 and len(r.token_times_s) == 6 and r.text.startswith(" 42")
               for r in ran.results)
    assert ran.start_s < ran.saturated_s < ran.draining_s < ran.end_s
    w = steady_window(ran.results, 3)   # the clients' own view agrees with the runner's hooks
    assert abs(w.start_s - ran.saturated_s) < 0.5 and abs(w.end_s - ran.draining_s) < 0.5   # (a loaded machine)
    points = [w.start_s + (w.end_s - w.start_s) * (k + 0.5) / 50 for k in range(50)]
    assert sum(in_flight(ran.results, t) == 3 for t in points) >= 40   # full but for the gaps between requests


def test_metrics_sampler_sees_the_fake_engines_batch(fake: Client) -> None:
    t = trace.build(["p"], 8, {"model": "fake-model", "max_tokens": 30}, concurrency=4)
    with prom.Sampler(fake, interval_s=0.02) as sampler:
        ran = trace.run(fake, t)
    means = sampler.means(Window(ran.saturated_s, ran.draining_s))
    assert 1.5 <= means["batch_mean"] <= 4.0 and means["kv_cache_usage_mean"] > 0


def test_a_refused_request_is_kept_as_an_error_not_raised(fake: Client) -> None:
    ran = trace.run(fake, trace.build(["p"], 2, {"model": "other", "max_tokens": 2}, concurrency=1))
    assert [r.ok for r in ran.results] == [False, False] and "HTTP 404" in str(ran.results[0].error)
    assert fake.models() == ["fake-model"]


# ---------------------------------------------------------------- meters over the engine's processes


@pytest.mark.process
def test_the_cpu_estimate_covers_the_engines_grandchildren() -> None:
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import time

    from nrg.meters.estimate import EstimateSource
    from nrg.serving.meter import EngineTreeCpu, descendants

    spin = "import time\nwhile time.process_time() < 0.6: pass\ntime.sleep(30)"   # 0.6 s of CPU, then idle
    parent = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys, time; "
                               f"subprocess.Popen([sys.executable, '-c', {spin!r}]); time.sleep(30)"])
    kids: list[int] = []
    try:
        deadline = time.monotonic() + 20
        while not descendants(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        kids = descendants(parent.pid)
        assert len(kids) == 1                        # the grandchild the plain estimate does not see
        source = EngineTreeCpu(EstimateSource(power_per_core_w=10.0), parent.pid)
        first = source.tree_cpu_s()
        deadline = time.monotonic() + 30              # however loaded the machine is
        while source.tree_cpu_s() - first < 0.3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert source.tree_cpu_s() - first >= 0.3     # the grandchild's spinning, counted
        assert source.read_j()["cpu"] >= source.tree_cpu_s() * 10.0
    finally:
        for pid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def test_a_poisson_run_sends_at_its_offsets_and_opens_the_window_after_a_tenth(fake: Client) -> None:
    marks: list[str] = []
    t = trace.build(["p"], 20, {"model": "fake-model", "max_tokens": 3}, concurrency=8,
                    arrival=trace.POISSON, rate_rps=40.0, seed=1)
    ran = trace.run(fake, t, trace.Hooks(lambda: marks.append("saturated"), lambda: marks.append("draining")))
    assert marks == ["saturated", "draining"] and all(r.ok for r in ran.results)
    assert t.offsets_s is not None
    sends = [r.sent_s - ran.start_s for r in ran.results]
    assert all(s >= o - 0.01 for s, o in zip(sends, t.offsets_s, strict=True))   # never early
    assert ran.saturated_s >= ran.results[1].sent_s - 0.01          # a tenth of 20: the 2nd send
    assert ran.draining_s >= ran.results[-1].sent_s
