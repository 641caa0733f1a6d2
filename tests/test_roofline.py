"""nrg.sweep.roofline: datasheet table, CPU peaks from a fake /proc, bounds by hand, model shapes."""
from __future__ import annotations

import math

import pytest

from nrg.sweep import roofline
from nrg.sweep.roofline import ModelShape, Peaks


@pytest.mark.parametrize("device_name, entry", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200"),
    ("NVIDIA A100-SXM4-40GB", "A100 40GB"),
    ("NVIDIA A100-SXM4-80GB", "A100 80GB SXM"),
    ("NVIDIA A100 80GB PCIe", "A100 80GB PCIe"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA A10G", "A10G"),
    ("NVIDIA A10", "A10"),
    ("Tesla V100-SXM2-16GB", "V100 SXM2"),
    ("Tesla V100-PCIE-32GB", "V100 PCIe"),
    ("NVIDIA GeForce RTX 4090", "RTX 4090"),
])
def test_gpu_names_find_their_datasheet_entry(device_name, entry):
    found = roofline.gpu_peak(device_name)
    assert found is not None and found.name == entry
    assert found.source.startswith("https://")


def test_unknown_gpu_and_missing_dtype_give_no_peaks():
    assert roofline.gpu_peak("NVIDIA L40S") is None       # 'l4' must not match L40S
    assert roofline.cuda_peaks("Some Future GPU", "float16") is None
    assert roofline.cuda_peaks("Tesla V100-SXM2-16GB", "bfloat16") is None   # no bf16 units


def test_half_precision_peak_exceeds_fp32_on_every_gpu():
    for entry in roofline.GPU_PEAKS:
        assert entry.flops["float16"] > entry.flops["float32"] > 0
        assert entry.mem_bandwidth_bytes_per_s > 1e11


def _fake_proc(tmp_path, flags: str, mhz: tuple[float, ...], max_khz: int | None = None):
    proc = tmp_path / "proc"
    proc.mkdir()
    blocks = [f"processor\t: {i}\nmodel name\t: Fake CPU\ncpu MHz\t\t: {m}\nflags\t\t: {flags}\n"
              for i, m in enumerate(mhz)]
    (proc / "cpuinfo").write_text("\n".join(blocks))
    if max_khz is not None:
        freq = tmp_path / "sys/devices/system/cpu/cpu0/cpufreq"
        freq.mkdir(parents=True)
        (freq / "cpuinfo_max_freq").write_text(f"{max_khz}\n")
    return tmp_path


def test_cpu_peak_is_cores_times_flop_per_cycle_times_clock(tmp_path):
    root = _fake_proc(tmp_path, "fpu sse2 avx fma avx2", (2000.0, 3000.0))
    peaks = roofline.cpu_peaks(20e9, "float32", cores=4, root=root)
    assert peaks.compute_flops == pytest.approx(4 * 32 * 3.0e9)
    assert peaks.mem_bandwidth_bytes_per_s == 20e9
    assert "computed" in peaks.source and "measured" in peaks.source


def test_cpu_clock_prefers_cpufreq_max(tmp_path):
    root = _fake_proc(tmp_path, "avx512f avx2 fma amx_bf16", (1000.0,), max_khz=3_500_000)
    assert roofline.cpu_max_clock_hz(root) == pytest.approx(3.5e9)
    assert roofline.cpu_peaks(1e10, "bfloat16", 1, root).compute_flops == pytest.approx(1024 * 3.5e9)
    assert roofline.cpu_peaks(1e10, "float32", 1, root).compute_flops == pytest.approx(64 * 3.5e9)


def test_bounds_by_hand():
    shape = ModelShape(matmul_params=1_000, weight_bytes=4_000, kv_bytes_per_token=10)
    peaks = Peaks(mem_bandwidth_bytes_per_s=1_000.0, compute_flops=10_000.0, source="test")
    # prefill, batch 2 x 5 tokens: compute 2*1000*10/1e4 = 2.0 s; memory (4000 + 10*10)/1000 = 4.1 s
    assert roofline.prefill_bound_s(shape, peaks, 2, 5) == pytest.approx(4.1)
    # decode, 3 output tokens -> 2 steps reading KV of 2*(5+1) and 2*(5+2) tokens
    expected = (4000 + 10 * 12) / 1000 + (4000 + 10 * 14) / 1000
    assert roofline.decode_bound_s(shape, peaks, 2, 5, 3) == pytest.approx(expected)
    b = roofline.bounds_s(shape, peaks, 2, 5, 3)
    assert b["generate"] == pytest.approx(b["prefill"] + b["decode"])
    assert roofline.decode_bound_s(shape, peaks, 2, 5, 1) == 0


def test_compute_bound_prefill_and_encoder_decoder():
    peaks = Peaks(1e12, 1e3, "test")                      # compute is the limit
    shape = ModelShape(matmul_params=100, weight_bytes=0, kv_bytes_per_token=0)
    assert roofline.prefill_bound_s(shape, peaks, 1, 8) == pytest.approx(2 * 100 * 8 / 1e3)
    encdec = ModelShape(matmul_params=100, weight_bytes=0, kv_bytes_per_token=0, encoder_params=60)
    # encoder over 8 tokens, decoder over one token
    assert roofline.prefill_bound_s(encdec, peaks, 1, 8) == pytest.approx(2 * (60 * 8 + 40) / 1e3)


def test_fraction():
    assert roofline.fraction(1.0, 4.0) == 0.25
    assert math.isnan(roofline.fraction(1.0, 0.0))
    assert math.isnan(roofline.fraction(float("nan"), 1.0))


def test_model_shape_of_tied_and_untied_models():
    import transformers

    cfg = transformers.LlamaConfig(vocab_size=100, hidden_size=16, intermediate_size=32,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   tie_word_embeddings=False)
    untied = transformers.LlamaForCausalLM(cfg)
    n = sum(p.numel() for p in untied.parameters())
    shape = roofline.model_shape(untied)
    assert shape.matmul_params == n - 100 * 16           # input embedding rows are looked up
    assert shape.weight_bytes == 4 * (n - 100 * 16)
    assert shape.kv_bytes_per_token == 2 * 2 * 2 * 4 * 4  # K,V x layers x kv heads x head_dim x fp32
    cfg.tie_word_embeddings = True
    tied = transformers.LlamaForCausalLM(cfg)
    n_tied = sum(p.numel() for p in tied.parameters())
    assert roofline.model_shape(tied).matmul_params == n_tied   # shared table is the lm head
