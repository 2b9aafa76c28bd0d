"""`imaginarium run CONFIG`: the continual tool-learning experiment, round after round.

For each round r: explore round r's tools with the current policy → exploit (filter, paraphrase)
into the training table → learn with STE's replay of earlier rounds, publishing weights to the
explorers every `publish_every` steps → evaluate on the gold sets of rounds up to r. What is done is
recorded in `state.json` after each phase, so `--resume` continues where the run stopped.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import ray
import yaml
from rich.console import Console

from actors.explorer import ExplorerConfig
from actors.model import model_folder
from actors.policy import Sampling
from actors.search import Budget
from actors.ste import STEConfig
from evaluation.report import builtin_markdown
from evaluation.report import write_report as write_eval_report
from launcher.cluster import start_ray
from launcher.config import ExperimentConfig, LearnSection
from launcher.evaluator import Evaluator
from launcher.explore import plan_units, run_units, start_explorers
from launcher.report import write_report
from learner.engine import Batch
from learner.examples import build_examples, load_tokenizer
from learner.group import LearnerGroup
from learner.packing import first_fit_decreasing, packed_batch, padded_batch
from learner.publish import apply_staleness, publish
from replay.buffer import BufferError, Filters, RateLimitTimeout, ReplayBuffer, RoundMix
from replay.episode import Episode
from replay.server import redis_url
from replay.tables import TableConfig
from toolenv.registry import builtin_registry


@dataclass
class RunState:
    """What is done; rewritten after every phase (state.json)."""

    phases: dict[str, list[str]] = field(default_factory=dict)  # round → phases done: explore, exploit, learn, eval
    version: int = 0  # the policy version the explorers hold
    step: int = 0  # learner optimizer steps over the whole run
    round_steps: dict[str, int] = field(default_factory=dict)  # round → its steps done
    checkpoint: str | None = None  # the latest learner checkpoint tag
    round_checkpoints: dict[str, str] = field(default_factory=dict)  # round → its last checkpoint tag
    evaluations: dict[str, dict] = field(default_factory=dict)  # "base" / "round r" → evaluator summary

    @classmethod
    def load(cls, run_dir: Path) -> RunState:
        path = run_dir / "state.json"
        return cls(**json.loads(path.read_text())) if path.exists() else cls()

    def save(self, run_dir: Path) -> None:
        temp = run_dir / "state.json.tmp"
        temp.write_text(json.dumps(asdict(self), indent=1))
        temp.replace(run_dir / "state.json")

    def done(self, round: int, phase: str) -> bool:
        return phase in self.phases.get(str(round), [])

    def mark(self, round: int, phase: str, run_dir: Path) -> None:
        self.phases.setdefault(str(round), []).append(phase)
        self.save(run_dir)


class Metrics:
    """metrics.jsonl: one line per event, with the time; what the report's plots are drawn from."""

    def __init__(self, path: Path):
        self.path = path

    def log(self, **event) -> None:
        with self.path.open("a") as out:
            out.write(json.dumps({"time": round(time.time(), 3), **event}) + "\n")


def run_experiment(config: ExperimentConfig, run_dir: Path, console: Console, resume: bool = False) -> Path:
    """Run (or, with `resume`, continue) the experiment in `run_dir`; returns the report's path."""
    try:
        return _run(config, run_dir, console, RunState.load(run_dir) if resume else RunState())
    finally:
        ray.shutdown()  # a local Ray stops with it; on a cluster this only disconnects


