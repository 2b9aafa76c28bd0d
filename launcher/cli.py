"""The `imaginarium` command: the one place that knows every part and wires them together."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from evaluation.cli import compare_command, eval_command, evalset_app
from launcher.config import ExploreSection
from replay.cli import app as buffer_app
from replay.cli import fail
from retrieval.cli import app as retriever_app
from toolenv.cli import app as tools_app

EXPLORE = ExploreSection()  # the explore command's defaults are a run's: one model, one set of defaults

app = typer.Typer(help="Imaginarium: teach language models to use tools.", no_args_is_help=True)
app.add_typer(buffer_app, name="buffer")
app.add_typer(tools_app, name="tools")
app.add_typer(retriever_app, name="retriever")
app.add_typer(evalset_app, name="evalset")
app.command("eval")(eval_command)
app.command("compare")(compare_command)
console = Console()


def new_run_dir(name: str, root: Path = Path("runs")) -> Path:
    """runs/<name>-<timestamp>/, with runs/latest pointing at it (the buffer CLI opens `latest` by default)."""
    run_dir = root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir.mkdir(parents=True)
    latest = root / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(run_dir.name)
    return run_dir


@app.command()
def run(
    config_path: Optional[Path] = typer.Argument(None, metavar="CONFIG", help="Experiment YAML (see configs/)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run folder (default: runs/<name>-<time>)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and stop."),
    tools_from: list[str] = typer.Option([], "--tools-from", help="Another tool source, added to the config's "
                                         "tools.sources (repeatable): python:…, openai:…, mcp:…, openapi:…"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Overrides the config's seed (repeat a run on seeds)."),
):
    """Run a continual tool-learning experiment: explore, exploit, learn, publish, evaluate — round after round."""
    from launcher.config import ConfigError, check_config, load_config, tools_registry
    from launcher.run import run_experiment

    if resume is not None:
        if not (resume / "config.yaml").exists():
            fail(f"--resume {resume}: not a run folder (no config.yaml)")
        config_path = resume / "config.yaml"
    if config_path is None:
        fail("give a CONFIG file (e.g. configs/cpu-demo.yaml) or --resume RUN_DIR")
    try:
        config = load_config(config_path)
        if tools_from:
            config.tools.sources += [source for source in tools_from if source not in config.tools.sources]
        if seed is not None:
            if resume is not None:
                fail("--seed starts a new run; a resumed run keeps the seed it started with")
            config.seed = seed
        registry = tools_registry(config, config_path)
        check_config(config_path, config, registry)  # with its tools: every round's, and the learner can start
    except ConfigError as error:
        fail(str(error))
    from evaluation.evalset import EvalSetFileError, load_gold_set

    for path in config.eval.eval_sets:
        try:
            load_gold_set(path, registry)
        except EvalSetFileError as error:
            fail(f"{config_path}: eval.eval_sets: {error.lines[0]}")
    if dry_run:
        console.print(plan(config, registry))
        return
    if run_dir is not None and resume is None:
        if run_dir.exists():
            fail(f"--run-dir {run_dir} exists; use --resume to continue it")
        run_dir.mkdir(parents=True)
    run_dir = resume or run_dir or new_run_dir(config.name)
    try:
        report = run_experiment(config, run_dir, console, resume=resume is not None)
    except KeyboardInterrupt:
        Console(stderr=True).print(f"[yellow]run interrupted[/]; Ray and Redis are stopped; continue it with: "
                                   f"imaginarium run --resume {run_dir}", highlight=False, soft_wrap=True)
        raise typer.Exit(130)
    except Exception as error:  # an actor died or failed, a server went away: say why, and how to continue
        import ray.exceptions

        if not isinstance(error, (ray.exceptions.RayError, ConnectionError, OSError)):
            raise
        log = write_error_log(error, run_dir)
        Console(stderr=True).print(f"[red]run stopped:[/] {stop_reason(error)}\nfull traceback: {log}\n"
                                   f"continue it with: imaginarium run --resume {run_dir}", highlight=False,
                                   soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"report: {report}")


def stop_reason(error: BaseException) -> str:
    """What stopped a run, in one line: the exception raised inside an actor, not Ray's wrapper around it
    (whose first line, "ray::LearnerRank.train_step() (pid=…)", names only the task).

    A RayTaskError carries the actor's exception as `cause` (a chain of them when an actor called another);
    where Ray could not ship the exception (none, or a RayError standing in for one that does not pickle), the
    actor's traceback text is all there is, and its last line names the exception.
    """
    from ray.exceptions import RayError, RayTaskError

    while isinstance(error, RayTaskError) and error.cause is not None and error.cause is not error:
        error = error.cause
    text = error.traceback_str if isinstance(error, RayTaskError) else str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(error, RayError) and "Traceback (most recent call last)" in text:
        return lines[-1]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def write_error_log(error: BaseException, run_dir: Path) -> Path:
    """Append the full traceback (the actor's own, inside a RayTaskError's text) to RUN_DIR/error.log, without
    the terminal colours Ray puts in it."""
    import re
    import traceback

    text = re.sub(r"\x1b\[[0-9;]*m", "", "".join(traceback.format_exception(error)))
    log = run_dir / "error.log"
    with log.open("a") as out:
        out.write(f"=== run stopped {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n{text}\n")
    return log


def plan(config, registry) -> str:
    """What a run will do, in words: actors, resources, rounds, budgets."""
    learn, explore_ = config.learn, config.explore
    lines = [f"experiment {config.name} (seed {config.seed}, schedule {config.schedule})",
             f"  Redis: {config.redis.url or 'embedded redis-server, AOF in the run folder'}",
             f"  Ray: {config.ray.address or 'local'}; model: {config.model.path}",
             f"  explorers: {explore_.actors} × ({explore_.threads} thread(s), {explore_.strategy}, "
             f"{explore_.trials_per_session} trials/session, resources {explore_.resources or 'CPU'})",
             f"  learner: {learn.ranks} rank(s), ZeRO-{learn.zero_stage}, "
             f"{'GPU' if learn.gpus_per_rank else 'CPU/gloo'}{f', resources {learn.resources}' if learn.resources else ''}, "
             f"{learn.steps_per_round} steps/round, micro batch {learn.micro_batch}, replay {learn.replay_fraction:.0%}"
             f"{' (and a no-replay ablation)' if learn.compare_no_replay else ''}, publish every {learn.publish_every}"]
    for r, names in config.tools.by_round(registry).items():
        lines.append(f"  round {r}: {len(names)} tools × {explore_.episodes_per_tool} episodes: {', '.join(names)}")
    lines.append(f"  evaluation: {config.eval.strategy}, {config.eval.limit_per_tool} gold queries per tool, "
                 f"after every round{' and for the base model' if config.eval.baseline else ''}")
    return "\n".join(lines)


@app.command()
def explore(
    tools: str = typer.Option("round:1", help="Comma-separated tool names, or round:N for a round's tools."),
    episodes: int = typer.Option(8, min=1, help="Episodes (trials) to explore in all."),
    actors: int = typer.Option(EXPLORE.actors, min=1, help="Explorer actors (Ray)."),
    model: str = typer.Option("default", help="default (SmolLM2-135M-Instruct), tiny, or a model path."),
    endpoint: Optional[str] = typer.Option(None, help="Explore through an OpenAI-compatible server instead: its base "
                                                      "URL (e.g. http://127.0.0.1:8000/v1); --model names its model."),
    api_key_env: Optional[str] = typer.Option(None, help="With --endpoint: the environment variable holding its key."),
    tools_from: list[str] = typer.Option(["builtin"], "--tools-from", help="A tool source (repeatable): builtin, "
                                         "python:…, openai:FILE, toolbench:DIR, mcp:COMMAND …, mcp+http://…, openapi:…"),
    strategy: str = typer.Option(EXPLORE.strategy, help="react | react@N | dfsdt"),
    trials: int = typer.Option(EXPLORE.trials_per_session, min=1, help="Trials per STE session (short-term memory slots)."),
    imagination: str = typer.Option(EXPLORE.imagination.kind, help="docs (STE: a query from the documentation) | call (an example "
                                                 "call first, run, then the request it answers: small models)"),
    sessions_per_call: int = typer.Option(EXPLORE.sessions_per_call, min=1, help="Sessions each actor runs side by side (batch size)."),
    table: str = typer.Option("explore"),
    redis_: Optional[str] = typer.Option(None, "--redis", envvar="IMAGINARIUM_REDIS_URL",
                                         help="Redis URL; default: an embedded server in the run folder."),
    run_dir: Optional[Path] = typer.Option(None, help="Run folder (default: a new runs/explore-<time>)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join a Ray cluster (default: local Ray)."),
    threads: int = typer.Option(EXPLORE.threads, min=1, help="Torch threads per actor."),
):
    """Explore tools by simulated trial and error and write the episodes into the replay buffer."""
    from actors.explorer import ExplorerConfig
    from actors.search import make_strategy
    from actors.ste import STEConfig
    from launcher.cluster import start_ray
    from launcher.explore import plan_units, run_units, start_explorers
    from replay.buffer import BufferError, ReplayBuffer
    from replay.server import redis_url
    from replay.tables import TableConfig
    from toolenv.sources import SourceError, load_tools

    try:
        registry = load_tools(tools_from)
    except SourceError as error:
        fail(f"--tools-from: {error}")
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        fail(f"--endpoint {endpoint}: give the server's base URL, e.g. http://127.0.0.1:8000/v1")
    if tools.startswith("round:"):
        if not tools[6:].isdigit() or not registry.by_round(int(tools[6:])):
            fail(f"--tools {tools}: no such round (rounds: {', '.join(map(str, registry.rounds()))})")
        names = [t.name for t in registry.by_round(int(tools[6:]))]
    else:
        names = [n.strip() for n in tools.split(",") if n.strip()]
        unknown = [n for n in names if n not in registry]
        if unknown or not names:
            fail(f"--tools: unknown tool(s) {', '.join(unknown) or '(none given)'}; see `imaginarium tools list`")
    try:
        make_strategy(strategy)
    except ValueError as error:
        fail(str(error))
    if imagination not in ("docs", "call"):
        fail(f"--imagination {imagination}: use docs or call")
    run_dir = run_dir or new_run_dir("explore")
    with redis_url(redis_, run_dir) as url:
        buffer = ReplayBuffer(url)
        try:
            buffer.ping()
            if buffer.table_config(table, required=False) is None:
                buffer.create_table(TableConfig(name=table))
        except BufferError as error:
            fail(str(error))
        start_ray(ray_address)
        remote = {"endpoint": {"base_url": endpoint, "model": model, "api_key_env": api_key_env},
                  "teacher": f"{model}@{endpoint}"} if endpoint else {}
        config = ExplorerConfig(redis_url=url, table=table, model=model, threads=threads, strategy=strategy,
                                budget=EXPLORE.budget, finish=EXPLORE.finish,
                                ste=STEConfig(trials_per_session=trials, imagination=imagination),
                                tool_sources=tuple(tools_from), **remote)
        explorers = start_explorers(config, actors, num_cpus=threads)
        units = plan_units(names, episodes, trials, sessions_per_call)
        console.print(f"exploring {len(names)} tool(s) with {actors} actor(s), {len(units)} unit(s); run folder {run_dir}")
        totals = run_units(explorers, units, trials)
        console.print("done: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())))
        console.print(f"inspect: imaginarium buffer stats --run-dir {run_dir}" if not redis_ else
                      f"inspect: imaginarium buffer stats --redis {redis_}")
