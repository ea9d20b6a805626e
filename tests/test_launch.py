import subprocess

import pytest

from builder.run import launch
from tests.conftest import SMALL, env, generate_cmd, shard_files


@pytest.fixture
def simple_launcher_env(monkeypatch):
    """The environment accelerate's simple launcher gives its one child for --cpu --num_processes N > 1."""
    for name in launch._DISTRIBUTED_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")


def test_dropped_processes_are_detected(simple_launcher_env, monkeypatch):
    monkeypatch.setattr(launch, "_launcher_num_processes", lambda: 3)
    assert launch.cpu_processes_dropped_by_accelerate() == 3


@pytest.mark.parametrize("change", [("RANK", "0"), ("WORLD_SIZE", "2"), ("OMPI_COMM_WORLD_SIZE", "2")])
def test_real_process_groups_are_left_alone(simple_launcher_env, monkeypatch, change):
    monkeypatch.setattr(launch, "_launcher_num_processes", lambda: 3)
    monkeypatch.setenv(*change)
    assert launch.cpu_processes_dropped_by_accelerate() == 0


def test_single_process_and_plain_python_are_left_alone(simple_launcher_env, monkeypatch):
    monkeypatch.setattr(launch, "_launcher_num_processes", lambda: 1)
    assert launch.cpu_processes_dropped_by_accelerate() == 0
    monkeypatch.delenv("MASTER_ADDR")
    monkeypatch.setattr(launch, "_launcher_num_processes", lambda: 3)
    assert launch.cpu_processes_dropped_by_accelerate() == 0


@pytest.mark.parametrize("words,expected", [
    (["accelerate", "launch", "--cpu", "--num_processes", "3", "generate.py"], 3),
    (["accelerate", "launch", "--num_processes=4", "generate.py"], 4),
    (["accelerate", "launch", "--num-processes", "2", "generate.py"], 2),
    (["accelerate", "launch", "--num-processes=5", "generate.py"], 5),
    (["accelerate", "launch", "--cpu", "generate.py"], 1),  # absent
    (["accelerate", "launch", "--num_processes", "two", "generate.py"], 1),  # not a number
    (["accelerate", "launch", "--num_processes=", "generate.py"], 1),
    (["accelerate", "launch", "--num_processes"], 1),  # flag without a value at the end
    (["accelerate", "launch", "--num_processes_extra", "3"], 1),  # another flag with the same prefix
])
def test_num_processes_from_the_launcher_command_line(words, expected):
    assert launch.num_processes_from_argv(words) == expected


def test_two_launches_started_together_both_succeed(tmp_path, no_depth_reference):
    """Two `accelerate launch --cpu --num_processes 2` at the same moment on one machine: each launcher's
    rendezvous port comes from the OS, so neither dies with EADDRINUSE, and both give the 1-process bytes."""
    args = [*SMALL, "--no-depth"]
    reference = no_depth_reference
    outs = [tmp_path / "a", tmp_path / "b"]
    launches = [subprocess.Popen(generate_cmd(out, *args, processes=2, launcher="accelerate"), env=env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for out in outs]
    for launch_process in launches:
        _, stderr = launch_process.communicate(timeout=300)
        assert launch_process.returncode == 0, stderr[-3000:]
    for out in outs:
        assert shard_files(out) == shard_files(reference)
        assert (out / "stats.json").read_bytes() == (reference / "stats.json").read_bytes()
