"""launch: node detection from AWS Batch's variables and the command each node runs."""

from __future__ import annotations

import os
import subprocess

import pytest
from isaaclab_runner import launch
from isaaclab_runner.launch import NodeInfo, detect_node, job_attempt, launch_command
from pipeline_env import ISAACLAB_PYTHON

ISAACLAB = ISAACLAB_PYTHON.parent / "isaaclab"  # Isaac Lab's own CLI in the Isaac Lab venv
TRAIN = ["isaaclab", "train", "--rl_library", "rsl_rl", "--task", "Isaac-Custom-Cartpole-Direct",
         "--num_envs", "16384", "--max_iterations", "100", "--seed", "1", "--device", "cuda:0", "agent.device=cuda:0"]
# What Batch sets on the two nodes of a multi-node parallel job (the worker also gets the main node's address).
MAIN_ENV = {"AWS_BATCH_JOB_NUM_NODES": "2", "AWS_BATCH_JOB_NODE_INDEX": "0", "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0"}
WORKER_ENV = {**MAIN_ENV, "AWS_BATCH_JOB_NODE_INDEX": "1", "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.0.1.17"}


def test_plain_container_is_one_node() -> None:
    node = detect_node({})
    assert node == NodeInfo() and node.uploads
    assert launch_command(TRAIN, 1, node) == TRAIN


def test_one_node_many_gpus() -> None:
    assert launch_command(TRAIN, 4, detect_node({})) == ["isaaclab", "train_multigpu", "--num_gpus", "4", *TRAIN[2:]]


def test_two_nodes_main_node_uses_its_own_address(monkeypatch) -> None:
    monkeypatch.setattr(launch, "own_ipv4", lambda: "10.0.1.17")
    node = detect_node(MAIN_ENV)
    assert node == NodeInfo(num_nodes=2, node_rank=0, master_addr="10.0.1.17", master_port=29500)
    assert node.is_main and node.uploads
    assert launch_command(TRAIN, 1, node) == [
        "isaaclab", "train_multigpu", "--nnodes", "2", "--node_rank", "0", "--master_addr", "10.0.1.17",
        "--master_port", "29500", "--num_gpus", "1", *TRAIN[2:]]


def test_two_nodes_worker_uses_the_main_address() -> None:
    node = detect_node(WORKER_ENV)
    assert node == NodeInfo(num_nodes=2, node_rank=1, master_addr="10.0.1.17", master_port=29500)
    assert not node.uploads
    assert launch_command(TRAIN, 1, node) == [
        "isaaclab", "train_multigpu", "--nnodes", "2", "--node_rank", "1", "--master_addr", "10.0.1.17",
        "--master_port", "29500", "--num_gpus", "1", *TRAIN[2:]]


def test_main_node_index_other_than_zero_is_rank_zero() -> None:
    env = {"AWS_BATCH_JOB_NUM_NODES": "3", "AWS_BATCH_JOB_NODE_INDEX": "0", "AWS_BATCH_JOB_MAIN_NODE_INDEX": "2",
           "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.0.0.9", "ISAACLAB_MASTER_PORT": "31000"}
    node = detect_node(env)
    assert (node.node_rank, node.master_port) == (1, 31000)
    assert detect_node({**env, "AWS_BATCH_JOB_NODE_INDEX": "2", "ISAACLAB_MASTER_ADDR": "10.0.0.9"}).node_rank == 0


@pytest.mark.parametrize(("env", "message"), [
    ({"AWS_BATCH_JOB_NUM_NODES": "two"}, "AWS_BATCH_JOB_NUM_NODES='two' is not an integer"),
    ({"AWS_BATCH_JOB_NUM_NODES": "2", "AWS_BATCH_JOB_NODE_INDEX": "2"}, "out of range"),
    ({"AWS_BATCH_JOB_NUM_NODES": "2", "AWS_BATCH_JOB_NODE_INDEX": "1"}, "MAIN_NODE_PRIVATE_IPV4_ADDRESS is not set"),
])
def test_bad_environment_is_named(env: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        detect_node(env)


def test_launch_rejects_a_non_train_command() -> None:
    with pytest.raises(ValueError, match="isaaclab train"):
        launch_command(["isaaclab", "play", "--task", "T"], 2, NodeInfo())


def test_shape_mismatch_says_which_job_definition() -> None:
    launch.check_shape(2, detect_node(WORKER_ENV))
    with pytest.raises(ValueError, match="numNodes=2 .* 1 node"):
        launch.check_shape(2, detect_node({}))


def test_job_attempt() -> None:
    assert job_attempt({}) == 1
    assert job_attempt({"AWS_BATCH_JOB_ATTEMPT": "3"}) == 3
    assert job_attempt({"ISAACLAB_JOB_ATTEMPT": "2"}) == 2


def test_own_ipv4_is_an_address() -> None:
    parts = launch.own_ipv4().split(".")
    assert len(parts) == 4 and all(0 <= int(p) <= 255 for p in parts)


@pytest.mark.isaaclab
@pytest.mark.skipif(not ISAACLAB.exists(), reason="needs the Isaac Lab venv")
@pytest.mark.parametrize("env", [MAIN_ENV, WORKER_ENV], ids=["main", "worker"])
def test_isaaclab_accepts_the_multinode_launch(env: dict, monkeypatch) -> None:
    """Isaac Lab's own launcher parses our command (``--dry_run``) into the static torchrun rendezvous."""
    monkeypatch.setattr(launch, "own_ipv4", lambda: "10.0.1.17")
    node = detect_node(env)
    cmd = launch_command([str(ISAACLAB), *TRAIN[1:]], 1, node) + ["--dry_run"]
    out = subprocess.run(cmd, env={**os.environ, "CUDA_VISIBLE_DEVICES": "0"}, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    run = out.index("torch.distributed.run")
    assert out[run + 1:run + 11] == ["--nproc_per_node", "1", "--nnodes", "2", "--node_rank", str(node.node_rank),
                                     "--master_addr", "10.0.1.17", "--master_port", "29500"]
    assert "--distributed" in out and "Isaac-Custom-Cartpole-Direct" in out
