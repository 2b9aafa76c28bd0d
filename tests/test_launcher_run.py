"""The whole pipeline on a tiny model: real Redis, Ray, DeepSpeed; the learner killed mid-run, then resumed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parent.parent
TINY = ROOT / "tests" / "fixtures" / "launcher" / "tiny.yaml"
IMAGINARIUM = [sys.executable, "-c", "from launcher.cli import app; app()"]


def _events(run_dir: Path, kind: str) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [e for e in map(json.loads, path.read_text().splitlines()) if e.get("event") == kind]


def _learner_pids(session: int) -> list[int]:
    """The run's own learner ranks (its session's), never another Ray's on the same machine."""
    out = subprocess.run(["pgrep", "-s", str(session), "-f", "ray::LearnerRank"], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def _explored_ids(run_dir: Path) -> list[str]:
    """Episode ids in the saved buffer, read back through the CLI's JSONL export."""
    out = run_dir.parent / f"{run_dir.name}-export.jsonl"
    subprocess.run([*IMAGINARIUM, "buffer", "export", str(out), "--run-dir", str(run_dir), "--table", "explore"],
                   check=True, capture_output=True, cwd=ROOT)
    return [json.loads(line)["imaginarium"]["id"] for line in out.read_text().splitlines()]


def test_a_tiny_experiment_survives_a_dead_learner_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    first = subprocess.Popen([*IMAGINARIUM, "run", str(TINY), "--run-dir", str(run_dir)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:  # wait until round 1 trained past its first checkpoint
        state = json.loads((run_dir / "state.json").read_text()) if (run_dir / "state.json").exists() else {}
        if state.get("checkpoint") and _events(run_dir, "train"):
            break
        assert first.poll() is None, first.communicate()
        time.sleep(0.2)
    else:
        raise AssertionError("the run never reached a checkpoint")
    for pid in _learner_pids(first.pid):
        os.kill(pid, signal.SIGKILL)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 1, out + err
    assert "run stopped" in err and f"imaginarium run --resume {run_dir}" in err and "Traceback" not in err

    killed_state = json.loads((run_dir / "state.json").read_text())
    explored_before = _explored_ids(run_dir)
    resumed = subprocess.run([*IMAGINARIUM, "run", "--resume", str(run_dir)], cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    from evaluation.report import load_records

    assert f"resumed at learner step {killed_state['step']}" in resumed.stdout

    state = json.loads((run_dir / "state.json").read_text())
    assert state["phases"]["1"] == ["explore", "exploit", "learn", "eval"]  # round 1 has nothing to replay
    assert state["phases"]["2"] == ["explore", "exploit", "learn", "eval", "no_replay"]
    assert state["step"] == 6 and set(state["evaluations"]) == {"base", "round 1", "round 2", "round 2 no replay",
                                                                 "base + ICL"}
    assert state["evaluations"]["base + ICL"]["version"] == 0  # in context: the base model, not a trained one
    assert json.loads((run_dir / "eval" / "base-+-ICL.json").read_text())["meta"]["icl"] == 2
    evaluated = {label: set(e["by_round"]) for label, e in state["evaluations"].items()}
    assert evaluated["base"] == evaluated["round 2"] == {"1", "2"} and evaluated["round 1"] == {"1"}  # not yet round 2's
    assert len(_events(run_dir, "train_no_replay")) == 3  # the ablation branch trained a whole round, apart
    explored_after = _explored_ids(run_dir)
    assert len(explored_after) == len(set(explored_after))  # nothing duplicated
    assert set(explored_before) <= set(explored_after)  # nothing lost
    k = killed_state["step"]
    steps = [e["step"] for e in _events(run_dir, "train")]
    assert steps[len(steps) - (6 - k):] == list(range(k + 1, 7))  # the resumed run went on from the checkpoint
    for label, evaluation in state["evaluations"].items():  # every query of every evaluation, readable back
        records = load_records(run_dir / "eval" / f"{label.replace(' ', '-')}.json")
        assert len(records) == evaluation["summary"]["n"] and {r.tool for r in records} == set(evaluation["by_tool"])
    assert set(state["evaluations"]["base"]["by_tool"]) == {  # the tools the config names, not the suite's first
        "convert_currency", "calculate_date_difference", "add_to_date", "get_title_details"}
    report = (run_dir / "report.md").read_text()
    assert "| base (v0) |" in report and "| base + ICL (v0) |" in report and "plots/learning_matrix.png" in report
    assert "**In context vs fine-tuned**" in report
    assert "`convert_currency` (r1)" in report and "| round 1 | " in report  # the per-tool table
    assert "| round 2, with replay |" in report and "| round 2, without replay |" in report
    for plot in ("learning_matrix", "correctness", "buffer_composition", "loss", "version_lag", "replay"):
        assert (run_dir / "plots" / f"{plot}.png").stat().st_size > 1000
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(run_dir / "model") is not None  # the final HF export loads
    assert (run_dir / "models" / "round-1" / "model.safetensors").is_file()  # every round's model, for `eval`
    assert (run_dir / "model").resolve() == (run_dir / "models" / "round-2").resolve()


def test_a_stopped_run_shuts_down_cleanly_and_says_how_to_resume(tmp_path):
    """SIGTERM (a scheduler's stop) ends a run as Ctrl-C does: Ray and the embedded Redis stop, one line says
    how to continue, and no process of the run's session is left behind."""
    run_dir = tmp_path / "run"
    run = subprocess.Popen([*IMAGINARIUM, "run", str(TINY), "--run-dir", str(run_dir)], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while not _events(run_dir, "eval"):  # Ray, Redis and every actor are up once the base model is evaluated
        assert time.monotonic() < deadline and run.poll() is None, run.communicate()
        time.sleep(0.2)
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=180)
    assert run.returncode == 130, out + err
    assert "run interrupted" in err and f"imaginarium run --resume {run_dir}" in err and "Traceback" not in err
    time.sleep(2)
    left = subprocess.run(["pgrep", "-s", str(run.pid), "-a"], capture_output=True, text=True).stdout
    assert left == "", left  # the session's Ray processes and redis-server are gone


TINY_CONTINUAL = ROOT / "tests" / "fixtures" / "launcher" / "tiny-continual.yaml"


def _episodes(run_dir: Path, table: str) -> list[dict]:
    out = run_dir.parent / f"{run_dir.name}-{table}.jsonl"
    subprocess.run([*IMAGINARIUM, "buffer", "export", str(out), "--run-dir", str(run_dir), "--table", table],
                   check=True, capture_output=True, cwd=ROOT)
    return [json.loads(line)["imaginarium"] for line in out.read_text().splitlines()]


def test_a_continual_run_learns_while_exploring_stops_on_sigterm_and_resumes_mid_round(tmp_path):
    """Explorers stream while the learner trains: the learner starts before exploring ends, explorers take new
    weights between episodes; SIGTERM mid-round leaves no process; --resume finishes, losing and doubling nothing."""
    run_dir = tmp_path / "run"
    first = subprocess.Popen([*IMAGINARIUM, "run", str(TINY_CONTINUAL), "--run-dir", str(run_dir)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 400
    while not (_events(run_dir, "train") and json.loads((run_dir / "state.json").read_text()).get("checkpoint")
               if (run_dir / "state.json").exists() else False):
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.2)
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=180)
    assert first.returncode == 130, out + err
    assert "run interrupted" in err and f"imaginarium run --resume {run_dir}" in err and "Traceback" not in err
    time.sleep(2)
    left = subprocess.run(["pgrep", "-s", str(first.pid), "-a"], capture_output=True, text=True).stdout
    assert left == "", left
    killed_state = json.loads((run_dir / "state.json").read_text())
    assert "stream" not in killed_state["phases"].get("1", [])  # stopped mid-round
    explored_before = _explored_ids(run_dir)

    resumed = subprocess.run([*IMAGINARIUM, "run", "--resume", str(run_dir)], cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    state = json.loads((run_dir / "state.json").read_text())
    assert state["phases"]["1"] == ["stream", "eval"] and state["phases"]["2"] == ["stream", "eval", "no_replay"]
    assert set(state["evaluations"]) == {"base", "round 1", "round 2", "round 2 no replay"}
    explored = _episodes(run_dir, "explore")
    ids = [e["id"] for e in explored]
    assert len(ids) == len(set(ids)) and set(explored_before) <= set(ids)  # nothing doubled, nothing lost
    assert len({e["id"] for e in _episodes(run_dir, "explore-train")}) == len(_episodes(run_dir, "explore-train"))
    # concurrency: round 1's learner trained before its last episode was explored, and explorers picked up
    # published weights mid-round, between episodes
    first_train = min(e["time"] for e in _events(run_dir, "train") if e["round"] == 1)
    assert first_train < max(e["created_at"] for e in explored if e["round"] == 1)
    assert any(e["policy_version"] > 0 for e in explored if e["round"] == 1)
    for event in _events(run_dir, "train"):
        assert min(event["version_lag"]) >= 0 and 0 <= event["idle"] <= 1
    assert _events(run_dir, "explorer-0") and _events(run_dir, "precision")[0]["precision"] in ("bf16", "fp32")
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    report = (run_dir / "report.md").read_text()
    assert "| round 2 | " in report and "schedule `continual`" in report and "Idle ratios" in report
    assert (run_dir / "plots" / "idle.png").stat().st_size > 1000
