"""The Ray executor's decisions that need no cluster: resources per cell, keys, flags, missing Ray."""
from __future__ import annotations

import sys

import pytest

from nrg.errors import ParameterError
from nrg.sweep.config import parse_config
from nrg.sweep.run import run_sweep
from nrg.sweep.schedule import executors, node
from nrg.sweep.schedule.executors import Resources, cell_resources, plan_resources

TINY = {"name": "gpt2", "weights": "random", "tiny": True}


def _cell(**raw):
    return parse_config({"models": [TINY], **raw}).cells()[0]


@pytest.mark.parametrize("raw, expected", [
    ({}, Resources(1, 0)),
    ({"device": "cuda"}, Resources(1, 1)),
    ({"device": "cuda:0"}, Resources(1, 1)),
    ({"devices": [0, 1]}, Resources(1, 2)),
    ({"device": "auto"}, Resources(1, 4)),                         # every GPU of the largest node
    ({"gpu_clock_mhz": [1410]}, Resources(1, 1)),                  # a CPU cell that locks a clock
    ({"gpu_clock_mhz": [None]}, Resources(1, 0)),                  # None leaves the GPU alone
    ({"device": "cuda", "power_limit_w": [200]}, Resources(1, 1)),
    ({"cpu_max_freq_khz": [2_000_000]}, Resources(8, 0)),          # a whole node
])
def test_cell_resources(raw, expected):
    assert cell_resources(_cell(**raw), node_cpus=8, node_gpus=4) == expected


def test_gpus_are_whole_and_a_cell_fits_one_node():
    needs = plan_resources([_cell(devices=[0, 1])], [{"CPU": 4, "GPU": 1}, {"CPU": 2, "GPU": 2}])
    assert list(needs.values()) == [Resources(1, 2)]
    assert all(isinstance(r.num_gpus, int) for r in needs.values())
    with pytest.raises(ParameterError, match=r"needs 1 CPU and 2 GPU on one node.*1 GPU; 1 CPU, 1 GPU"):
        plan_resources([_cell(devices=[0, 1])], [{"CPU": 4, "GPU": 1}, {"CPU": 1, "GPU": 1}])


def test_cuda_cell_on_a_cpu_cluster_and_a_fixed_gpu_are_refused():
    with pytest.raises(ParameterError, match=r"no node of the Ray cluster has them.*use device='cpu'"):
        plan_resources([_cell(device="cuda")], [{"CPU": 2}])
    with pytest.raises(ParameterError, match="device='cuda:1' is not valid with executor='ray'"):
        plan_resources([_cell(device="cuda:1")], [{"CPU": 2, "GPU": 2}])


def test_executor_keys_are_checked():
    cfg = parse_config({"models": [TINY], "executor": "ray", "ray_address": "auto"})
    assert (cfg.executor, cfg.ray_address) == ("ray", "auto")
    assert parse_config(cfg.to_dict()) == cfg
    assert cfg.cells()[0].cell_id == parse_config({"models": [TINY]}).cells()[0].cell_id, \
        "the executor does not change what a cell measures"
    with pytest.raises(ParameterError, match=r"executor.*'local', 'ray'"):
        parse_config({"models": [TINY], "executor": "dask"})
    with pytest.raises(ParameterError, match="ray_address=''"):
        parse_config({"models": [TINY], "ray_address": ""})
    with pytest.raises(ParameterError, match=r"executor.*'local', 'ray'"):
        executors.with_executor(cfg, "slurm", None)
    assert executors.with_executor(cfg, "local", "10.0.0.1:6379").ray_address == "10.0.0.1:6379"


def test_missing_ray_is_a_parameter_error_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ParameterError, match=r"pip install -c constraints.txt -e '\.\[ray\]'"):
        executors.import_ray()
    out = tmp_path / "run"
    with pytest.raises(ParameterError, match=r"pip install -c constraints.txt -e '\.\[ray\]'"):
        run_sweep({"models": [TINY], "input_tokens": 8, "output_tokens": 2}, out, executor="ray")
    assert not out.exists(), "nothing written before the executor was checked"


def test_ray_cells_always_run_in_their_own_process(tmp_path):
    with pytest.raises(ParameterError, match="isolate=False is not valid with executor='ray'"):
        run_sweep({"models": [TINY], "input_tokens": 8, "output_tokens": 2, "executor": "ray"},
                  tmp_path / "run", isolate=False)
    assert not (tmp_path / "run").exists()


def test_a_cell_without_gpus_sees_none_of_the_node():
    env = executors.child_env(0, {"CUDA_VISIBLE_DEVICES": "0,1", "PATH": "/bin"})
    assert env == {"CUDA_VISIBLE_DEVICES": "", "PATH": "/bin"}
    assert executors.child_env(1, {"CUDA_VISIBLE_DEVICES": "3"})["CUDA_VISIBLE_DEVICES"] == "3"


def test_cli_has_the_executor_flags(capsys):
    from nrg.commands.cli import main

    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = capsys.readouterr().out
    assert "--executor {local,ray}" in text and "--address" in text
    with pytest.raises(SystemExit):
        main(["sweep", "x.yaml", "--out", "y", "--executor", "slurm"])


def test_a_ray_cell_measures_its_own_node(monkeypatch):
    """What a local sweep measures once, a Ray cell measures where it runs: provenance and idle power."""
    import socket

    from nrg.sweep.schedule.context import SweepContext

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")   # as in a Ray task without GPUs
    cell = _cell(idle_s=0.1, roofline=False)
    driver = SweepContext(run_id="r-1", chapter="01", provenance={"hostname": "the-driver"})
    here = node.node_context(cell, driver)
    assert here.run_id == "r-1" and here.chapter == "01"
    assert here.provenance["hostname"] == socket.gethostname()
    assert set(here.idle_power_w) == {"cpu", "dram"} and here.idle_power_w["cpu"] >= 0
    assert here.mem_bandwidth_bytes_per_s is None
    assert node.node_context(_cell(idle_s=0, roofline=False), driver).idle_power_w == {}