def _run(config: ExperimentConfig, run_dir: Path, console: Console, state: RunState) -> Path:
    registry = builtin_registry()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    metrics = Metrics(run_dir / "metrics.jsonl")
    tools = config.tools.by_round(registry)
    train_table = f"{config.buffer.table}-train"
    budget = Budget(**config.explore.budget.model_dump())
    with redis_url(config.redis.url, run_dir) as url:
        buffer = ReplayBuffer(url, seed=config.seed)
        buffer.ping()
        buffer.create_table(TableConfig(name=config.buffer.table, max_size=config.buffer.max_size,
                                        rate_limiter=config.buffer.rate_limiter))
        buffer.create_table(TableConfig(name=train_table, max_size=config.buffer.max_size))
        start_ray(config.ray.address, config.ray.num_cpus)
        model_dir = model_folder(config.model.path)  # here for the tokenizer; every actor prepares its own node's
        console.print(f"run folder {run_dir}; model {model_dir}; Redis {url.split('@')[-1]}")

        ste = STEConfig(trials_per_session=config.explore.trials_per_session,
                        use_long_term_memory=config.explore.use_long_term_memory,
                        imagination=config.explore.imagination, queries_per_call=config.explore.queries_per_call,
                        max_optional_arguments=config.explore.max_optional_arguments,
                        calls_per_session=config.explore.calls_per_session, show_memory=config.explore.show_memory,
                        seed=config.seed,
                        describe=replace(STEConfig().describe, temperature=config.explore.request_temperature),
                        solve=Sampling(temperature=0.4, max_new_tokens=config.explore.max_new_tokens))
        explorer_config = ExplorerConfig(redis_url=url, table=config.buffer.table, model=config.model.path,
                                         threads=config.explore.threads, strategy=config.explore.strategy,
                                         budget=budget, ste=ste, seed=config.seed)
        explorers = start_explorers(explorer_config, config.explore.actors, config.explore.max_restarts,
                                    num_cpus=config.explore.threads, resources=config.explore.resources)
        evaluator = ray.remote(Evaluator).options(num_cpus=1).remote(
            config.model.path, config.eval.threads, config.eval.strategy, budget, config.seed, config.eval.max_new_tokens)
        learner = LearnerGroup(config.model.path, config.learn.learner_config(), prepare=model_folder)
        tokenizer = load_tokenizer(model_dir)
        policies = [*explorers, evaluator]
        if state.checkpoint:
            learner.load_checkpoint(run_dir / "checkpoints", state.checkpoint)
            publish(state.version, learner.state_dict_ref(), policies)
            console.print(f"resumed at learner step {state.step}, policy version {state.version}")

        def evaluate(label: str, upto: int | None = None) -> None:
            """On every round's tools up to `upto` (None: all): the base model is the baseline of every round,
            a trained model is scored on what it has learned so far, not yet on tools it has never seen."""
            names = [name for r in config.tools.rounds if upto is None or r <= upto for name in tools[r]]
            console.print(f"[bold]evaluating[/] ({label}) on {len(names)} tools")
            report = ray.get(evaluator.evaluate.remote(names, config.eval.limit_per_tool))
            report["meta"] = {"model": label, **report["meta"]}
            # every query's calls and flags, for reading a failure back or `imaginarium eval compare`
            write_eval_report(report, builtin_markdown(report), run_dir / "eval", label.replace(" ", "-"))
            version = report["meta"]["version"]
            state.evaluations[label] = {"version": version, **{key: report[key] for key in ("summary", "by_round", "by_tool")}}
            metrics.log(event="eval", label=label, version=version, **report["summary"])
            state.save(run_dir)

        if config.eval.baseline and "base" not in state.evaluations:
            evaluate("base")
        for r in config.tools.rounds:
            if not state.done(r, "explore"):
                have = len(buffer.ids(config.buffer.table, Filters(round=r)))
                target = config.explore.episodes_per_tool * len(tools[r])
                console.print(f"[bold]round {r}[/]: exploring {', '.join(tools[r])} ({have} of {target} episodes there)")
                if target > have:
                    units = plan_units(tools[r], target - have, config.explore.trials_per_session,
                                       config.explore.sessions_per_call)
                    totals = run_units(explorers, units, config.explore.trials_per_session)
                    metrics.log(event="explore", round=r, **totals)
                state.mark(r, "explore", run_dir)
            if not state.done(r, "exploit"):
                counts = ray.get(explorers[0].exploit.remote(r, train_table, config.exploit.duplicate_threshold,
                                                             config.exploit.paraphrases, config.exploit.filter,
                                                             config.exploit.keep_calls_without_answer,
                                                             config.exploit.max_per_call))
                console.print(f"round {r}: exploitation " + ", ".join(f"{k} {v}" for k, v in counts.items()))
                metrics.log(event="exploit", round=r, **counts)
                state.mark(r, "exploit", run_dir)
            if not state.done(r, "learn"):
                learn_round(config, r, state, learner, buffer, train_table, tokenizer, policies, metrics, run_dir, console)
                learner.export_pretrained(run_dir / "models" / f"round-{r}")  # `imaginarium eval --model` reads it
                state.mark(r, "learn", run_dir)
            if not state.done(r, "eval"):
                evaluate(f"round {r}", upto=r)
                state.mark(r, "eval", run_dir)
            previous = state.round_checkpoints.get(str(r - 1)) if r != config.tools.rounds[0] else None
            if config.learn.compare_no_replay and previous and not state.done(r, "no_replay"):
                learn_without_replay(config, r, previous, state, learner, buffer, train_table, tokenizer, evaluator,
                                     metrics, run_dir, console)
                evaluate(f"round {r} no replay", upto=r)
                learner.load_checkpoint(run_dir / "checkpoints", state.checkpoint)  # back to the replay lineage
                publish(state.version, learner.state_dict_ref(), [evaluator])
                state.mark(r, "no_replay", run_dir)
            write_report(run_dir, config, tools, state.evaluations, buffer.stats(config.buffer.table),
                         buffer.stats(train_table), run_dir / "metrics.jsonl")
        final = run_dir / "model"  # the last round's export, under a name that does not change
        if not final.exists() and (run_dir / "models" / f"round-{config.tools.rounds[-1]}").is_dir():
            final.symlink_to(Path("models") / f"round-{config.tools.rounds[-1]}")
        report = write_report(run_dir, config, tools, state.evaluations, buffer.stats(config.buffer.table),
                              buffer.stats(train_table), run_dir / "metrics.jsonl")
        learner.shutdown()
        for actor in policies:
            ray.kill(actor)
    return report


