"""Does the demo's learning repeat? The demo on several seeds and CPU kernel sets, one table, the goals checked.

    .venv/bin/python benchmarks/demo_repeats.py [--seeds 0 1 2] [--modes native avx2] [--config configs/cpu-demo.yaml]
    .venv/bin/python benchmarks/demo_repeats.py --summarize runs/demo-repeats/*     # runs already made

Each run is `imaginarium run CONFIG --seed S` in its own folder (`runs/demo-repeats/<mode>-s<S>`), one after
another (they share the cores); `avx2` sets ATEN_CPU_CAPABILITY=avx2, so a machine with AVX-512 and AMX runs the
kernels a machine without them would. The table gives, per run, correctness (%) of every tool on the base model,
after its own round and at the end, each round's gain, the wall time, and checks issue 17's goals:
round 1's tools gain >= 20 points after round 1 in every run (median >= 25), no tool ends more than 10 points
below its base, round 2's tools gain >= 15.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
METRIC = "correct"


def run_once(config: Path, seed: int, mode: str, run_dir: Path) -> float:
    env = {**os.environ, **({"ATEN_CPU_CAPABILITY": "avx2"} if mode == "avx2" else {})}
    if mode != "avx2":
        env.pop("ATEN_CPU_CAPABILITY", None)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", "from launcher.cli import app; app()", "run", str(config), "--seed",
                           str(seed), "--run-dir", str(run_dir)], cwd=ROOT, env=env)
    wall = time.monotonic() - started
    (run_dir / "wall_s.txt").write_text(f"{wall:.0f}\n")
    if done.returncode != 0:
        print(f"{run_dir}: the run failed (exit {done.returncode}); see its error.log", file=sys.stderr)
    return wall


def summarize(run_dir: Path) -> dict:
    """One run's figures, from its own files: state.json, config.yaml, metrics.jsonl, wall_s.txt."""
    state = json.loads((run_dir / "state.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    precision = next((e for e in events if e.get("event") == "precision"), {})
    rounds = {int(r): names for r, names in config["tools"]["names"].items()}
    evaluations = state["evaluations"]
    last = max(rounds)
    scores = {}
    for r, names in rounds.items():
        for name in names:
            scores[name] = {"round": r, **{label: evaluations.get(label, {}).get("by_tool", {}).get(name, {}).get(METRIC)
                                           for label in ("base", f"round {r}", f"round {last}")}}
    gains = {}
    for r, names in rounds.items():
        before = evaluations.get("base", {}).get("by_round", {}).get(str(r), {}).get(METRIC)
        after = evaluations.get(f"round {r}", {}).get("by_round", {}).get(str(r), {}).get(METRIC)
        gains[r] = None if before is None or after is None else after - before
    wall = run_dir / "wall_s.txt"
    return {"run": run_dir.name, "seed": config["seed"], "precision": precision.get("precision", "?"),
            "cpu": precision.get("cpu", "?"), "wall_min": float(wall.read_text()) / 60 if wall.exists() else None,
            "scores": scores, "gains": gains, "last": last}


def table(runs: list[dict]) -> str:
    tools = list(runs[0]["scores"])
    header = ["run", "seed", "CPU kernels", "precision", "wall (min)"] + [
        f"`{t}` (r{runs[0]['scores'][t]['round']}) base → own round → end" for t in tools] + [
        f"round {r} gain" for r in runs[0]["gains"]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def cell(value):
        return "–" if value is None else f"{value:.0f}"

    for run in runs:
        row = [run["run"], str(run["seed"]), run["cpu"], run["precision"],
               "–" if run["wall_min"] is None else f"{run['wall_min']:.1f}"]
        for t in tools:
            s = run["scores"][t]
            own, end = s[f"round {s['round']}"], s[f"round {run['last']}"]
            row.append(f"{cell(s['base'])} → {cell(own)} → {cell(end)}")
        row += [("–" if g is None else f"{g:+.1f}") for g in run["gains"].values()]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def goals(runs: list[dict]) -> list[str]:
    """Issue 17's goals, each with the figures it was judged on."""
    first, second = sorted(runs[0]["gains"])[:2]
    g1 = [run["gains"][first] for run in runs if run["gains"][first] is not None]
    g2 = [run["gains"][second] for run in runs if run["gains"][second] is not None]
    drops = [(run["run"], tool, s[f"round {run['last']}"] - s["base"]) for run in runs
             for tool, s in run["scores"].items() if s["base"] is not None and s[f"round {run['last']}"] is not None]
    worst = min(drops, key=lambda d: d[2]) if drops else None
    walls = [run["wall_min"] for run in runs if run["wall_min"] is not None]

    def spread(values):
        return f"median {statistics.median(values):+.1f}, min {min(values):+.1f}, max {max(values):+.1f}" if values else "–"

    return [
        f"- round {first}'s tools gain ≥ 20 in every run, median ≥ 25: {spread(g1)} over {len(g1)} runs: "
        f"{'met' if g1 and min(g1) >= 20 and statistics.median(g1) >= 25 else 'not met'}",
        f"- no tool ends more than 10 points below its base: worst {worst[1]} in {worst[0]} {worst[2]:+.0f}: "
        f"{'met' if worst[2] >= -10 else 'not met'}" if worst else "- no tool ends below its base: –",
        f"- round {second}'s tools gain ≥ 15: {spread(g2)}: {'met' if g2 and min(g2) >= 15 else 'not met'}",
        f"- wall time (min): median {statistics.median(walls):.1f}, min {min(walls):.1f}, max {max(walls):.1f}"
        if walls else "- wall time: –",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--modes", nargs="+", default=["native", "avx2"], choices=["native", "avx2"])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "cpu-demo.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "demo-repeats")
    parser.add_argument("--summarize", type=Path, nargs="+", help="Only tabulate these run folders.")
    args = parser.parse_args()
    folders = args.summarize
    if folders is None:
        folders = []
        for mode in args.modes:
            for seed in args.seeds:
                folder = args.out / f"{mode}-s{seed}"
                run_once(args.config, seed, mode, folder)
                folders.append(folder)
    runs = [summarize(folder) for folder in folders if (folder / "state.json").exists()]
    print(table(runs))
    print()
    print("\n".join(goals(runs)))


if __name__ == "__main__":
    main()
