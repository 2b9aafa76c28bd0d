"""`imaginarium eval`: evaluate a policy on the built-in gold sets, an eval set of your own tools, and/or an
external BFCL-style set; `compare_command`: the win rate of two saved runs; `evalset_app`: `imaginarium evalset
draft`, an eval set drafted from a run's kept episodes.

`eval_command` prints the markdown tables and writes `<suite>.json` and `<suite>.md` into --out (`builtin`, or
the eval set's file name). Mistakes (an unknown strategy, tool, round or source, a malformed eval set, a missing
model) get one line each on stderr and exit 2.
"""
from __future__ import annotations

import shlex
from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from replay.cli import RedisOption, fail
from toolenv.cli import TOOLS_FROM_HELP
from toolenv.registry import Registry, RegistryError

SUITES = ("builtin",)
ToolsFromOption = typer.Option(None, "--tools-from", help=TOOLS_FROM_HELP)


def eval_command(
    model: str = typer.Option("default", help="default (SmolLM2-135M-Instruct), tiny, or a model path."),
    strategy: Optional[str] = typer.Option(None, help="react | react@N | dfsdt (default: eval.strategy, react)."),
    suite: Optional[str] = typer.Option(None, help="builtin: the gold sets (the default unless --eval-set is given)."),
    tools_from: Optional[list[str]] = ToolsFromOption,
    round: Optional[int] = typer.Option(None, "--round", help="Only the tools of this round."),
    tools: Optional[str] = typer.Option(None, help="Comma-separated tool names (default: every tool with a gold set)."),
    limit: Optional[int] = typer.Option(None, min=1, help="At most N gold queries per tool (default: "
                                        "eval.limit_per_tool, 4)."),
    distractors: int = typer.Option(0, min=0, help="Offer K other tools of the same round with each query."),
    retrieve: Optional[int] = typer.Option(None, min=1, help="Offer each query the top K tools a retriever finds "
                                           "among all tools, instead of its gold tools (ToolLLM's retrieved APIs)."),
    retriever: Optional[str] = typer.Option(None, help="With --retrieve: bm25, minilm (the default), or a folder "
                                            "from `retriever train`."),
    icl: Optional[int] = typer.Option(None, min=1, help="STE's in-context learning: show each query the K kept "
                                      "episodes of --run-dir most similar to it, as demonstrations."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="With --icl: the run whose kept episodes "
                                           "(its train table) are the demonstrations."),
    eval_set: Optional[Path] = typer.Option(None, "--eval-set", help="Gold queries for your tools (JSONL: query, gold "
                                            "calls with match rules, answer; see the README), or with --answers "
                                            "BFCL-style questions scored on one call, no search."),
    answers: Optional[Path] = typer.Option(None, help="BFCL-style ground truth for --eval-set."),
    allow_drafts: bool = typer.Option(False, "--allow-drafts", help="Evaluate entries still marked draft instead of "
                                      "refusing the eval set (they are counted in the report)."),
    judge_model: Optional[str] = typer.Option(None, help="Judge answers with this model (ToolEval style) instead of the gold rules."),
    judge_k: int = typer.Option(3, min=1, help="LLM judge: verdicts per answer, majority wins."),
    temperature: Optional[float] = typer.Option(None, min=0.0, help="Sampling temperature (default: 0, greedy; 0.7 for react@N)."),
    max_new_tokens: Optional[int] = typer.Option(None, min=16, help="Tokens per turn (default: eval.max_new_tokens, 160)."),
    batch_size: int = typer.Option(16, min=1, help="Queries per batched search."),
    out: Path = typer.Option(Path("runs/eval"), help="Folder for the JSON and markdown reports."),
    seed: int = typer.Option(0, help="Seeds distractors, tool order and sampling: the same seed repeats a run."),
    threads: Optional[int] = typer.Option(None, min=1, help="Torch threads (default: eval.threads, 1)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Search budget and Finish rule (explore.budget, "
                                          "explore.finish) and eval settings (eval) from this experiment config (e.g. a run's config.yaml), to score a "
                                          "run's models as it did; flags override them."),
) -> None:
    """Evaluate a policy: STE's call metrics, execution match and ToolEval's pass rate, on gold sets or BFCL sets."""
    from actors.policy import Sampling
    from actors.search import make_strategy
    from evaluation.bfcl import EvalSetError, evaluate_eval_set, load_eval_set
    from evaluation.builtin import select_tools
    from evaluation.evalset import EvalSetFileError, by_tool, load_gold_set
    from evaluation.evaluator import demonstrations_from, evaluate_gold
    from evaluation.judges import LLMJudge, rule_judge
    from evaluation.report import builtin_markdown, eval_set_markdown, eval_set_report, write_report
    from toolenv.gold import load_gold_dir
    from toolenv.sources import DEFAULT_SOURCES

    # every check that needs no model comes first, so a mistake costs no loading time
    budget, finish, settings = _settings(config)
    overrides = {"strategy": strategy, "limit_per_tool": limit, "threads": threads, "max_new_tokens": max_new_tokens,
                 "retrieve_k": retrieve, "retriever": retriever}
    # a run's `eval.icl_k` adds the run's ICL row; here in-context demonstrations are asked for by --icl alone
    settings = settings.model_copy(update={**{key: value for key, value in overrides.items() if value is not None},
                                           "icl_k": icl})
    try:
        search = make_strategy(settings.strategy, budget, finish)
    except ValueError as error:
        fail(str(error))
    if suite is not None and suite not in SUITES:
        fail(f"unknown suite {suite!r}; suites: {', '.join(SUITES)} (your own or external sets: --eval-set FILE)")
    if answers is not None and eval_set is None:
        fail("--answers goes with --eval-set: the BFCL questions it answers")
    if settings.icl_k is not None and run_dir is None:
        fail("--icl needs --run-dir RUN: the run whose kept episodes are the demonstrations")
    bfcl = answers is not None
    names = [n.strip() for n in (tools or "").split(",") if n.strip()]
    sources = list(tools_from or DEFAULT_SOURCES)
    entries = []
    if bfcl:
        try:
            entries = load_eval_set(eval_set, answers)
        except EvalSetError as error:
            fail(str(error))
    runs: list[tuple[str, dict, list[str], dict]] = []  # (report name, gold, tools, meta) per gold set
    registry = _registry(sources) if not bfcl or suite == "builtin" else None
    if eval_set is not None and not bfcl:
        try:
            own = load_gold_set(eval_set, registry)
        except EvalSetFileError as error:
            fail_lines(error.lines)
        drafts = [entry for entry in own if entry.draft]
        if drafts and not allow_drafts:
            fail(f"{drafts[0].source}: an entry marked \"draft\": true ({len(drafts)} of the {len(own)} entries are): "
                 "review each and delete the flag, or evaluate them anyway with --allow-drafts")
        gold = by_tool(own)
        try:
            selected = select_tools(registry, gold, names, round)
        except ValueError as error:
            fail(f"{eval_set}: {error}")
        runs.append((eval_set.stem, gold, selected, {"eval set": str(eval_set), **({"drafts": len(drafts)} if drafts else {})}))
    if suite == "builtin" or eval_set is None:
        gold = load_gold_dir()
        if not any(name in gold for name in registry.names()):
            fail(f"no tool of {', '.join(sources)} has a built-in gold set: give --eval-set FILE (draft one from a "
                 "run with `imaginarium evalset draft`)")
        try:
            selected = select_tools(registry, gold, names, round)
        except ValueError as error:
            fail(str(error))
        runs.insert(0, ("builtin", gold, selected, {}))
    ranker = None
    if settings.retrieve_k is not None:
        from retrieval import RetrieverError, open_retriever

        try:
            ranker = open_retriever(list(registry), settings.retriever)
        except RetrieverError as error:
            fail(f"--retriever {settings.retriever}: {error}")
    demonstrations = demonstrations_from(_kept_episodes(run_dir)) if settings.icl_k is not None else None
    for name in (model, judge_model):
        _check_model(name)

    policy = _load_policy(model, settings.threads)
    judge = rule_judge if judge_model is None else LLMJudge(_load_policy(judge_model, settings.threads), k=judge_k)
    if temperature is None:
        temperature = 0.7 if getattr(search, "n", 1) > 1 else 0.0
    sampling = Sampling(temperature=temperature, max_new_tokens=settings.max_new_tokens, seed=seed)
    meta = {"model": model, "tools from": sources if sources != list(DEFAULT_SOURCES) else None, "round": round,
            "judge": judge_model or "rules", **({"retriever": settings.retriever} if ranker else {}),
            **({"icl run": str(run_dir)} if demonstrations else {})}
    err = Console(stderr=True)  # progress and notes; stdout carries only the tables

    for name, gold, selected, extra in runs:
        if extra.get("drafts"):
            err.print(f"note: {extra['drafts']} entries of {name} are unreviewed drafts", highlight=False)
        with _progress(err) as progress:
            bar = progress.add_task(f"{name}, {search.name}", total=None)
            report = evaluate_gold(policy, search, registry, gold, selected, limit=settings.limit_per_tool, seed=seed,
                                   sampling=sampling, judge=judge, distractors=distractors,
                                   retrieve_k=settings.retrieve_k, retriever=ranker, demonstrations=demonstrations,
                                   icl_k=settings.icl_k, batch_size=batch_size, meta={**meta, **extra},
                                   progress=lambda done, total: progress.update(bar, completed=done, total=total))
        markdown = builtin_markdown(report)
        typer.echo(markdown)  # plain stdout: a markdown table must not be wrapped to the terminal
        paths = write_report(report, markdown, out, name)
        err.print(f"wrote {paths[0]} and {paths[1]}", highlight=False)
    if entries:
        with _progress(err) as progress:
            bar = progress.add_task(f"{eval_set.name}, one call", total=len(entries))
            set_records = evaluate_eval_set(policy, entries, sampling, batch_size,
                                            progress=lambda done: progress.update(bar, completed=done))
        report = eval_set_report(set_records, {"model": model, "eval set": str(eval_set), "seed": seed})
        markdown = eval_set_markdown(report)
        typer.echo(markdown)
        paths = write_report(report, markdown, out, eval_set.stem)
        err.print(f"wrote {paths[0]} and {paths[1]}", highlight=False)