def learn_round(config: ExperimentConfig, r: int, state: RunState, learner: LearnerGroup, buffer: ReplayBuffer,
                table: str, tokenizer, policies: list, metrics: Metrics, run_dir: Path, console: Console) -> None:
    """`round_steps` optimizer steps on batches with STE's replay mix; publish and checkpoint as configured."""
    learn = config.learn
    stats = buffer.stats(table)
    if stats.size == 0:
        console.print(f"round {r}: [yellow]nothing kept to learn from yet; skipping training[/]")
        metrics.log(event="learn_skipped", round=r)
        return
    start = state.step
    steps = round_steps(learn, stats.by_index.get(f"round={r}", 0),
                        learn.replay_fraction if r != config.tools.rounds[0] else 0.0)
    for local_step in range(state.round_steps.get(str(r), 0), steps):
        try:
            drawn = draw_batch(config, r, learn.replay_fraction, state.version, buffer, table, tokenizer)
        except (RateLimitTimeout, BufferError) as error:
            console.print(f"round {r}: [yellow]stopped training early: {error}[/]")
            break
        if drawn.batch is None:
            metrics.log(event="batch_skipped", round=r,
                        reason=f"{drawn.skipped} of {len(drawn.episodes)} episodes too long")
            continue
        batch, episodes = drawn.batch, drawn.episodes
        loss = learner.train_step(batch.model_inputs())
        state.step += 1
        state.round_steps[str(r)] = local_step + 1
        replayed = sum(1 for e in episodes if e.round < r)
        metrics.log(event="train", round=r, step=state.step, loss=loss, examples=drawn.examples,
                    tokens=batch.label_count, replayed=replayed, skipped=drawn.skipped,
                    version_lag=[state.version - e.policy_version for e in episodes])
        if state.step % learn.publish_every == 0 or local_step == steps - 1:
            state.version += 1
            started = time.perf_counter()
            publish(state.version, learner.state_dict_ref(), policies)
            metrics.log(event="publish", round=r, version=state.version, seconds=round(time.perf_counter() - started, 3))
        if learn.checkpoint_every and state.step % learn.checkpoint_every == 0:
            _checkpoint(learner, state, run_dir, r)
    _checkpoint(learner, state, run_dir, r)
    console.print(f"round {r}: trained to step {state.step}, policy version {state.version} (from step {start})")


