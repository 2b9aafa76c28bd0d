"""`imaginarium run CONFIG`: the continual tool-learning experiment, round after round, in one of two schedules.

- `Rounds` (STE's protocol): per round r, explore round r's tools → exploit (filter, paraphrase) into the
  train table → learn with STE's replay of earlier rounds → evaluate on the gold sets of rounds up to r.
- `Continual` (the actor–learner system): per round, explorers stream trials, each trial's kept episodes
  go to the train table as they arrive, and the learner trains from it meanwhile, under the table's rate
  limiter, publishing weights every `publish_every` steps; the round's evaluation runs on its own actor
  while the next round explores.
Both train through `learner.data.train_loop`. What is done is recorded in `state.json` (after each phase,
and with every checkpoint), so `--resume` continues where the run stopped, mid-round included.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ray
import yaml
from rich.console import Console

from actors.explorer import ExplorerConfig, StreamSelection
from actors.model import model_folder
from evaluation.evaluator import Evaluator
from evaluation.report import builtin_markdown
from evaluation.report import write_report as write_eval_report
from launcher.cluster import start_ray
from launcher.config import ExperimentConfig, LearnSection, tools_registry
from launcher.explore import plan_units, run_units, start_explorers
from launcher.report import ICL, write_report
from learner.data import StepRecord, draw_batch, train_loop
from learner.examples import load_tokenizer
from learner.group import LearnerGroup
from learner.publish import publish
from replay.buffer import Filters, ReplayBuffer, RoundMix
from replay.server import redis_url
from replay.tables import TableConfig


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
    """metrics.jsonl (one line per event, with the time: what the report's plots are drawn from) and the same
    numbers as TensorBoard scalars in `tensorboard/` (`tensorboard --logdir runs/`)."""

    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.path = run_dir / "metrics.jsonl"
        self.board = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, step: int | None = None, **event) -> None:
        """One event; with `step`, its numbers also go to TensorBoard at that learner step."""
        with self.path.open("a") as out:
            out.write(json.dumps({"time": round(time.time(), 3), **({"step": step} if step is not None else {}),
                                  **event}) + "\n")
        if step is not None:
            for key, value in event.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("round", "step"):
                    self.board.add_scalar(f"{event['event']}/{key}", value, step)

    def close(self) -> None:
        self.board.close()


def run_experiment(config: ExperimentConfig, run_dir: Path, console: Console, resume: bool = False) -> Path:
    """Run (or, with `resume`, continue) the experiment in `run_dir`; returns the report's path."""
    try:
        return _run(config, run_dir, console, RunState.load(run_dir) if resume else RunState())
    finally:
        ray.shutdown()  # a local Ray stops with it; on a cluster this only disconnects


@dataclass
class Run:
    """Everything a schedule works with: the config, the state, the buffer and the actors, wired by `_run`."""

    config: ExperimentConfig
    run_dir: Path
    console: Console
    state: RunState
    metrics: Metrics
    tools: dict[int, list[str]]
    buffer: ReplayBuffer
    learner: LearnerGroup
    students: list  # the explorers that run the student: they take every published version
    evaluator: object
    tokenizer: object
    explorers: list  # all of them, students or teachers
    pending: list[tuple[str, object]] = field(default_factory=list)  # evaluations running on the evaluator
    published_step: int = 0

    @property
    def train_table(self) -> str:
        return self.config.buffer.train_table

    def explored(self, r: int) -> int:
        return self.buffer.stats(self.config.buffer.table).count("round", r)

    def publish(self, r: int, handles: list) -> None:
        """The learner's weights as the next policy version, to `handles` (explorers; the evaluator too in rounds)."""
        self.state.version += 1
        started = time.perf_counter()
        publish(self.state.version, self.learner.state_dict_ref(), handles)
        self.published_step = self.state.step
        self.metrics.log(step=self.state.step, event="publish", round=r, version=self.state.version,
                         seconds=round(time.perf_counter() - started, 3))

    def train(self, r: int, steps: int, mix: RoundMix, *, publish_to: list, wait_while=lambda: False,
              on_step=lambda: None, min_current: int = 0) -> None:
        """The run's side of `train_loop`: state, metrics, publishing and checkpoints after every step."""
        learn = self.config.learn

        def after_step(record: StepRecord) -> None:
            self.state.round_steps[str(r)] = record.step
            if record.loss is None:
                self.metrics.log(event="batch_skipped", round=r,
                                 reason=f"{record.skipped} of {len(record.episodes)} episodes too long")
                return
            self.state.step += 1
            self.metrics.log(step=self.state.step, event="train", round=r, loss=record.loss, examples=record.examples,
                             tokens=record.tokens, replayed=sum(1 for e in record.episodes if e.round < r),
                             skipped=record.skipped, version_lag=[self.state.version - e.policy_version
                                                                  for e in record.episodes],
                             idle=round(record.waited_s / record.seconds, 4), seconds=round(record.seconds, 3),
                             tokens_per_s=round(record.tokens / record.seconds, 1),
                             samples_per_insert=round(record.samples_per_insert, 3))
            if self.state.step % learn.publish_every == 0:
                self.publish(r, publish_to)
            if learn.checkpoint_every and self.state.step % learn.checkpoint_every == 0:
                _checkpoint(self.learner, self.state, self.run_dir, r)
            on_step()

        draw = lambda timeout: draw_batch(self.buffer, self.train_table, self.tokenizer, learn, learn.max_tokens, mix,
                                          self.state.version, timeout, min_current)
        result = train_loop(self.learner, draw, steps, self.state.round_steps.get(str(r), 0), after_step=after_step,
                            wait_while=wait_while)
        if result.stopped == "empty" or result.steps == 0:
            self.console.print(f"round {r}: [yellow]nothing kept to learn from; no training[/]")
        self.metrics.log(event="learn", round=r, steps=result.steps, ended=result.stopped,
                         idle=round(result.waited_s / max(result.seconds, 1e-9), 4), seconds=round(result.seconds, 1))
        if self.published_step != self.state.step:
            self.publish(r, publish_to)  # the round's last weights, for the next round's explorers
        _checkpoint(self.learner, self.state, self.run_dir, r)
        self.learner.export_pretrained(self.run_dir / "models" / f"round-{r}")  # `imaginarium eval --model` reads it
        self.console.print(f"round {r}: trained to step {self.state.step}, policy version {self.state.version} "
                           f"({result.stopped})")

    def submit_evaluation(self, label: str, upto: int | None = None) -> None:
        """Evaluate the evaluator's current weights on every round's tools up to `upto` (None: all), on its own
        actor: the result is collected later (`collect_evaluations`), so the next round can explore meanwhile.
        The base model is the baseline of every round; a trained model is scored on what it has learned so far."""
        names = [name for r in self.config.tools.rounds if upto is None or r <= upto for name in self.tools[r]]
        self.console.print(f"[bold]evaluating[/] ({label}) on {len(names)} tools")
        self.pending.append((label, self.evaluator.evaluate.remote(names)))

    def collect_evaluations(self) -> None:
        for label, ref in self.pending:
            report = ray.get(ref)
            report["meta"] = {"model": label, **report["meta"]}
            # every query's calls and flags, for reading a failure back or `imaginarium eval compare`
            write_eval_report(report, builtin_markdown(report), self.run_dir / "eval", label.replace(" ", "-"))
            version = report["meta"]["version"]
            self.state.evaluations[label] = {"version": version,
                                             **{key: report[key] for key in ("summary", "by_round", "by_tool")}}
            self.metrics.log(event="eval", label=label, version=version, **report["summary"])
            if label.startswith("round ") and not label.endswith("no replay"):
                self.state.mark(int(label.split()[1]), "eval", self.run_dir)
            self.state.save(self.run_dir)
        self.pending.clear()

    def evaluate(self, label: str, upto: int | None = None) -> None:
        self.submit_evaluation(label, upto)
        self.collect_evaluations()

    def report(self) -> Path:
        return write_report(self.run_dir, self.config, self.tools, self.state.evaluations,
                            self.buffer.stats(self.config.buffer.table), self.buffer.stats(self.train_table),
                            self.metrics.path)


class Rounds:
    """STE's protocol: explore → exploit → learn → evaluate, one after another, each phase recorded as done."""

    def round(self, run: Run, r: int) -> None:
        config, state = run.config, run.state
        if not state.done(r, "explore"):
            have, target = run.explored(r), config.explore.episodes_per_tool * len(run.tools[r])
            run.console.print(f"[bold]round {r}[/]: exploring {', '.join(run.tools[r])} ({have} of {target} episodes there)")
            if target > have:
                units = plan_units(run.tools[r], target - have, config.explore.trials_per_session,
                                   config.explore.sessions_per_call)
                totals = run_units(run.explorers, units, config.explore.trials_per_session)
                run.metrics.log(event="explore", round=r, **totals)
            state.mark(r, "explore", run.run_dir)
        if not state.done(r, "exploit"):
            exploit = config.exploit
            counts = ray.get(run.explorers[0].exploit.remote(r, run.train_table, exploit.duplicate_threshold,
                                                             exploit.paraphrases, exploit.filter,
                                                             exploit.keep_calls_without_answer, exploit.max_per_call))
            run.console.print(f"round {r}: exploitation " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            run.metrics.log(event="exploit", round=r, **counts)
            state.mark(r, "exploit", run.run_dir)
        if not state.done(r, "learn"):
            replay = config.learn.replay_fraction if r != config.tools.rounds[0] else 0.0
            steps = round_steps(config.learn, run.buffer.stats(run.train_table).count("round", r), replay)
            run.train(r, steps, RoundMix(r, config.learn.replay_fraction), publish_to=[*run.students, run.evaluator])
            state.mark(r, "learn", run.run_dir)
        if not state.done(r, "eval"):
            run.evaluate(f"round {r}", upto=r)


class Continual:
    """The actor–learner system: within a round, explorers stream trials into the buffer while the learner trains
    from the train table under its rate limiter, and weights go out every `publish_every` steps.

    A round ends when its explorers have pushed `episodes_per_tool` × tools episodes or the learner has done
    `steps_per_round` steps, whichever comes first; the learner then trains on what the limiter still allows,
    up to `steps_per_round`.
    The round's evaluation runs on the evaluator while the next round explores.
    """

    def round(self, run: Run, r: int) -> None:
        config, state = run.config, run.state
        if not state.done(r, "stream"):
            self._stream(run, r)
            state.mark(r, "stream", run.run_dir)
        if not state.done(r, "eval"):
            run.collect_evaluations()  # the previous round's, before the evaluator takes this round's weights
            publish(state.version, run.learner.state_dict_ref(), [run.evaluator])
            run.submit_evaluation(f"round {r}", upto=r)

    def _stream(self, run: Run, r: int) -> None:
        from ray.exceptions import RayActorError

        config = run.config
        target = config.explore.episodes_per_tool * len(run.tools[r])
        run.console.print(f"[bold]round {r}[/]: exploring {', '.join(run.tools[r])} while learning "
                          f"({run.explored(r)} of {target} episodes there)")
        selection = StreamSelection(config.exploit.filter, config.exploit.duplicate_threshold,
                                    config.exploit.keep_calls_without_answer, config.exploit.max_per_call)
        start = lambda explorer: explorer.stream.remote(r, run.tools[r], run.train_table, selection,
                                                        config.explore.sessions_per_call)
        streams = {i: start(e) for i, e in enumerate(run.explorers)} if run.explored(r) < target else {}
        totals: dict[int, dict] = {}
        stopped, last_log = not streams, 0.0

        def stop_explorers() -> None:
            nonlocal stopped
            if not stopped:
                ray.get([explorer.stop.remote() for explorer in run.explorers])
                stopped = True

        def exploring() -> bool:
            """Whether explorers still push: stopped once the round's episodes are in; one that died is restarted by
            Ray and streams again (its pushed trials are in the buffer); logs their progress every 10 s."""
            nonlocal last_log
            ready, _ = ray.wait(list(streams.values()), num_returns=len(streams), timeout=0) if streams else ([], [])
            for i in [i for i, ref in streams.items() if ref in ready]:
                try:
                    totals[i] = ray.get(streams.pop(i))
                except RayActorError:
                    run.metrics.log(event="explorer_restart", round=r, explorer=i)
                    if not stopped:
                        streams[i] = start(run.explorers[i])
            now = time.monotonic()
            if not stopped and run.explored(r) >= target:  # every call: explorers overshoot by what they push meanwhile
                stop_explorers()
            if not stopped and now - last_log > 10.0:
                last_log = now
                self._log_explorers(run, r)
            return bool(streams)

        try:
            run.train(r, config.learn.steps_per_round, RoundMix(r, config.learn.replay_fraction),
                      publish_to=run.students, wait_while=exploring, on_step=exploring,
                      min_current=config.buffer.rate_limiter.min_size_to_sample)
        finally:
            stop_explorers()
        while exploring():
            time.sleep(0.1)
        self._log_explorers(run, r, totals)
        if totals:
            run.console.print(f"round {r}: explored " + ", ".join(
                f"{key} {sum(t.get(key, 0) for t in totals.values()):g}"
                for key in ("episodes", "kept", "solved", "failed")))

    @staticmethod
    def _log_explorers(run: Run, r: int, progress: dict[int, dict] | None = None) -> None:
        """Per explorer: idle ratio (time held back by the limiter ÷ wall time), episodes/s, tokens/s, version lag."""
        if progress is None:
            progress = dict(enumerate(ray.get([explorer.progress.remote() for explorer in run.explorers])))
        for i, counters in progress.items():
            wall = max(counters.get("wall_s", 0.0), 1e-9)
            run.metrics.log(step=run.state.step, event=f"explorer-{i}", round=r,
                            idle=round(counters.get("waited_s", 0.0) / wall, 4),
                            episodes=counters.get("episodes", 0), kept=counters.get("kept", 0),
                            episodes_per_s=round(counters.get("episodes", 0) / wall, 4),
                            tokens_per_s=round(counters.get("tokens", 0) / wall, 1),
                            version_lag=run.state.version - counters.get("version", run.state.version))


SCHEDULES = {"rounds": Rounds, "continual": Continual}


def _run(config: ExperimentConfig, run_dir: Path, console: Console, state: RunState) -> Path:
    registry = tools_registry(config, run_dir / "config.yaml")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    metrics = Metrics(run_dir)
    tools = config.tools.by_round(registry)
    with redis_url(config.redis.url, run_dir) as url:
        buffer = ReplayBuffer(url, seed=config.seed)
        buffer.ping()
        buffer.create_table(TableConfig(name=config.buffer.table, max_size=config.buffer.max_size))
        buffer.create_table(TableConfig(name=config.buffer.train_table, max_size=config.buffer.max_size,
                                        rate_limiter=config.buffer.rate_limiter))
        start_ray(config.ray.address, config.ray.num_cpus)
        model_dir = model_folder(config.model.path)  # here for the tokenizer; every actor prepares its own node's
        console.print(f"run folder {run_dir}; model {model_dir}; Redis {url.split('@')[-1]}; schedule {config.schedule}")

        tool_rounds = config.tools.by_round(registry) if config.tools.names is not None else None
        explorer_config = ExplorerConfig(redis_url=url, table=config.buffer.table, threads=config.explore.threads,
                                         strategy=config.explore.strategy, budget=config.explore.budget,
                                         finish=config.explore.finish, ste=config.explore.ste(), seed=config.seed,
                                         tool_sources=tuple(config.tools.sources), tool_rounds=tool_rounds,
                                         **explorer_model(config))
        explorers = start_explorers(explorer_config, config.explore.actors, config.explore.max_restarts,
                                    num_cpus=config.explore.threads, resources=config.explore.resources)
        evaluator = start_evaluator(config, tool_rounds)
        learner = LearnerGroup(config.model.path, config.learn.learner_config(), prepare=model_folder)
        # which kernels ran: bf16 or fp32, and the CPU capability PyTorch dispatched to (AVX2, AVX-512...)
        metrics.log(event="precision", precision=learner.precision, cpu=cpu_capability())
        students = [] if explorer_config.teacher else explorers  # a teacher never takes the student's weights
        run = Run(config, run_dir, console, state, metrics, tools, buffer, learner, students, evaluator,
                  load_tokenizer(model_dir), explorers)
        if state.checkpoint:
            learner.load_checkpoint(run_dir / "checkpoints", state.checkpoint)
            publish(state.version, learner.state_dict_ref(), [*students, evaluator])
            run.published_step = state.step
            console.print(f"resumed at learner step {state.step}, policy version {state.version}")
        schedule = SCHEDULES[config.schedule]()
        if config.eval.baseline and "base" not in state.evaluations:
            run.evaluate("base")
        for r in config.tools.rounds:
            if not state.done(r, "eval") and any(state.done(later, p) for later in config.tools.rounds if later > r
                                                 for p in ("stream", "explore")):
                _evaluate_from_checkpoint(run, r)  # resumed after its evaluation was lost with the stopped run
            schedule.round(run, r)
            previous = state.round_checkpoints.get(str(r - 1)) if r != config.tools.rounds[0] else None
            if config.learn.compare_no_replay and previous and not state.done(r, "no_replay"):
                learn_without_replay(run, r, previous)
            run.report()
        run.collect_evaluations()
        if config.eval.icl_k is not None and ICL not in state.evaluations:
            evaluate_in_context(run, tool_rounds)
        final = run_dir / "model"  # the last round's export, under a name that does not change
        if not final.exists() and (run_dir / "models" / f"round-{config.tools.rounds[-1]}").is_dir():
            final.symlink_to(Path("models") / f"round-{config.tools.rounds[-1]}")
        report = run.report()
        metrics.close()
        learner.shutdown()
        for actor in [*explorers, run.evaluator]:
            ray.kill(actor)
    return report


def cpu_capability() -> str:
    """The CPU kernels PyTorch dispatches to here (ATEN_CPU_CAPABILITY can lower them): results differ by them."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def start_evaluator(config: ExperimentConfig, tool_rounds: dict | None):
    """The evaluation actor, on the base model until weights are published to it."""
    return ray.remote(Evaluator).options(num_cpus=1).remote(
        config.model.path, config.eval, config.explore.budget, config.explore.finish, config.seed,
        tuple(config.tools.sources), tool_rounds)


def evaluate_in_context(run: Run, tool_rounds: dict | None) -> None:
    """STE's in-context learning beside fine-tuning: the base model (a fresh evaluator) scored on every round's
    tools with the `eval.icl_k` kept episodes most similar to each query as demonstrations."""
    ray.kill(run.evaluator)  # done with the fine-tuned lineage; the base model takes its place
    run.evaluator = start_evaluator(run.config, tool_rounds)
    names = [name for r in run.config.tools.rounds for name in run.tools[r]]
    run.console.print(f"[bold]evaluating[/] ({ICL}, {run.config.eval.icl_k} demonstrations) on {len(names)} tools")
    run.pending.append((ICL, run.evaluator.evaluate.remote(names, icl_from=(run.buffer.url, run.train_table))))
    run.collect_evaluations()


def explorer_model(config: ExperimentConfig) -> dict:
    """ExplorerConfig's model fields: the student (`model.path`), or the teacher `explore.model` names."""
    teacher = config.explore.model
    if teacher is None:
        return {"model": config.model.path}
    if isinstance(teacher, str):
        return {"model": teacher, "teacher": teacher}
    endpoint = teacher.endpoint
    return {"model": config.model.path, "endpoint": endpoint.model_dump(), "teacher": f"{endpoint.model}@{endpoint.base_url}"}


def round_steps(learn: LearnSection, new_episodes: int, replay_fraction: float) -> int:
    """`steps_per_round`, or fewer where that would pass over the round's new episodes more than `max_epochs`
    times (a batch holds micro_batch × ranks × grad_accum episodes, `replay_fraction` of them replayed)."""
    if learn.max_epochs is None:
        return learn.steps_per_round
    new_per_step = max(1.0, learn.batch_size * (1 - replay_fraction))
    return max(1, min(learn.steps_per_round, math.ceil(learn.max_epochs * new_episodes / new_per_step)))


def learn_without_replay(run: Run, r: int, previous: str) -> None:
    """The ablation: round r trained again from the end of round r-1, on round r's episodes only, and evaluated.

    Only the evaluator gets these weights (the explorers keep the replay lineage), and nothing is checkpointed:
    the run itself goes on from the replay lineage's checkpoint.
    """
    state, learner = run.state, run.learner
    learner.load_checkpoint(run.run_dir / "checkpoints", previous)
    steps = round_steps(run.config.learn, run.buffer.stats(run.train_table).count("round", r), 0.0)
    draw = lambda timeout: draw_batch(run.buffer, run.train_table, run.tokenizer, run.config.learn,
                                      run.config.learn.max_tokens, RoundMix(r, 0.0), state.version, timeout)
    log = lambda record: record.loss is not None and run.metrics.log(
        step=record.step, event="train_no_replay", round=r, loss=record.loss, examples=record.examples)
    train_loop(learner, draw, steps, after_step=log)
    run.collect_evaluations()  # the evaluator must be done with the replay lineage before it takes these weights
    publish(state.version, learner.state_dict_ref(), [run.evaluator])
    run.evaluate(f"round {r} no replay", upto=r)
    learner.load_checkpoint(run.run_dir / "checkpoints", state.checkpoint)  # back to the replay lineage
    publish(state.version, learner.state_dict_ref(), [run.evaluator])
    state.mark(r, "no_replay", run.run_dir)
    run.console.print(f"round {r}: trained without replay from checkpoint {previous}")


def _evaluate_from_checkpoint(run: Run, r: int) -> None:
    """Round r's evaluation from its checkpoint: the run stopped while it was running beside round r+1."""
    run.learner.load_checkpoint(run.run_dir / "checkpoints", run.state.round_checkpoints[str(r)])
    publish(run.state.version, run.learner.state_dict_ref(), [run.evaluator])
    run.evaluate(f"round {r}", upto=r)
    run.learner.load_checkpoint(run.run_dir / "checkpoints", run.state.checkpoint)
    publish(run.state.version, run.learner.state_dict_ref(), [*run.students, run.evaluator])

def _checkpoint(learner: LearnerGroup, state: RunState, run_dir: Path, r: int) -> None:
    """Save the learner, then the state that matches it: a resume starts from exactly this point."""
    folder = learner.save_checkpoint(run_dir / "checkpoints", {"step": state.step, "version": state.version, "round": r})
    state.checkpoint = folder.name
    state.round_checkpoints[str(r)] = folder.name
    state.save(run_dir)