def _settings(config: Path | None):
    """The search budget, Finish rule and eval settings: a run config's `explore.budget`, `explore.finish` and
    `eval`, or the defaults runs use. Only those are read: the rest of an experiment config belongs to the launcher."""
    import yaml
    from pydantic import ValidationError

    from actors.search import Budget, FinishRule
    from evaluation.evaluator import EvalConfig

    if config is None:
        return Budget(), FinishRule(), EvalConfig()
    try:
        data = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError) as error:
        fail(f"--config {config}: cannot read it as YAML ({' '.join(str(error).split())[:200]})")
    data = data if isinstance(data, dict) else {}
    explore = data.get("explore") if isinstance(data.get("explore"), dict) else {}
    sections = (("explore.budget", Budget, explore.get("budget")), ("explore.finish", FinishRule, explore.get("finish")),
                ("eval", EvalConfig, data.get("eval")))
    loaded = []
    for key, model, section in sections:
        try:
            loaded.append(model.model_validate(section or {}))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join([key, *(str(part) for part in first["loc"])])
            message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
            fail(f"{config}: {where}: {message}")
    return tuple(loaded)


def fail_lines(lines: list[str]) -> None:
    """Several mistakes at once (an eval set's malformed lines): one line each on stderr, exit code 2."""
    console = Console(stderr=True)
    for line in lines:
        console.print(f"[red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _registry(sources: list[str]) -> Registry:
    """The tools of the sources; a server started here stops when the command ends."""
    from toolenv.sources import load_registry

    try:
        return load_registry(sources)
    except RegistryError as error:
        fail(str(error))


def _check_model(name: str | None) -> None:
    if name is not None and name not in ("default", "tiny") and not Path(name).is_dir():
        fail(f"no model folder {name!r}: give default, tiny, or the path of a transformers model")


def _kept_episodes(run_dir: Path) -> list:
    """A run's kept episodes (its train table), for ICL demonstrations."""
    from replay.buffer import BufferError
    from replay.cli import open_buffer
    from replay.codec import RecordError

    try:
        with open_buffer(None, run_dir) as buffer:
            table = next((t for t in buffer.tables() if t.endswith("-train")), None)
            if table is None:
                fail(f"--run-dir {run_dir}: no train table (kept episodes) in its buffer")
            return [e for _, e in buffer.episodes(table) if not isinstance(e, RecordError)]
    except BufferError as error:
        fail(f"--run-dir {run_dir}: {error}")


def _load_policy(name: str, threads: int):
    from actors.explorer import make_policy

    try:
        return make_policy(name, threads)
    except (OSError, ValueError) as error:  # a folder that holds no loadable model
        fail(f"cannot load model {name!r}: {' '.join(str(error).split())[:300]}")


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


def compare_command(
    run_a: Path = typer.Argument(..., help="builtin.json of run A (written by `imaginarium eval`)."),
    run_b: Path = typer.Argument(..., help="builtin.json of run B, over the same queries."),
    judge_model: Optional[str] = typer.Option(None, help="Prefer answers with this model (ToolEval style) instead of the rule."),
    seed: int = typer.Option(0, help="Seeds which run is shown first to the judge, per query."),
    threads: int = typer.Option(1, min=1, help="Torch threads (with --judge-model)."),
) -> None:
    """Win rate of run A against run B: solved beats unsolved (or an LLM's preference), ties count half."""
    from evaluation.judges import LLMPairJudge, rule_pair_judge, win_rate
    from evaluation.report import load_records, win_rate_markdown

    try:
        records_a, records_b = load_records(run_a), load_records(run_b)
    except ValueError as error:
        fail(str(error))
    _check_model(judge_model)
    judge = rule_pair_judge if judge_model is None else LLMPairJudge(_load_policy(judge_model, threads))
    try:
        result = win_rate(records_a, records_b, judge, seed)
    except ValueError as error:
        fail(f"{run_a} vs {run_b}: {error}")
    typer.echo(win_rate_markdown(result, run_a.parent.name or str(run_a), run_b.parent.name or str(run_b)))


evalset_app = typer.Typer(help="Eval sets for your own tools: draft one from a run, review it, evaluate on it.",
                          no_args_is_help=True)


@evalset_app.command("draft")
def draft_command(
    tools_from: Optional[list[str]] = ToolsFromOption,
    run_dir: Path = typer.Option(Path("runs/latest"), "--run-dir", help="Run folder whose replay buffer to read."),
    redis_: Optional[str] = RedisOption,
    table: Optional[str] = typer.Option(None, "--table", "-t", help="Table to draft from (default: the kept "
                                        "episodes of `*-train`, else the solved ones of `explore`)."),
    out: Optional[Path] = typer.Option(None, help="Eval set to write (default: RUN/evalset.draft.jsonl); never overwritten."),
    per_tool: int = typer.Option(10, "--per-tool", min=1, help="At most N entries per tool."),
) -> None:
    """Draft an eval set from a run's kept (or solved) episodes: each entry marked draft, for you to review."""
    from evaluation.evalset import draft_entries, write_entries
    from replay.buffer import Filters
    from replay.cli import open_buffer
    from replay.episode import Episode
    from toolenv.runner import ToolRunner
    from toolenv.sources import DEFAULT_SOURCES

    out = out or run_dir / "evalset.draft.jsonl"
    if out.exists():
        fail(f"{out} exists (perhaps already reviewed): give another --out, or delete it first")
    sources = list(tools_from or DEFAULT_SOURCES)
    runner = ToolRunner(_registry(sources))
    with open_buffer(redis_, run_dir) as buffer:
        tables = buffer.tables()
        kept = [name for name in tables if name.endswith("-train")]
        if table is None and len(kept) != 1 and "explore" not in tables:
            fail(f"no table of kept or explored episodes to draft from; tables: {', '.join(tables) or 'none'}: "
                 "pick one with --table")
        table = table or (kept[0] if len(kept) == 1 else "explore")
        buffer.table_config(table)
        filters = None if table.endswith("-train") else Filters(outcome="solved")
        episodes = (episode for _, episode in buffer.episodes(table, filters) if isinstance(episode, Episode))  # corrupt: skipped
        entries, skipped = draft_entries(episodes, runner, per_tool)
    reasons = ", ".join(f"{reason} {count}" for reason, count in skipped.most_common())
    if not entries:
        fail(f"no episode of table {table!r} gave a draft entry ({reasons or 'the table holds no such episodes'})")
    write_entries(entries, out)
    counts = ", ".join(f"{tool} {count}" for tool, count in sorted(Counter(e.tool for e in entries).items()))
    err = Console(stderr=True)
    command = " ".join(["imaginarium eval", *(f"--tools-from {shlex.quote(source)}" for source in sources),
                        f"--eval-set {shlex.quote(str(out))}"])
    err.print(escape(f"wrote {len(entries)} draft entries ({counts}) from table {table!r} to {out}"
                     + (f"; skipped: {reasons}" if reasons else "")), highlight=False, soft_wrap=True)
    err.print(escape(f"review each entry (its calls, match rules and answer), delete its \"draft\": true, then "
                     f"evaluate:\n  {command}"), highlight=False, soft_wrap=True)