def round_steps(learn: LearnSection, new_episodes: int, replay_fraction: float) -> int:
    """`steps_per_round`, or fewer where that would pass over the round's new episodes more than `max_epochs`
    times (a batch holds micro_batch × ranks × grad_accum episodes, `replay_fraction` of them replayed)."""
    if learn.max_epochs is None:
        return learn.steps_per_round
    new_per_step = max(1.0, learn.micro_batch * learn.ranks * learn.grad_accum * (1 - replay_fraction))
    return max(1, min(learn.steps_per_round, math.ceil(learn.max_epochs * new_episodes / new_per_step)))


@dataclass
class Drawn:
    batch: Batch | None  # None: too few of the drawn episodes fit in max_tokens for every rank to get a row
    episodes: list[Episode]
    examples: int
    skipped: int


def draw_batch(config: ExperimentConfig, r: int, replay_fraction: float, version: int, buffer: ReplayBuffer,
               table: str, tokenizer) -> Drawn:
    """One optimizer step's batch: sampled with STE's replay mix, stale episodes handled, packed when it fills
    every rank's rows. Raises RateLimitTimeout / BufferError when the buffer cannot give a batch."""
    learn = config.learn
    rows_needed = learn.ranks * learn.grad_accum  # every rank gets at least one row per micro batch
    drawn = buffer.sample(table, learn.micro_batch * rows_needed, round_mix=RoundMix(r, replay_fraction), timeout=60)
    episodes, weights = apply_staleness([s.episode for s in drawn], version, learn.staleness_cap, learn.staleness_policy)
    weight_of = {episode.id: weight for episode, weight in zip(episodes, weights)}
    examples, skipped = build_examples(episodes, tokenizer, learn.max_tokens)
    examples = [replace(example, weight=weight_of[example.episode_id]) for example in examples]
    if len(examples) < rows_needed:
        return Drawn(None, episodes, len(examples), len(skipped))
    rows = first_fit_decreasing(examples, learn.max_tokens)
    batch = packed_batch(rows, tokenizer.pad_token_id or 0) if len(rows) >= rows_needed else \
        padded_batch(examples, tokenizer.pad_token_id or 0)
    return Drawn(batch, episodes, len(examples), len(skipped))


def learn_without_replay(config: ExperimentConfig, r: int, previous: str, state: RunState, learner: LearnerGroup,
                         buffer: ReplayBuffer, table: str, tokenizer, evaluator, metrics: Metrics, run_dir: Path,
                         console: Console) -> None:
    """The ablation: round r trained again from the end of round r-1, on round r's episodes only.

    Only the evaluator gets these weights (the explorers keep the replay lineage), and nothing is
    checkpointed: the run itself goes on from the replay lineage's checkpoint.
    """
    learner.load_checkpoint(run_dir / "checkpoints", previous)
    for step in range(round_steps(config.learn, buffer.stats(table).by_index.get(f"round={r}", 0), 0.0)):
        try:
            drawn = draw_batch(config, r, 0.0, state.version, buffer, table, tokenizer)
        except (RateLimitTimeout, BufferError) as error:
            console.print(f"round {r}, no replay: [yellow]stopped training early: {error}[/]")
            break
        if drawn.batch is not None:
            loss = learner.train_step(drawn.batch.model_inputs())
            metrics.log(event="train_no_replay", round=r, step=step + 1, loss=loss, examples=drawn.examples)
    publish(state.version, learner.state_dict_ref(), [evaluator])
    console.print(f"round {r}: trained without replay from checkpoint {previous}")


def _checkpoint(learner: LearnerGroup, state: RunState, run_dir: Path, r: int) -> None:
    """Save the learner, then the state that matches it: a resume starts from exactly this point."""
    folder = learner.save_checkpoint(run_dir / "checkpoints", {"step": state.step, "version": state.version, "round": r})
    state.checkpoint = folder.name
    state.round_checkpoints[str(r)] = folder.name
    state.save(run_dir)
