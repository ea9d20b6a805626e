"""Two machines simulated on this one: two torchrun launchers (--nnodes 2, one per node rank) meeting on a
localhost rendezvous, as `srun torchrun ...` starts them on a cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from builder.run.cluster import shared_folder_problems
from tests.conftest import GENERATE, SMALL, env, read_config

ARGS = [*SMALL, "--no-depth"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PORT_TAKEN = "EADDRINUSE"


def run_two_nodes(outs: tuple, procs: tuple[int, int], timeout: float = 240) -> list[subprocess.CompletedProcess]:
    """Node rank r runs procs[r] processes writing into outs[r]; both launchers start together. Two nodes must
    agree on a port in advance, so it is probed free here; another run on this machine can take it before node
    0's launcher binds it, and then both launchers start again on another port."""
    for _ in range(3):
        results = start_two_nodes(outs, procs, free_port(), timeout)
        if PORT_TAKEN not in results[0].stderr:
            return results
    raise AssertionError(f"3 probed ports were taken before node 0 bound them:\n{results[0].stderr[-2000:]}")


def start_two_nodes(outs: tuple, procs: tuple[int, int], port: int,
                    timeout: float) -> list[subprocess.CompletedProcess]:
    launchers = []
    for node, (out, nproc) in enumerate(zip(outs, procs)):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node),
                   "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1", "--master_port", str(port),
                   str(GENERATE), "--output-dir", str(out), *ARGS]
        launchers.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          env=env(), start_new_session=True))
    results = []
    try:
        for launcher in launchers:
            stdout, stderr = launcher.communicate(timeout=timeout)
            results.append(subprocess.CompletedProcess(launcher.args, launcher.returncode, stdout, stderr))
            if PORT_TAKEN in stderr:  # node 1 would wait for node 0's store until its timeout: stop it
                break
    finally:
        for launcher in launchers:
            if launcher.poll() is None:
                os.killpg(launcher.pid, signal.SIGKILL)
                launcher.wait()
    return results


@pytest.fixture(scope="module")
def one_process(no_depth_reference):
    assert ARGS == [*SMALL, "--no-depth"]  # the shared run's settings
    return no_depth_reference


def test_two_nodes_write_one_dataset_identical_to_one_process(tmp_path, one_process):
    out = tmp_path / "shared"
    node0, node1 = run_two_nodes((out, out), procs=(2, 1))
    assert node0.returncode == 0 and node1.returncode == 0, node0.stderr[-3000:] + node1.stderr[-3000:]
    assert "3 process(es)" in node0.stderr  # the summary counts every process of every node ...
    assert "done:" not in node1.stderr  # ... and only global rank 0 finishes the dataset
    for name in ("default", "backgrounds", "foregrounds"):
        assert read_config(out, name).equals(read_config(one_process, name)), name
    assert (out / "stats.json").read_bytes() == (one_process / "stats.json").read_bytes()
    assert (out / "manifest.json").read_bytes() == (one_process / "manifest.json").read_bytes()
    for grid in (one_process / "images").iterdir():
        assert (out / "images" / grid.name).read_bytes() == grid.read_bytes()


def test_node_that_cannot_see_the_output_folder_fails_on_both_nodes(tmp_path):
    node_dirs = (tmp_path / "node0-local", tmp_path / "node1-local")
    results = run_two_nodes(node_dirs, procs=(1, 1))
    for node, result in enumerate(results):
        assert result.returncode != 0, f"node {node} exited 0"
        assert "must be one shared folder" in result.stderr, result.stderr[-3000:]
        assert str(node_dirs[0]) in result.stderr  # names the folder rank 0 prepared
        assert f"{node_dirs[1]}/manifest.json does not exist" in result.stderr
    assert not (node_dirs[1] / "data").exists()  # node 1 did not fork the dataset into its own folder


def test_a_stale_copy_or_other_inputs_are_refused():
    main = {"rank": 0, "host": "a", "node": "0", "folder": "/shared/out", "manifest": "m", "token": "t1", "job": "j"}
    same = {**main, "rank": 1, "host": "b", "node": "1"}
    stale = {**same, "rank": 2, "folder": "/local/out", "token": "t0"}  # same settings, an earlier run's token
    other_inputs = {**same, "rank": 3, "job": "k"}  # the shared folder, but a node-local copy of other inputs
    assert shared_folder_problems([main, same]) == []
    problems = shared_folder_problems([main, same, stale])
    assert len(problems) == 2 and problems[0].startswith("rank 2 on b (node 1) cannot see the output folder")
    assert "/local/out holds another run's manifest.json" in problems[0] and "/shared/out on a" in problems[1]
    assert shared_folder_problems([main, other_inputs]) == [
        "rank 3 on b (node 1) has other inputs, settings or depth model than rank 0 (their hashes differ): every "
        "machine must read the same --bg-dir/--fg-dir files and model with the same options"]
