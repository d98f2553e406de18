"""One GPU, many GPUs, many nodes: turn ``isaaclab train ...`` into the launch this node must run.

On AWS Batch a multi-node parallel job starts the same container on every node; Batch tells each node who it
is through environment variables (``AWS_BATCH_JOB_NUM_NODES``, ``AWS_BATCH_JOB_NODE_INDEX``,
``AWS_BATCH_JOB_MAIN_NODE_INDEX`` and, on the workers only, ``AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS``).
Every node then runs ``isaaclab train_multigpu`` with a static torchrun rendezvous on the main node, the
launch checked on two H100s (shared notes, isaaclab3.md, last table row). Only global rank 0 (node rank 0)
saves checkpoints, so only node rank 0 uploads to staging.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_MASTER_PORT = 29500
# The main node's address is not given to the main node itself; this lets a deployment pin it anyway.
MASTER_ADDR_ENV = "ISAACLAB_MASTER_ADDR"
MASTER_PORT_ENV = "ISAACLAB_MASTER_PORT"


@dataclass(frozen=True)
class NodeInfo:
    """Where this process sits in a (possibly multi-node) job."""

    num_nodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_MASTER_PORT

    @property
    def is_main(self) -> bool:
        """True on node rank 0, the node that hosts the rendezvous and global rank 0."""
        return self.node_rank == 0

    @property
    def uploads(self) -> bool:
        """True where checkpoints exist and may be uploaded: only global rank 0 saves, and it runs on node 0."""
        return self.is_main


def _int_env(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"environment variable {name}={raw!r} must be >= {minimum}")
    return value


def own_ipv4() -> str:
    """Return this host's private IPv4 address (the one other nodes reach it on).

    A UDP ``connect`` sends nothing; it only makes the kernel pick the outgoing interface. Without any route
    (a sealed test box) the host name's address is used.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
            return sock.getsockname()[0]
        except OSError:
            pass
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def detect_node(env: Mapping[str, str] | None = None) -> NodeInfo:
    """Read this node's place from AWS Batch's variables; a plain container or local run is one node.

    Batch's node indices are remapped so the main node is node rank 0 (torchrun's static rendezvous is hosted
    by node rank 0), whatever ``AWS_BATCH_JOB_MAIN_NODE_INDEX`` says.

    :param env: the environment to read (default: ``os.environ``).
    :raises ValueError: if a variable is not a valid integer or the node index is out of range.
    """
    env = os.environ if env is None else env
    num_nodes = _int_env(env, "AWS_BATCH_JOB_NUM_NODES", 1, minimum=1)
    port = _int_env(env, MASTER_PORT_ENV, DEFAULT_MASTER_PORT, minimum=1)
    if num_nodes == 1:
        return NodeInfo(master_port=port)
    index = _int_env(env, "AWS_BATCH_JOB_NODE_INDEX", 0)
    main = _int_env(env, "AWS_BATCH_JOB_MAIN_NODE_INDEX", 0)
    if index >= num_nodes or main >= num_nodes:
        raise ValueError(f"AWS_BATCH_JOB_NODE_INDEX={index} / AWS_BATCH_JOB_MAIN_NODE_INDEX={main} out of range "
                         f"for AWS_BATCH_JOB_NUM_NODES={num_nodes}")
    rank = (index - main) % num_nodes
    addr = env.get(MASTER_ADDR_ENV) or env.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS")
    if not addr:
        if rank != 0:
            raise ValueError("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS is not set on worker node "
                             f"{index}; is the job definition a multi-node parallel one?")
        addr = own_ipv4()  # Batch does not give the main node its own address
    return NodeInfo(num_nodes=num_nodes, node_rank=rank, master_addr=addr, master_port=port)


def job_attempt(env: Mapping[str, str] | None = None) -> int:
    """Return the 1-based attempt number of this job (Batch's ``AWS_BATCH_JOB_ATTEMPT``, local backend's
    ``ISAACLAB_JOB_ATTEMPT``); 1 when neither is set."""
    env = os.environ if env is None else env
    for name in ("AWS_BATCH_JOB_ATTEMPT", "ISAACLAB_JOB_ATTEMPT"):
        if env.get(name):
            return _int_env(env, name, 1, minimum=1)
    return 1


def launch_command(train_cmd: list[str], gpus_per_node: int, node: NodeInfo) -> list[str]:
    """Return the command this node runs for ``train_cmd`` (``[<isaaclab>, "train", <train args>...]``).

    One node with one GPU runs ``train_cmd`` unchanged. Several GPUs on one node run
    ``isaaclab train_multigpu --num_gpus G <train args>``; several nodes add the static rendezvous
    ``--nnodes K --node_rank R --master_addr A --master_port P``. The train arguments are forwarded as they are:
    with ``--distributed`` Isaac Lab puts each rank's simulation and agent on ``cuda:<local rank>`` itself.

    :param train_cmd: the single-process ``isaaclab train`` command (isaaclab_cli.train_command).
    :param gpus_per_node: GPUs this node trains on (the spec's ``gpusPerNode``).
    :param node: this node's place in the job (``detect_node``).
    :raises ValueError: if ``train_cmd`` is not an ``isaaclab train`` command or ``gpus_per_node`` < 1.
    """
    if len(train_cmd) < 2 or train_cmd[1] != "train":
        raise ValueError(f"expected an `isaaclab train ...` command, got {train_cmd[:2]!r}")
    if gpus_per_node < 1:
        raise ValueError(f"gpusPerNode must be >= 1, got {gpus_per_node}")
    if node.num_nodes == 1 and gpus_per_node == 1:
        return list(train_cmd)
    cmd = [train_cmd[0], "train_multigpu"]
    if node.num_nodes > 1:
        cmd += ["--nnodes", str(node.num_nodes), "--node_rank", str(node.node_rank),
                "--master_addr", node.master_addr, "--master_port", str(node.master_port)]
    return cmd + ["--num_gpus", str(gpus_per_node), *train_cmd[2:]]


def check_shape(spec_nodes: int, node: NodeInfo) -> None:
    """Fail fast when the job spec and the job Batch started disagree on the number of nodes.

    :raises ValueError: naming both numbers and the fix.
    """
    if spec_nodes != node.num_nodes:
        raise ValueError(f"the job spec asks for numNodes={spec_nodes} but this job runs on {node.num_nodes} "
                         "node(s) (AWS_BATCH_JOB_NUM_NODES); submit numNodes > 1 with the multi-node job definition")
