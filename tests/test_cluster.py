"""The cluster path exactly as the README gives it: `ray start --head`, a second `ray start --address`
node, then `ray job submit`; the explorers land on the worker node by their custom resource.

These machines allow loopback traffic only. Ray rewrites 127.0.0.1 and localhost to the machine's
public address, and RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (which keeps a node on 127.0.0.1) refuses a
second node; 127.0.0.2 is loopback too but not rewritten, so both nodes use it. Each node gets its own
ports, and the test stops only the nodes it started (never `ray stop`, which stops every Ray here).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from replay.buffer import ReplayBuffer
from replay.server import EmbeddedRedis, free_port

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent
NODE_IP = "127.0.0.2"


_HANDED_OUT: set[int] = set()


def _port() -> int:
    """A free port not handed out before in this test: the OS may offer a just-closed port again, and Ray
    refuses to start when two of its components get the same one."""
    port = free_port()
    while port in _HANDED_OUT:
        port = free_port()
    _HANDED_OUT.add(port)
    return port


def _node_ports() -> list[str]:
    """Every port a node listens on, free ones, so two nodes (and other Ray work) never collide."""
    flags = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"]
    ports = [arg for flag in flags for arg in (flag, str(_port()))]
    low = 20000 + secrets.randbelow(200) * 100
    return [*ports, "--min-worker-port", str(low), "--max-worker-port", str(low + 99)]


def _start_node(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "ray"), "start", "--block", "--node-ip-address", NODE_IP, "--disable-usage-stats",
                             *_node_ports(), *args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _alive_nodes(gcs: str, env: dict) -> int:
    """Nodes the cluster counts as alive (0 while its GCS does not answer yet)."""
    host, port = gcs.split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        probe = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address='{gcs}', logging_level='ERROR'); "
                                "print(sum(n['Alive'] for n in ray.nodes()))"], env=env, capture_output=True, text=True,
                               timeout=90)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return int(probe.stdout.split()[-1]) if probe.returncode == 0 and probe.stdout.split() else 0


@pytest.fixture
def two_node_cluster(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0")
    gcs_port, dashboard = _port(), _port()
    gcs = f"{NODE_IP}:{gcs_port}"
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    head = _start_node(["--head", "--port", str(gcs_port), "--dashboard-host", "127.0.0.1", "--dashboard-port",
                        str(dashboard), "--ray-client-server-port", str(_port()), "--num-cpus", "4",
                        "--resources", json.dumps({"learner": 1}), "--temp-dir", str(temp / "head")],
                       env, tmp_path / "head.log")
    nodes = [head]
    try:
        deadline = time.monotonic() + 300
        while _alive_nodes(gcs, env) < 1:
            assert time.monotonic() < deadline and head.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
            time.sleep(1)
        nodes.append(_start_node(["--address", gcs, "--num-cpus", "2", "--resources", json.dumps({"explorer": 2}),
                                  "--temp-dir", str(temp / "worker")], env, tmp_path / "worker.log"))
        while _alive_nodes(gcs, env) < 2:
            assert time.monotonic() < deadline and nodes[1].poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(1)
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        for node in reversed(nodes):  # the worker first; each --block process stops its own node's processes
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_job_submit_spreads_the_experiment_over_two_nodes(two_node_cluster, tmp_path):
    address, env = two_node_cluster
    config = yaml.safe_load((ROOT / "tests" / "fixtures" / "launcher" / "tiny.yaml").read_text())
    config["name"] = "cluster-tiny"
    config["tools"]["rounds"] = [1]
    config["explore"]["resources"] = {"explorer": 1}  # only the worker node offers it
    config["learn"]["resources"] = {"learner": 1}  # only the head node offers it
    with EmbeddedRedis(tmp_path / "redis-run") as redis_server:
        config["redis"] = {"url": redis_server.url}  # an external Redis, as on a real cluster
        job_config = ROOT / "tests" / "fixtures" / "launcher" / "cluster-job.yaml"  # inside --working-dir
        job_config.write_text(yaml.safe_dump(config))
        try:
            result = subprocess.run(
                [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(ROOT), "--",
                 str(BIN / "imaginarium"), "run", str(job_config.relative_to(ROOT))],
                env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
        finally:
            job_config.unlink()
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "report:" in result.stdout and "succeeded" in result.stdout
        assert ReplayBuffer(redis_server.url).stats("explore").size > 0  # the explorers wrote into the external Redis
    listing = subprocess.run([str(BIN / "ray"), "list", "actors", "--address", address, "--format", "json",
                              "--limit", "200", "--detail"], env=env, capture_output=True, text=True, timeout=60)
    nodes_of: dict[str, set[str]] = {}
    for actor in json.loads(listing.stdout):
        nodes_of.setdefault(actor["class_name"], set()).add(actor["node_id"])
    assert {"Explorer", "LearnerRank", "Evaluator"} <= set(nodes_of), listing.stdout[-2000:]
    assert len(nodes_of["Explorer"]) == 1 and len(nodes_of["LearnerRank"]) == 1
    assert nodes_of["Explorer"] != nodes_of["LearnerRank"]  # explorers on the worker node, the learner on the head
