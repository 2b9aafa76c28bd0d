"""report.md and its plots, rewritten after every round from the run's state and metrics.jsonl."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np

from evaluation.metrics import METRICS
from evaluation.report import score_cell
from replay.buffer import TableStats

METRIC = "correct"  # STE's correctness: the right API with the right arguments
NO_REPLAY = " no replay"  # suffix of the evaluation labels of the ablation branch (round r trained without replay)
ICL = "base + ICL"  # the base model with kept episodes as demonstrations (STE's in-context learning), no training


def _events(metrics_path: Path, kind: str) -> list[dict]:
    if not metrics_path.exists():
        return []
    events = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    return [e for e in events if e.get("event") == kind]


def learning_matrix(evaluations: dict[str, dict], rounds: list[int]) -> tuple[list[str], np.ndarray]:
    """Rows: the model after each round (and the base model); columns: the tools of round k; cells: correctness %."""
    labels = list(evaluations)
    matrix = np.full((len(labels), len(rounds)), np.nan)
    for i, label in enumerate(labels):
        by_round = evaluations[label]["by_round"]
        for j, r in enumerate(rounds):
            if str(r) in by_round:
                matrix[i, j] = by_round[str(r)][METRIC]
    return labels, matrix


def _per_tool(evaluations: dict[str, dict], tools: dict[int, list[str]]) -> list[str]:
    """Correctness per tool and model: which tools were learned, which forgotten (`eval/` holds every query),
    with the 95% bootstrap interval of each score, since a tool's few gold queries make every score noisy."""
    names = [name for r in tools for name in tools[r]]
    lines = ["Correctness (%) per tool, [95% bootstrap interval] (every query's calls and flags: "
             "`eval/<model>.json`):", "",
             "| model | " + " | ".join(f"`{name}` (r{r})" for r in tools for name in tools[r]) + " |",
             "| --- | " + " | ".join("---:" for _ in names) + " |"]
    for label, evaluation in evaluations.items():
        by_tool = evaluation.get("by_tool", {})
        cells = " | ".join(score_cell(by_tool[name], METRIC) if name in by_tool else "–" for name in names)
        lines.append(f"| {label} | {cells} |")
    return lines + [""]


