"""The cluster path exactly as the README gives it: `ray start --head`, then `ray job submit`.

One node only: Ray keeps a node on loopback only with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, and that
same setting refuses a second node (these machines allow no other traffic). Placement by resources
is still exercised: the explorers need the custom resource `explorer`, which the head offers."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from replay.buffer import ReplayBuffer
from replay.server import EmbeddedRedis, _free_port

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture
def ray_head():
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}
    port, dashboard = _free_port(), _free_port()
    ray = str(BIN / "ray")
    subprocess.run([ray, "start", "--head", "--port", str(port), "--dashboard-host", "127.0.0.1",
                    "--dashboard-port", str(dashboard), "--num-cpus", "4", "--resources", json.dumps({"explorer": 2}),
                    "--disable-usage-stats", "--node-ip-address", "127.0.0.1"], env=env, check=True,
                   capture_output=True, timeout=120)
    try:
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_ray_job_submit_runs_the_experiment_on_a_head_node(ray_head, tmp_path):
    address, env = ray_head
    config = yaml.safe_load((ROOT / "tests" / "fixtures" / "launcher" / "tiny.yaml").read_text())
    config["name"] = "cluster-tiny"
    config["tools"]["rounds"] = [1]
    config["explore"]["resources"] = {"explorer": 1}  # placement by resources, as on a real cluster
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
        stats = ReplayBuffer(redis_server.url).stats("explore")
        assert stats.size > 0  # the job's explorers wrote into the external Redis
    listing = subprocess.run([str(BIN / "ray"), "list", "actors", "--address", address, "--format", "json",
                              "--limit", "200", "--detail"], env=env, capture_output=True, text=True, timeout=60)
    classes = {actor["class_name"] for actor in json.loads(listing.stdout)}
    assert {"Explorer", "LearnerRank", "Evaluator"} <= classes, listing.stdout[-2000:]
