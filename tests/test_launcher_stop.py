"""A run stopped by an error says why: the exception raised inside the actor, in one line, and the full
traceback in RUN_DIR/error.log (not Ray's wrapper line "ray::LearnerRank.train_step() (pid=…)")."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from ray.exceptions import RayTaskError

from launcher.cli import stop_reason

ROOT = Path(__file__).parent.parent
TINY = ROOT / "tests" / "fixtures" / "launcher" / "tiny.yaml"
VNNI = "pack_vnni2 is only supported when avx512 is supported"
ACTOR_TRACEBACK = ('Traceback (most recent call last):\n  File "learner/group.py", line 43, in train_step\n'
                   f"RuntimeError: {VNNI}")

# `imaginarium run` whose experiment fails as issue 17's did: a learner actor's train_step raises inside Ray
FAILING_RUN = f"""
import ray
import launcher.run
from launcher.cluster import start_ray

@ray.remote(num_cpus=0)
class LearnerRank:
    def train_step(self):
        raise RuntimeError("{VNNI}")

def run_experiment(config, run_dir, console, resume=False):
    start_ray(address="local", num_cpus=1)
    ray.get(LearnerRank.remote().train_step.remote())

launcher.run.run_experiment = run_experiment
from launcher.cli import app
app()
"""


class Unpicklable(RuntimeError):
    """An exception Ray cannot ship to the driver: it holds a lock."""

    def __init__(self, message: str):
        super().__init__(message)
        self.lock = threading.Lock()


def task_error(cause: BaseException | None) -> RayTaskError:
    return RayTaskError("LearnerRank.train_step", ACTOR_TRACEBACK, cause, proctitle="ray::LearnerRank", pid=1,
                        ip="127.0.0.1")


def test_the_reason_is_the_exception_inside_the_actor():
    raised_in_actor = task_error(RuntimeError(VNNI)).as_instanceof_cause()  # what ray.get raises on the driver
    assert "ray::LearnerRank" in str(raised_in_actor).splitlines()[0]  # the line that hid the cause
    assert stop_reason(raised_in_actor) == f"RuntimeError: {VNNI}"
    assert stop_reason(task_error(raised_in_actor)) == f"RuntimeError: {VNNI}"  # an actor that called another
    assert stop_reason(task_error(None)) == f"RuntimeError: {VNNI}"  # no exception shipped: its traceback's last line
    assert stop_reason(task_error(Unpicklable(VNNI))) == f"RuntimeError: {VNNI}"  # Ray's stand-in for it, likewise
    assert stop_reason(ConnectionError("Redis went away\nwhile sampling")) == "ConnectionError: Redis went away"


def test_a_run_stopped_inside_an_actor_prints_its_message_and_leaves_the_traceback(tmp_path):
    run_dir = tmp_path / "run"
    stopped = subprocess.run([sys.executable, "-c", FAILING_RUN, "run", str(TINY), "--run-dir", str(run_dir)],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    err = " ".join(stopped.stderr.split())  # the console wraps long lines
    assert f"run stopped: RuntimeError: {VNNI}" in err and "Traceback" not in err
    assert f"full traceback: {run_dir / 'error.log'}" in err and f"imaginarium run --resume {run_dir}" in err
    log = (run_dir / "error.log").read_text()
    assert "Traceback (most recent call last)" in log and "in train_step" in log and f"RuntimeError: {VNNI}" in log
    assert "\x1b[" not in log  # no terminal colours in a file