def write_report(run_dir: Path, config, tools: dict[int, list[str]], evaluations: dict[str, dict],
                 explored: TableStats, train: TableStats, metrics_path: Path) -> Path:
    rounds = config.tools.rounds
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    recorded = next(iter(_events(metrics_path, "precision")), {})
    precision = recorded.get("precision", "not recorded") + (f" ({recorded['cpu']} kernels)" if "cpu" in recorded else "")
    lines = [f"# {config.name}: continual tool learning", "",
             f"Model `{config.model.path}`, schedule `{config.schedule}`, rounds {rounds}, {config.explore.actors} "
             f"explorers ({config.explore.strategy}), learner {config.learn.ranks} rank(s) ZeRO-{config.learn.zero_stage} "
             f"trained in {precision}, replay fraction {config.learn.replay_fraction}, seed {config.seed}.", ""]

    lines += _summary(evaluations, rounds)
    labels, matrix = learning_matrix(evaluations, rounds)
    if labels:
        lines += ["## Correctness (%) on each round's gold set", "",
                  "| model | " + " | ".join(f"round {r} tools" for r in rounds) + " | all evaluated |",
                  "| --- | " + " | ".join("---:" for _ in rounds) + " | ---: |"]
        for label, row in zip(labels, matrix):
            cells = " | ".join("–" if np.isnan(v) else f"{v:.1f}" for v in row)
            lines.append(f"| {label} (v{evaluations[label]['version']}) | {cells} | "
                         f"{evaluations[label]['summary'][METRIC]:.1f} |")
        lineage = [i for i, label in enumerate(labels)  # the run's own models
                   if not label.endswith(NO_REPLAY) and label != ICL]
        latest = evaluations[labels[lineage[-1]]]["summary"]
        metrics = [metric for metric in METRICS if metric in latest]
        lines += ["", f"Other metrics of the latest model ({labels[lineage[-1]]}), [95% bootstrap interval]:", "",
                  "| n | " + " | ".join(metrics) + " |",
                  "| ---: | " + " | ".join("---:" for _ in metrics) + " |",
                  f"| {latest.get('n', '–')} | " + " | ".join(score_cell(latest, metric) for metric in metrics) + " |", ""]
        lines += _per_tool(evaluations, tools)
        _heatmap(labels, matrix, rounds, plots / "learning_matrix.png")
        _correctness([labels[i] for i in lineage], matrix[lineage], rounds, plots / "correctness.png")
        lines += ["![learning and forgetting](plots/learning_matrix.png)", "", "![correctness](plots/correctness.png)", ""]

    lines += ["## Replay buffer", "", f"Explored episodes: {explored.size} (table `{explored.name}`), kept and "
              f"paraphrased for training: {train.size} (table `{train.name}`).", ""]
    if explored.by_tool_round:
        _composition(explored, rounds, plots / "buffer_composition.png")
        lines += ["![buffer composition](plots/buffer_composition.png)", ""]
    outcomes = explored.counts("outcome")
    lines += ["Outcomes of explored episodes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())), ""]

    train_events = _events(metrics_path, "train")
    if train_events:
        _loss(train_events, plots / "loss.png")
        _lag(train_events, plots / "version_lag.png")
        replayed = sum(e["replayed"] for e in train_events)
        examples = sum(e["examples"] for e in train_events)
        lines += ["## Learning", "", f"{len(train_events)} optimizer steps, {examples} examples, "
                  f"{replayed} of them replayed from earlier rounds.", "",
                  "![loss](plots/loss.png)", "", "![policy version lag](plots/version_lag.png)", ""]
    explorers = {f"explorer-{i}": _events(metrics_path, f"explorer-{i}") for i in range(config.explore.actors)}
    explorers = {name: events for name, events in explorers.items() if events}
    if train_events and explorers:  # the continual schedule: both sides at once
        _idle(train_events, explorers, plots / "idle.png")
        learner_idle = sum(e["idle"] * e["seconds"] for e in train_events) / sum(e["seconds"] for e in train_events)
        explorer_idle = {name: events[-1]["idle"] for name, events in explorers.items()}
        lines += [f"Idle ratios (time waiting on the rate limiter ÷ wall time): learner {learner_idle:.2f}, "
                  + ", ".join(f"{name} {idle:.2f}" for name, idle in explorer_idle.items())
                  + f"; samples per insert reached {train_events[-1]['samples_per_insert']:.2f} "
                  f"(target {config.buffer.rate_limiter.samples_per_insert:g}).", "", "![idle ratios](plots/idle.png)", ""]
    publishes = _events(metrics_path, "publish")
    if publishes:
        lines += [f"Weights published {len(publishes)} times; mean time to all explorers "
                  f"{np.mean([p['seconds'] for p in publishes]):.2f} s.", ""]
    lines += _replay_section(evaluations, rounds, config.learn.replay_fraction, plots / "replay.png")
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def _summary(evaluations: dict[str, dict], rounds: list[int]) -> list[str]:
    """The run's answer in words: what each round learned on its own tools, and what later rounds did to them."""

    def cell(label: str, r: int) -> dict | None:
        return evaluations.get(label, {}).get("by_round", {}).get(str(r))

    lines = []
    for r in rounds:
        before, after = cell("base", r), cell(f"round {r}", r)
        if before and after:
            lines.append(f"- **Learning**: round {r}'s tools ({after['n']} gold queries), base model "
                         f"{before[METRIC]:.1f}% → after round {r} {after[METRIC]:.1f}% "
                         f"({after[METRIC] - before[METRIC]:+.1f} points).")
    last = next((r for r in reversed(rounds) if f"round {r}" in evaluations), None)
    for r in rounds:
        learned, later = cell(f"round {r}", r), cell(f"round {last}", r) if last and last > r else None
        if learned and later:
            without = cell(f"round {last}{NO_REPLAY}", r)
            ablation = f"; trained without replay {without[METRIC]:.1f}%" if without else ""
            lines.append(f"- **Forgetting**: round {r}'s tools after round {r} {learned[METRIC]:.1f}% → after round "
                         f"{last} {later[METRIC]:.1f}% with replay ({later[METRIC] - learned[METRIC]:+.1f} points)"
                         f"{ablation}.")
    if ICL in evaluations and "base" in evaluations and last:
        base, icl, tuned = (evaluations[label]["summary"][METRIC] for label in ("base", ICL, f"round {last}"))
        lines.append(f"- **In context vs fine-tuned** (STE's comparison, every round's tools): base model {base:.1f}%, "
                     f"with kept episodes as demonstrations {icl:.1f}%, fine-tuned through round {last} {tuned:.1f}%.")
    return ["## Summary", "", *lines, ""] if lines else []


def _replay_section(evaluations: dict[str, dict], rounds: list[int], fraction: float, path: Path) -> list[str]:
    """With and without replay, after each round that has both: correctness on every round's tools so far."""
    pairs = [r for r in rounds if f"round {r}" in evaluations and f"round {r}{NO_REPLAY}" in evaluations]
    if not pairs:
        return ["Replay vs no replay: set `learn.compare_no_replay: true` (or run the same config with "
                "`learn.replay_fraction: 0` into another run folder) to compare.", ""]
    lines = ["## Replay vs no replay", "",
             f"From round 2 on, each round is trained twice from the end of the previous round: with {fraction:.0%} "
             "of every batch replayed from earlier rounds (the run itself), and on the new round's episodes only.", "",
             "| after | " + " | ".join(f"round {r} tools" for r in rounds) + " |",
             "| --- | " + " | ".join("---:" for _ in rounds) + " |"]
    bars = []
    for r in pairs:
        for label, name in ((f"round {r}", "with replay"), (f"round {r}{NO_REPLAY}", "without replay")):
            by_round = evaluations[label]["by_round"]
            values = [by_round[str(k)][METRIC] if str(k) in by_round and k <= r else np.nan for k in rounds]
            lines.append(f"| round {r}, {name} | " + " | ".join("–" if np.isnan(v) else f"{v:.1f}" for v in values) + " |")
            bars.append((f"round {r}\n{name}", values))
    _replay_bars(bars, rounds, path)
    return lines + ["", f"![replay vs no replay](plots/{path.name})", ""]


def _replay_bars(bars: list[tuple[str, list[float]]], rounds: list[int], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(1.5 + 1.6 * len(bars), 3.4))
    width = 0.8 / len(rounds)
    for j, r in enumerate(rounds):
        ax.bar(np.arange(len(bars)) + j * width, [np.nan_to_num(values[j]) for _, values in bars], width,
               label=f"round {r} tools")
    ax.set_xticks(np.arange(len(bars)) + width * (len(rounds) - 1) / 2, [name for name, _ in bars])
    ax.set_ylabel("correct %")
    ax.set_ylim(0, 100)
    ax.legend()
    ax.set_title("what replay does to forgetting")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _heatmap(labels: list[str], matrix: np.ndarray, rounds: list[int], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(rounds), 1.0 + 0.55 * len(labels)))
    image = ax.imshow(matrix, vmin=0, vmax=100, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(rounds)), [f"round {r}\ntools" for r in rounds])
    ax.set_yticks(range(len(labels)), [label if label in ("base", ICL) else f"after {label}" for label in labels])
    for (i, j), value in np.ndenumerate(matrix):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", color="white" if value < 60 else "black")
    fig.colorbar(image, ax=ax, label="correct %")
    ax.set_title("learning and forgetting")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _correctness(labels: list[str], matrix: np.ndarray, rounds: list[int], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for j, r in enumerate(rounds):
        ax.plot(range(len(labels)), matrix[:, j], marker="o", label=f"round {r} tools")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("correct %")
    ax.set_ylim(0, 100)
    ax.legend()
    ax.set_title("correctness after each round")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _composition(stats: TableStats, rounds: list[int], path: Path) -> None:
    tools = sorted({tool for tool, _ in stats.by_tool_round})
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.35 * len(tools)))
    left = np.zeros(len(tools))
    for r in rounds:
        counts = np.array([stats.by_tool_round.get((tool, str(r)), 0) for tool in tools])
        ax.barh(tools, counts, left=left, label=f"round {r}")
        left += counts
    ax.set_xlabel("episodes")
    ax.legend()
    ax.set_title("buffer composition per tool and round")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _loss(events: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot([e["step"] for e in events], [e["loss"] for e in events])
    for r in sorted({e["round"] for e in events}):
        first = min(e["step"] for e in events if e["round"] == r)
        ax.axvline(first, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (per labelled token)")
    ax.set_title("training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _idle(learner: list[dict], explorers: dict[str, list[dict]], path: Path) -> None:
    """Idle ratio over time: the learner's per step (waiting on the limiter), each explorer's so far (held back)."""
    start = min([e["time"] for e in learner] + [e["time"] for events in explorers.values() for e in events])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot([(e["time"] - start) / 60 for e in learner], [e["idle"] for e in learner], ".-", label="learner")
    for name, events in sorted(explorers.items()):
        ax.plot([(e["time"] - start) / 60 for e in events], [e["idle"] for e in events], label=name, alpha=0.7)
    ax.set_xlabel("minutes")
    ax.set_ylabel("idle ratio")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _lag(events: list[dict], path: Path) -> None:
    lags = [lag for e in events for lag in e["version_lag"]]
    fig, ax = plt.subplots(figsize=(5, 3))
    top = max(lags, default=0)
    ax.hist(lags, bins=range(0, top + 2), align="left", rwidth=0.8)
    ax.set_xticks(range(0, top + 1, max(1, (top + 1) // 10)))  # a lag is a whole number of versions
    ax.set_xlabel("policy version lag of trained episodes")
    ax.set_ylabel("examples")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
